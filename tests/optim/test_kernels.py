"""The functional kernels: stacked (P, N) operands equal P single-point runs, foreach lists
equal per-tensor calls, per-level max-updates match the paper's algorithm and obey the
exact bound of every level, and misuse fails loudly. Float64 throughout."""

from __future__ import annotations

import math

import pytest
import torch
from paper_kadam import PaperKAdam

from stabcli.optim.kernels import (
    FOREACH,
    SINGLE,
    STACKED,
    LevelCoeffs,
    kadam_direction,
    kadam_update_,
    level_coeffs,
)
from stabcli.theory.exact import exact_bound

F64 = torch.float64
# Rounding only: the two sides run the same float64 arithmetic in another grouping.
RTOL = 1e-12
ATOL = 1e-12

# Per point, per level PyTorch-order (beta1_i, beta2_i) = (γ_i, β_i): P = 4 points, and
# levels that differ within a point, so that a swapped order or level would show.
POINT_LEVELS = [
    [(0.9, 0.999), (0.5, 0.95), (0.8, 0.99)],
    [(0.683772, 0.968377), (0.683772, 0.968377), (0.683772, 0.968377)],
    [(0.0, 0.9), (0.95, 0.9), (0.3, 0.333)],
    [(0.99, 0.95), (0.7, 0.7), (0.1, 0.5)],
]
WEIGHT_DECAYS = [0.0, 0.1, 0.02, 0.5]  # per point λ


def _gradients(steps: int, shape: tuple[int, ...], seed: int) -> list[torch.Tensor]:
    """Gradient sequence with scales from 1e-6 to 1e2 per coordinate, and an exact zero."""
    gen = torch.Generator().manual_seed(seed)
    scale = 10.0 ** torch.linspace(-6, 2, shape[-1], dtype=F64)
    grads = [torch.randn(shape, generator=gen, dtype=F64) * scale for _ in range(steps)]
    for g in grads:
        g[..., 0] = 0.0
    return grads


def _stacked_coeffs(levels_per_point, n: int, eps: float, placement) -> list[LevelCoeffs]:
    """Per level, the points' coefficients as (P, 1) tensors, as the engine builds them."""
    k = len(levels_per_point[0])
    coeffs = []
    for i in range(k):
        per_point = [
            level_coeffs(b2, b1, n, eps, placement) for b1, b2 in (p[i] for p in levels_per_point)
        ]

        def column(field: str, per_point=per_point) -> torch.Tensor:
            return torch.tensor([getattr(c, field) for c in per_point], dtype=F64)[:, None]

        coeffs.append(LevelCoeffs(**{f: column(f) for f in LevelCoeffs.__dataclass_fields__}))
    return coeffs


WD_MODES = {"none": None, "coupled": False, "decoupled": True}


@pytest.mark.parametrize("placement", ["torch", "paper"])
@pytest.mark.parametrize("wd_mode", list(WD_MODES))
@pytest.mark.parametrize("k", [1, 2, 3], ids=["adam", "k2", "k3"])
def test_stacked_points_equal_single_point_runs(k: int, wd_mode: str, placement) -> None:
    levels = [p[:k] for p in POINT_LEVELS]
    n_points, n_params, steps, eps = len(levels), 33, 40, 1e-8
    decoupled = WD_MODES[wd_mode]
    wd = [0.0] * n_points if decoupled is None else WEIGHT_DECAYS
    grads = _gradients(steps, (n_points, n_params), seed=k)
    thetas = _gradients(steps, (n_points, n_params), seed=100 + k)

    m = [torch.zeros(n_points, n_params, dtype=F64) for _ in range(k)]  # (P, N) per level
    v = [torch.zeros(n_points, n_params, dtype=F64) for _ in range(k)]
    out = torch.empty(n_points, n_params, dtype=F64)  # (P, N): points, parameters
    wd_col = torch.tensor(wd, dtype=F64)[:, None]  # (P, 1)
    single_m = [[torch.zeros(n_params, dtype=F64) for _ in range(k)] for _ in range(n_points)]
    single_v = [[torch.zeros(n_params, dtype=F64) for _ in range(k)] for _ in range(n_points)]
    single_out = torch.empty(n_params, dtype=F64)
    for n in range(steps):
        level_max: list[torch.Tensor] = []
        kadam_direction(
            STACKED,
            grads[n],
            m,
            v,
            _stacked_coeffs(levels, n, eps, placement),
            out,
            theta=thetas[n],
            weight_decay=wd_col,
            decoupled=bool(decoupled),
            level_max=level_max,
        )
        assert [t.shape for t in level_max] == [(n_points,)] * k
        for p in range(n_points):
            single_max: list[torch.Tensor] = []
            coeffs = [level_coeffs(b2, b1, n, eps, placement) for b1, b2 in levels[p]]
            kadam_direction(
                SINGLE,
                grads[n][p],
                single_m[p],
                single_v[p],
                coeffs,
                single_out,
                theta=thetas[n][p],
                weight_decay=wd[p],
                decoupled=bool(decoupled),
                level_max=single_max,
            )
            torch.testing.assert_close(out[p], single_out, rtol=RTOL, atol=ATOL)
            for i in range(k):
                torch.testing.assert_close(level_max[i][p], single_max[i], rtol=RTOL, atol=0.0)


