"""Figures 6-7 (the meta-adaptive effect) at test scale, against an independent recomputation.

The test trains the figure's model itself with ``torch.optim.Adam(betas=(γ, β))`` and
computes App. G's cosine similarities, the norms and eq. (8)'s prediction with numpy, loop
by loop; the figure's own Adam (which also runs the coarse-grained variant) must agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stabcli.errors import StabcliError
from stabcli.reproduce import metaadaptive as meta
from stabcli.reproduce.metaadaptive import MetaAdaptiveFigure, figure_model, metaadaptive_figure

PLAN = meta.PLANS["test"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[MetaAdaptiveFigure, Path]:
    out = tmp_path_factory.mktemp("meta")
    return metaadaptive_figure("test", out=out), out


@pytest.fixture(scope="module")
def figure(saved: tuple[MetaAdaptiveFigure, Path]) -> MetaAdaptiveFigure:
    return saved[0]


def _independent_run(fig: MetaAdaptiveFigure, qk_norm: bool) -> dict[str, list[np.ndarray]]:
    """W_n, g_n and θ_n of the figure's matrices, n = 1 .. m, from torch.optim.Adam."""
    model = figure_model(PLAN, qk_norm)
    blocks = model.matrices()
    assert tuple(blocks) == fig.matrices
    param = torch.nn.Parameter(model.theta0.clone())
    opt = torch.optim.Adam(
        [param], lr=fig.lr, betas=(fig.gamma, fig.beta), eps=model.preset.train.eps
    )
    out: dict[str, list[np.ndarray]] = {"W": [], "g": [], "theta": [], "loss": []}
    for n in range(1, fig.iterations + 1):
        x, y = model.stream.train_batch(n - 1)
        leaf = param.detach()[None].requires_grad_(True)
        loss = model.loss(leaf, x, y)
        (grad,) = torch.autograd.grad(loss.sum(), leaf)
        theta = param.detach().numpy().copy()
        g = grad[0].numpy()
        out["W"].append(np.stack([theta[idx] for idx in blocks.values()]))  # (M, N_W)
        out["g"].append(np.stack([g[idx] for idx in blocks.values()]))
        out["theta"].append(theta)
        out["loss"].append(np.array(float(loss.detach()[0])))
        param.grad = grad[0].clone()
        opt.step()
    return out


@pytest.fixture(scope="module", params=[True, False], ids=["qk-norm", "no-qk-norm"])
def pair(request: pytest.FixtureRequest, figure: MetaAdaptiveFigure):
    qk = request.param
    return (figure.qk if qk else figure.plain), _independent_run(figure, qk)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_figure6_cosine_matches_an_independent_recomputation(pair) -> None:
    run, ref = pair
    m = len(ref["W"])
    n_matrices = ref["W"][0].shape[0]
    expected = np.array(
        [[_cos(ref["W"][-1][i], ref["g"][n][i]) for n in range(m)] for i in range(n_matrices)]
    )  # (M, m): sim(W_m, g_n)
    assert run.sim_past.shape == (n_matrices, m)
    np.testing.assert_allclose(run.sim_past, expected, rtol=1e-7, atol=1e-12)


def test_norms_update_cosine_and_eq8_match_the_independent_run(pair, figure) -> None:
    """‖W_n‖², sim(W_n, u_n) with u_n = (W_n − W_{n+1})/η, and eq. (8)'s
    ‖W_1‖² + Σ_{j<n} ‖W_{j+1} − W_j‖² (η²‖u_j‖² = ‖W_{j+1} − W_j‖²)."""
    run, ref = pair
    w = np.stack(ref["W"])  # (m, M, N_W)
    norms = np.einsum("nmk,nmk->mn", w, w)
    np.testing.assert_allclose(run.norms, norms, rtol=1e-10)
    steps = np.diff(w, axis=0)  # (m−1, M, N_W): −η u_n
    sim_u = np.array(
        [[_cos(w[n, i], -steps[n, i]) for n in range(len(steps))] for i in range(w.shape[1])]
    )
    np.testing.assert_allclose(run.sim_update, sim_u, rtol=1e-6, atol=1e-10)
    moved = np.concatenate([np.zeros((w.shape[1], 1)), np.cumsum((steps**2).sum(2).T, 1)], 1)
    np.testing.assert_allclose(run.predicted_norms, norms[:, :1] + moved, rtol=1e-9)
    np.testing.assert_allclose(run.loss, np.array(ref["loss"]), rtol=1e-10)


