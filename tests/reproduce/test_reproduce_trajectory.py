"""Figure 9 (App. K) at test scale: discrete Adam beside eq. (4) on mlp-synthetic's MLP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stabcli.reproduce.trajectory import RELATIVE_TOLERANCE, flat_model, trajectory_figure


@pytest.fixture(scope="module")
def model():
    return flat_model("mlp-synthetic")


def test_stacked_gradients_are_each_rows_own(model) -> None:
    x, y = model.stream.train_batch(0)
    gen = torch.Generator().manual_seed(0)
    rows = model.theta0 + 0.1 * torch.randn(3, model.n_params, generator=gen, dtype=torch.float64)
    together = model.gradient(rows, x, y)
    for i in range(3):
        alone = model.gradient(rows[i : i + 1], x, y)[0]
        torch.testing.assert_close(together[i], alone, rtol=1e-12, atol=1e-15)


def test_gradient_is_the_losss_directional_derivative(model) -> None:
    x, y = model.stream.train_batch(1)
    direction = torch.randn(model.n_params, generator=torch.Generator().manual_seed(1)).double()
    h = 1e-5
    plus = model.loss((model.theta0 + h * direction)[None], x, y)
    minus = model.loss((model.theta0 - h * direction)[None], x, y)
    numeric = float((plus - minus) / (2 * h))
    analytic = float(model.gradient(model.theta0[None], x, y)[0] @ direction)
    assert analytic == pytest.approx(numeric, rel=1e-7)


def test_matrices_cover_every_weight_matrix_once(model) -> None:
    found = model.matrices()
    assert list(found) == ["fc.0.weight", "fc.1.weight", "out.weight"]
    sizes = {s.name: s.numel for s in model.specs}
    for name, idx in found.items():
        assert len(idx) == sizes[name] == len(np.unique(idx))


def test_gpt_matrices_are_query_and_key_blocks() -> None:
    gpt = flat_model("tiny-char")
    found = gpt.matrices()
    c = gpt.preset.model.n_embd
    layers = gpt.preset.model.n_layer
    assert len(found) == 2 * layers
    assert all(len(idx) == c * c for idx in found.values())
    names = gpt.coordinate_names(found["h.0.attn.query"][[0, c]])
    assert names == ("h.0.attn.c_attn.weight[0, 0]", "h.0.attn.c_attn.weight[1, 0]")
    names = gpt.coordinate_names(found["h.0.attn.key"][[0]])
    assert names == (f"h.0.attn.c_attn.weight[0, {c}]",)


@pytest.fixture(scope="module", params=[1e-3, 1e-4], ids=["paper-lr", "small-lr"])
def figure(request):
    return trajectory_figure("test", lr=request.param)


def test_ode_tracks_discrete_adam_within_the_stated_tolerance(figure) -> None:
    assert figure.distance[0] == 0.0
    assert figure.relative_distance <= RELATIVE_TOLERANCE
    assert figure.assessment.held is True
    # the ODE starts about one step behind (u(0) = 0, docs/theory.md §11): a lag of order η
    assert figure.distance.max() < 3 * figure.lr


def test_discrete_first_step_is_sign_descent(figure) -> None:
    """u_0 = sign(g_0) (docs/theory.md (1.6)): every coordinate moves by exactly η."""
    assert figure.displacement[1] == pytest.approx(figure.lr, rel=1e-9)
    moved = np.abs(figure.discrete[1] - figure.discrete[0])
    np.testing.assert_allclose(moved, figure.lr, rtol=1e-9)


def test_norm_trajectories_and_eq12(figure) -> None:
    s, m = len(figure.steps), len(figure.matrices)
    assert figure.discrete_norms.shape == figure.continuous_norms.shape == (s, m)
    assert figure.predicted_norms.shape == (s, m)
    np.testing.assert_array_equal(figure.discrete_norms[0], figure.continuous_norms[0])
    np.testing.assert_allclose(figure.predicted_norms[0], figure.continuous_norms[0], rtol=1e-14)
    assert figure.norm_error < 0.01  # App. J's approximations: φ̈ and ‖Ẇ‖² ≈ ‖u_W‖² dropped


def test_figure_data_is_complete(figure) -> None:
    q = len(figure.names)
    assert figure.discrete.shape == figure.continuous.shape == (len(figure.steps), q)
    np.testing.assert_array_equal(figure.discrete[0], figure.continuous[0])
    assert figure.seconds_continuous > 0 and figure.seconds_discrete > 0
    assert "App. K" in figure.assessment.claim
    assert "tolerance 10%" in figure.assessment.measured