@pytest.mark.parametrize("placement", ["torch", "paper"])
@pytest.mark.parametrize("k", [1, 2, 3], ids=["adam", "k2", "k3"])
def test_stacked_direction_and_level_maxima_follow_the_papers_algorithm(k: int, placement) -> None:
    """Stacked kernel against P independent runs of App. R's loop (tests/optim/paper_kadam)."""
    levels = [p[:k] for p in POINT_LEVELS]
    n_points, n_params, steps, eps = len(levels), 17, 40, 1e-8
    grads = _gradients(steps, (n_points, n_params), seed=7)
    m = [torch.zeros(n_points, n_params, dtype=F64) for _ in range(k)]
    v = [torch.zeros(n_points, n_params, dtype=F64) for _ in range(k)]
    out = torch.empty(n_points, n_params, dtype=F64)
    thetas = [torch.zeros(n_params, dtype=F64, requires_grad=True) for _ in range(n_points)]
    refs = [
        PaperKAdam(
            [{"params": [thetas[p]], "lr": 1.0, "betas": levels[p], "coupled": False}],
            eps=eps,
            eps_placement=placement,
        )
        for p in range(n_points)
    ]
    for n in range(steps):
        level_max: list[torch.Tensor] = []
        coeffs = _stacked_coeffs(levels, n, eps, placement)
        kadam_direction(STACKED, grads[n], m, v, coeffs, out, level_max=level_max)
        for p, ref in enumerate(refs):
            thetas[p].grad = grads[n][p].clone()
            ref.step()
            torch.testing.assert_close(
                out[p], ref.last_update[id(thetas[p])], rtol=1e-10, atol=1e-12
            )
            expected = torch.tensor(ref.level_max[-1], dtype=F64)
            got = torch.stack([lm[p] for lm in level_max])
            torch.testing.assert_close(got, expected, rtol=1e-10, atol=0.0)