def _indices(figure: MetaAdaptiveFigure) -> list[int]:
    """Flat indices of the shown parameters, found by their names."""
    model = figure_model(PLAN, True)
    names = model.coordinate_names(np.arange(model.n_params))
    where = {name: i for i, name in enumerate(names)}
    return [where[name] for name in figure.shown_names]


def test_shown_parameters_follow_the_regular_run(figure: MetaAdaptiveFigure) -> None:
    ref = _independent_run(figure, True)
    chosen = _indices(figure)
    theta = np.stack(ref["theta"])[:, chosen]  # (m, Q)
    np.testing.assert_allclose(figure.qk.shown, theta, rtol=1e-9, atol=1e-15)


def test_coarse_graining_first_step_uses_the_matrix_mean_square(figure) -> None:
    """Assumption 2 at n = 1: m̂_1 = g_1 and ṽ_1 = mean over W of g_1², so each shown
    parameter moves by −η g_1 / sqrt(mean_W g_1²) (ε = 10⁻³⁰ is negligible)."""
    model = figure_model(PLAN, True)
    blocks = model.matrices()
    x, y = model.stream.train_batch(0)
    g = model.gradient(model.theta0[None], x, y)[0].numpy()
    moved = figure.coarse.shown[1] - figure.coarse.shown[0]
    expected = []
    for index in _indices(figure):
        block = next(idx for idx in blocks.values() if index in set(idx.tolist()))
        expected.append(-figure.lr * g[index] / np.sqrt(np.mean(g[block] ** 2)))
    np.testing.assert_allclose(moved, np.array(expected), rtol=1e-9)
    regular = figure.qk.shown[1] - figure.qk.shown[0]  # Adam's first step: −η sign(g)
    np.testing.assert_allclose(np.abs(regular), figure.lr, rtol=1e-9)
    assert not np.allclose(np.abs(moved), figure.lr, rtol=1e-3)


def test_scale_invariance_and_eq6_with_qk_norm_only(figure: MetaAdaptiveFigure) -> None:
    assert figure.qk.invariance <= 1e-10
    assert figure.plain.invariance > 1e-8  # the control is not trivially invariant
    assert np.abs(figure.qk.sim_at_m).max() <= 1e-10  # eq. (6): exact at the iterate itself
    assert np.abs(figure.plain.sim_at_m).max() > 1e-3


def test_assessment_restates_its_parts(figure: MetaAdaptiveFigure) -> None:
    a = figure.assessment
    assert a.claim == meta.CLAIM and "Figures 6-7" in a.claim
    qk = figure.qk
    parts = [
        qk.invariance <= meta.INVARIANCE_RTOL,
        np.abs(qk.sim_at_m).max() <= meta.ORTHOGONAL,
        np.abs(qk.sim_past).max() <= meta.NEGLIGIBLE,
        np.abs(figure.plain.sim_at_m).max() > meta.NOT_ORTHOGONAL,
        figure.coarse_distance <= meta.COARSE_TOLERANCE,
        qk.norm_miss <= meta.NORM_TOLERANCE,
    ]
    assert a.held is all(parts)
    assert f"m = {figure.iterations}" in a.measured
    assert f"{np.abs(figure.plain.sim_at_m).max():.3f} without" in a.measured


def test_saved_npz_holds_the_plotted_numbers(saved) -> None:
    figure, out = saved
    with np.load(out / "metaadaptive.npz") as data:
        assert tuple(data["matrices"]) == figure.matrices
        np.testing.assert_array_equal(data["qk_sim_past"], figure.qk.sim_past)
        np.testing.assert_array_equal(data["plain_norms"], figure.plain.norms)
        np.testing.assert_array_equal(data["coarse_shown"], figure.coarse.shown)


def test_unknown_scale_is_a_one_line_error() -> None:
    with pytest.raises(StabcliError, match="unknown scale 'huge'"):
        metaadaptive_figure("huge")