@pytest.mark.parametrize("placement", ["torch", "paper"])
@pytest.mark.parametrize(
    "levels",
    [
        [(0.9, 0.999), (0.9, 0.999), (0.9, 0.999)],
        [(0.683772, 0.968377)] * 3,
        [(0.3, 0.333)] * 3,
        [(0.95, 0.8), (0.5, 0.95), (0.99, 0.9)],  # γ² > β at levels 1 and 3: growing bounds
    ],
    ids=["naive", "inverse-exp", "scaled", "mixed-unstable"],
)
def test_every_level_obeys_its_exact_bound(levels, placement) -> None:
    """‖u_n^{(i)}‖∞ ≤ exact bound of (β_i, γ_i) at every step (docs/theory.md §3, §6;
    paper App. S), tight at n = 0 where the bound is 1."""
    n_params, steps = 64, 60
    gen = torch.Generator().manual_seed(3)
    # a pulse per coordinate at a random step, decaying by a random factor per step
    start = torch.randint(0, steps // 2, (n_params,), generator=gen)
    decay = torch.rand(n_params, generator=gen, dtype=F64)
    sign = torch.randn(n_params, generator=gen, dtype=F64).sign()
    m = [torch.zeros(n_params, dtype=F64) for _ in levels]
    v = [torch.zeros(n_params, dtype=F64) for _ in levels]
    out = torch.empty(n_params, dtype=F64)
    ratios = []
    for n in range(steps):
        age = (n - start).to(F64)
        g = torch.where(age >= 0, sign * decay ** age.clamp(min=0), torch.zeros_like(age))
        g = g + 1e-3 * torch.randn(n_params, generator=gen, dtype=F64)
        level_max: list[torch.Tensor] = []
        coeffs = [level_coeffs(b2, b1, n, 1e-30, placement) for b1, b2 in levels]
        kadam_direction(SINGLE, g, m, v, coeffs, out, level_max=level_max)
        for (b1, b2), got in zip(levels, level_max, strict=True):
            ratios.append(float(got) / exact_bound(b2, b1, n))
    assert max(ratios) <= 1.0 + 1e-12
    assert max(ratios) >= 0.99  # the bound is reached at n = 0: the maxima are not vacuous


@pytest.mark.parametrize("decoupled", [True, False], ids=["decoupled", "coupled"])
@pytest.mark.parametrize("k", [1, 3], ids=["adam", "k3"])
def test_foreach_lists_equal_per_tensor_calls(k: int, decoupled: bool) -> None:
    shapes = [(5, 3), (7,), (2, 2, 4)]
    levels = POINT_LEVELS[0][:k]
    gen = torch.Generator().manual_seed(11)
    theta_a = [torch.randn(s, generator=gen, dtype=F64) for s in shapes]
    theta_b = [t.clone() for t in theta_a]
    state_a = [[torch.zeros(s, dtype=F64) for s in shapes] for _ in range(2 * k)]
    state_b = [[t.clone() for t in level] for level in state_a]
    scratch = [torch.empty(s, dtype=F64) for s in shapes]
    for n in range(30):
        grads = [torch.randn(s, generator=gen, dtype=F64) for s in shapes]
        coeffs = [level_coeffs(b2, b1, n, 1e-8, "torch") for b1, b2 in levels]
        kw = {"lr": 0.01, "weight_decay": 0.1, "decoupled": decoupled}
        kadam_update_(FOREACH, theta_a, grads, state_a[:k], state_a[k:], coeffs, scratch, **kw)
        for j in range(len(shapes)):
            m_j = [level[j] for level in state_b[:k]]
            v_j = [level[j] for level in state_b[k:]]
            kadam_update_(SINGLE, theta_b[j], grads[j], m_j, v_j, coeffs, scratch[j], **kw)
        # direction with level maxima: foreach max over the list = max of per-tensor maxima
        out_a = [torch.empty(s, dtype=F64) for s in shapes]
        max_a: list[torch.Tensor] = []
        kadam_direction(
            FOREACH,
            grads,
            [[t.clone() for t in lv] for lv in state_a[:k]],
            [[t.clone() for t in lv] for lv in state_a[k:]],
            coeffs,
            out_a,
            theta=theta_a,
            weight_decay=0.1,
            decoupled=decoupled,
            level_max=max_a,
        )
        per_tensor = []
        for j in range(len(shapes)):
            out_j = torch.empty(shapes[j], dtype=F64)
            max_j: list[torch.Tensor] = []
            kadam_direction(
                SINGLE,
                grads[j],
                [lv[j].clone() for lv in state_a[:k]],
                [lv[j].clone() for lv in state_a[k:]],
                coeffs,
                out_j,
                theta=theta_a[j],
                weight_decay=0.1,
                decoupled=decoupled,
                level_max=max_j,
            )
            torch.testing.assert_close(out_a[j], out_j, rtol=RTOL, atol=ATOL)
            per_tensor.append(torch.stack(max_j))
        torch.testing.assert_close(
            torch.stack(max_a), torch.stack(per_tensor).amax(0), rtol=RTOL, atol=0.0
        )
    for a, b in zip(theta_a, theta_b, strict=True):
        torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("decoupled", [True, False], ids=["decoupled", "coupled"])
def test_update_equals_direction_step(decoupled: bool) -> None:
    """kadam_update_ (last ratio fused into θ) = θ − η · kadam_direction's output."""
    levels = POINT_LEVELS[2]
    gen = torch.Generator().manual_seed(5)
    theta = torch.randn(40, generator=gen, dtype=F64)
    theta_ref = theta.clone()
    state = [torch.zeros(40, dtype=F64) for _ in range(6)]
    state_ref = [t.clone() for t in state]
    scratch, out = torch.empty(40, dtype=F64), torch.empty(40, dtype=F64)
    for n in range(25):
        g = torch.randn(40, generator=gen, dtype=F64)
        coeffs = [level_coeffs(b2, b1, n, 1e-8, "paper") for b1, b2 in levels]
        kw = {"weight_decay": 0.3, "decoupled": decoupled}
        kadam_update_(SINGLE, theta, g, state[:3], state[3:], coeffs, scratch, lr=0.05, **kw)
        kadam_direction(SINGLE, g, state_ref[:3], state_ref[3:], coeffs, out, theta=theta_ref, **kw)
        theta_ref -= 0.05 * out
        torch.testing.assert_close(theta, theta_ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("coupled", [False, True], ids=["plain", "coupled"])
def test_gradient_is_never_written(coupled: bool) -> None:
    g = torch.randn(10, dtype=F64)
    g_before = g.clone()
    theta = torch.randn(10, dtype=F64)
    m, v = [torch.zeros(10, dtype=F64)], [torch.zeros(10, dtype=F64)]
    coeffs = [level_coeffs(0.99, 0.9, 0, 1e-8, "torch")]
    kadam_update_(
        SINGLE,
        theta,
        g,
        m,
        v,
        coeffs,
        torch.empty(10, dtype=F64),
        lr=0.1,
        weight_decay=0.1,
        decoupled=not coupled,
    )
    kadam_direction(
        SINGLE,
        g,
        m,
        v,
        coeffs,
        torch.empty(10, dtype=F64),
        theta=theta,
        weight_decay=0.1,
        decoupled=not coupled,
    )
    assert torch.equal(g, g_before)


@pytest.mark.parametrize(
    ("beta", "gamma", "n"),
    [(0.999, 0.9, 0), (0.999, 0.9, 10), (0.95, 0.99, 3), (0.5, 0.0, 2), (0.3, 0.333, 50)],
    ids=["default-n0", "default-n10", "growing-n3", "rmsprop", "scaled-n50"],
)
def test_level_coeffs_are_the_bias_corrections(beta: float, gamma: float, n: int) -> None:
    bc1, bc2 = 1.0 - gamma ** (n + 1), 1.0 - beta ** (n + 1)
    torch_c = level_coeffs(beta, gamma, n, 1e-8, "torch")
    paper_c = level_coeffs(beta, gamma, n, 1e-8, "paper")
    assert torch_c.beta == beta and torch_c.one_minus_beta == 1.0 - beta
    assert torch_c.one_minus_gamma == 1.0 - gamma
    assert math.isclose(torch_c.corr, math.sqrt(bc2) / bc1, rel_tol=1e-12)
    assert math.isclose(torch_c.eps, 1e-8 * math.sqrt(bc2), rel_tol=1e-12)
    assert paper_c.eps == 1e-8 and paper_c.corr == torch_c.corr


def test_misuse_fails_loudly() -> None:
    t = torch.zeros(3, dtype=F64)
    floats = level_coeffs(0.99, 0.9, 0, 1e-8, "torch")
    tensors = _stacked_coeffs([[(0.9, 0.99)]], 0, 1e-8, "torch")
    with pytest.raises(ValueError, match="eps_placement"):
        level_coeffs(0.99, 0.9, 0, 1e-8, "inside")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="levels"):
        kadam_direction(SINGLE, t, [t.clone()], [], [floats], t.clone())
    with pytest.raises(ValueError, match="theta"):
        kadam_direction(SINGLE, t, [t.clone()], [t.clone()], [floats], t.clone(), weight_decay=0.1)
    with pytest.raises(TypeError, match="float"):
        kadam_update_(
            STACKED,
            t[None],
            t[None],
            [t[None].clone()],
            [t[None].clone()],
            tensors,
            t[None].clone(),
            lr=0.1,
        )
    with pytest.raises(TypeError, match="float"):
        kadam_direction(FOREACH, [t], [[t.clone()]], [[t.clone()]], tensors, [t.clone()])
