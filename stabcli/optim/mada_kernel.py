"""MADA's parameterized update and its derivative in the coefficients, as tensor functions.

The parameterized optimizer of the MADA paper (Ozkara et al., arXiv 2401.08893, ICML 2024):
Section 2 eqs. (1)-(3) and Table 1, with Appendix C.1's choices (AVGrad in place of
AMSGrad, Lion added). At step t = 1, 2, ... with gradient g_t, everything elementwise:

    d_t   = g_t − g_{t−1}                          (g_0 := g_1, so d_1 = 0, as in Adan)
    m_t   = β1 m_{t−1} + (1−β1) g_t                 heavy-ball momentum (Adam)
    n_t   = β3 n_{t−1} + (1−β3) d_t                 Adan's gradient-difference momentum
    ĝ_t   = g_t + β3 d_t
    g̃²_t  = c ĝ_t² + (1−c)(v̄_{t−1} + ĝ_t² sign(ĝ_t² − v̄_{t−1}))     Adam (c = 1) / Yogi (c = 0)
    v̄_t   = β2 v̄_{t−1} + (1−β2) g̃²_t
    v̂_t   = v̄_t / (1 − Π_{j≤t} β2_j),   ṽ_t = ṽ_{t−1} + (v̂_t − ṽ_{t−1})/t   AVGrad's mean
    V_t   = ρ v̂_t + (1−ρ) ṽ_t                      Adam (ρ = 1) / AVGrad (ρ = 0)
    a_t   = (m_t/(1 − Π_{j≤t} β1_j) + β3 n_t) / (sqrt(V_t) + ε)
    u_t   = ω a_t + (1−ω) sign(β1ᴸ mᴸ_{t−1} + (1−β1ᴸ) g_t),   mᴸ_t = β2ᴸ mᴸ_{t−1} + (1−β2ᴸ) g_t

and the parameters move by θ_t = θ_{t−1} − η u_t (weight decay: see :mod:`stabcli.optim.mada`).
Vertices: Adam (β3 = 0, ρ = c = ω = 1), AVGrad (ρ = 0; the paper's Section 4.1), Yogi
(c = 0; Zaheer et al., NeurIPS 2018), Adan (β3 > 0; Xie et al., arXiv 2208.06677), Lion
(ω = 0; Chen et al., arXiv 2302.06675). ω is the paper's γ of App. C (renamed: γ means
β1 in this project).

Conventions chosen where the paper leaves them open (it omits bias corrections, Section 2):
m and v̄ are bias-corrected by the products of their betas along the path (PyTorch's
1 − β^t at constant betas, so the Adam vertex is ``torch.optim.Adam``; docs/theory.md §5);
AVGrad averages the bias-corrected v̂ (so its mean is unbiased from step 1); Adan's n_t
is used uncorrected, as the paper's parameterization writes it; ε is added after the square
root, as PyTorch. Lion's betas (β1ᴸ, β2ᴸ) are fixed: sign() passes no hyper-gradient.

Every function takes coefficients as Python floats or as tensors that broadcast against
the moments, e.g. (P, 1) coefficients over a (P, N) buffer of P stacked points, so the
probe engine can run the same math with per-point coefficients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

Coef = float | torch.Tensor  # a Python float, or a tensor broadcasting over the moments

#: MADA's learnable coefficients q, in the order used everywhere (hyper_dir rows, groups).
MADA_COEFFICIENTS = ("beta1", "beta2", "beta3", "rho", "c", "omega")


@dataclass(frozen=True)
class MadaCoefficients:
    """The coefficient vector q of the paper's Section 3 (with App. C.1's ω)."""

    beta1: Coef  # first-moment decay: PyTorch beta1, γ in docs/theory.md
    beta2: Coef  # second-moment decay: PyTorch beta2, β in docs/theory.md
    beta3: Coef  # Adan: decay of gradient differences and their weight (0: no Adan)
    rho: Coef  # 1: Adam's v̂; 0: AVGrad's running mean ṽ
    c: Coef  # 1: Adam's g²; 0: Yogi's sign-controlled increment
    omega: Coef  # 1: the adaptive update a_t; 0: Lion's sign update


@dataclass
class MadaMoments:
    """MADA's per-element state, each tensor shaped like the parameters (or (P, N))."""

    exp_avg: torch.Tensor  # m_t
    exp_diff: torch.Tensor  # n_t
    exp_avg_sq: torch.Tensor  # v̄_t (not bias-corrected)
    exp_avg_sq_mean: torch.Tensor  # ṽ_t, the running mean of v̂_1..v̂_t
    prev_grad: torch.Tensor  # g_{t−1}
    lion_avg: torch.Tensor  # mᴸ_t

    @classmethod
    def zeros_like(cls, x: torch.Tensor) -> MadaMoments:
        return cls(*(torch.zeros_like(x, memory_format=torch.preserve_format) for _ in range(6)))


#: Scratch tensors (shaped like the moments) that :func:`mada_step` works in.
MADA_SCRATCH = 12


def _is(x: Coef, value: float) -> bool:
    """``x`` is the Python number ``value`` (a tensor coefficient is never taken as fixed)."""
    return isinstance(x, float | int) and x == value


def _axpy_(x: torch.Tensor, y: torch.Tensor, a: Coef) -> torch.Tensor:
    """x ← x + a·y in place, for a float or a broadcasting tensor ``a``."""
    if isinstance(a, torch.Tensor):
        return x.addcmul_(y, a)
    return x.add_(y, alpha=a)


def mada_step(
    moments: MadaMoments,
    grad: torch.Tensor,
    q: MadaCoefficients,
    step: int,
    prod1: Coef,
    prod2: Coef,
    eps: float,
    lion_betas: tuple[float, float],
    learned: Sequence[str] = (),
    out: torch.Tensor | None = None,
    scratch: Sequence[torch.Tensor] | None = None,
    out_scale: Coef = 1.0,
    bias_corrections: tuple[Coef, Coef] | None = None,
) -> torch.Tensor:
    """Advance ``moments`` by one step and return the update direction u_t.

    ``step`` is t (1 at the first step); ``prod1`` and ``prod2`` are Π_{j<t} β1_j and
    Π_{j<t} β2_j (1 at t = 1). For each name in ``learned`` (a subset of
    :data:`MADA_COEFFICIENTS`), ``out[k]`` receives ∂u_t/∂q_k with the moments of step t−1
    held fixed (the paper's one-step hyper-gradient, Section 3 eq. (4)), times ``out_scale``
    (the optimizer passes −η_t to store ∂θ_t/∂q directly):

        ∂u/∂q = ω/D · ∂N/∂q − ω a/(2 sqrt(V) D) · ∂V/∂q,   N = m̂ + β3 n,  D = sqrt(V) + ε
        ∂N/∂β1 = (m_{t−1} − g + m̂ Π_{j<t} β1_j)/(1 − Π_{j≤t} β1_j),  ∂N/∂β3 = n_t + β3 (n_{t−1} − d)
        ∂V/∂x  = (ρ + (1−ρ)/t) ∂v̂/∂x  for x in (β2, β3, c),  ∂V/∂ρ = v̂ − ṽ
        ∂v̂/∂β2 = (v̄_{t−1} − g̃² + v̂ Π_{j<t} β2_j)/(1 − Π_{j≤t} β2_j)
        ∂v̂/∂β3 = (1−β2)/(1 − Π β2) · (c + (1−c) s) 2 ĝ d,   ∂v̂/∂c = (1−β2)/(1 − Π β2) · (ĝ² − y)
        ∂u/∂ω  = a − sign(cᴸ)

    with s = sign(ĝ² − v̄_{t−1}) and y = v̄_{t−1} + ĝ² s (sign() is differentiated as 0).

    ``scratch`` holds :data:`MADA_SCRATCH` tensors shaped like ``grad`` to work in (fresh
    ones are allocated when it is None); the returned u_t may be one of them, so use it
    before the next call. ``grad`` is never written. ``bias_corrections``, when given, is
    (1 − Π_{j≤t} β1_j, 1 − Π_{j≤t} β2_j) computed by the caller (the probe engine forms them
    in float64: in float32, 1 − Π β2 near β2 = 1 loses up to ~1e-3 of its value).
    """
    b1, b2, b3, rho, c, omega = q.beta1, q.beta2, q.beta3, q.rho, q.c, q.omega
    mo = moments
    want = set(learned)
    if want - set(MADA_COEFFICIENTS):
        raise ValueError(f"unknown MADA coefficient(s) {sorted(want - set(MADA_COEFFICIENTS))}")
    if want and (out is None or out.shape[0] < len(learned)):
        raise ValueError("out needs one row per learned coefficient")
    bufs = scratch if scratch is not None else [torch.empty_like(grad) for _ in range(MADA_SCRATCH)]
    d, ghat, ghat2, sgn, y, g2, vhat, root, den, a, sign_l, u = bufs[:MADA_SCRATCH]
    index = {name: k for k, name in enumerate(learned)}

    def deriv(name: str) -> torch.Tensor:
        """out's row for ∂u/∂q_name."""
        assert out is not None
        return out[index[name]]

    if bias_corrections is None:
        bc1 = 1.0 - prod1 * b1  # 1 − Π_{j≤t} β1_j
        bc2 = 1.0 - prod2 * b2  # 1 − Π_{j≤t} β2_j
    else:
        bc1, bc2 = bias_corrections

    # Gradient difference and Adan's ĝ = g + β3 d (d_1 = 0: no previous gradient yet).
    if step > 1:
        torch.sub(grad, mo.prev_grad, out=d)
    else:
        d.zero_()
    mo.prev_grad.copy_(grad)
    if _is(b3, 0.0) and "beta3" not in want:
        ghat = grad
    else:
        _axpy_(ghat.copy_(grad), d, b3)
    torch.mul(ghat, ghat, out=ghat2)

    # Second moment: the Adam/Yogi increment g̃², then v̄, v̂, AVGrad's ṽ and V.
    if _is(c, 1.0) and not want & {"c", "beta3"}:
        g2 = ghat2  # Adam's increment: no Yogi term to form
    else:
        torch.sub(ghat2, mo.exp_avg_sq, out=sgn).sign_()  # s
        torch.addcmul(mo.exp_avg_sq, ghat2, sgn, out=y)  # y = v̄_{t−1} + ĝ² s
        if "c" in want:
            torch.sub(ghat2, y, out=deriv("c"))  # ∂g̃²/∂c, scaled below
        torch.lerp(y, ghat2, c, out=g2)  # g̃² = c ĝ² + (1−c) y, exactly y at c = 0
    if "beta2" in want:
        torch.sub(mo.exp_avg_sq, g2, out=deriv("beta2"))  # v̄_{t−1} − g̃², scaled below
    mo.exp_avg_sq.lerp_(g2, 1.0 - b2)
    torch.div(mo.exp_avg_sq, bc2, out=vhat)
    mo.exp_avg_sq_mean.lerp_(vhat, 1.0 / step)
    if _is(rho, 1.0) and "rho" not in want:
        torch.sqrt(vhat, out=root)
    else:
        torch.lerp(mo.exp_avg_sq_mean, vhat, rho, out=root).sqrt_()  # sqrt(ρ v̂ + (1−ρ) ṽ)
    torch.add(root, eps, out=den)  # D

    # First moment: m, n, and the adaptive direction a = (m̂ + β3 n)/D.
    if "beta1" in want:
        torch.sub(mo.exp_avg, grad, out=deriv("beta1"))  # m_{t−1} − g, scaled below
    mo.exp_avg.lerp_(grad, 1.0 - b1)
    if "beta3" in want:
        torch.sub(mo.exp_diff, d, out=deriv("beta3"))  # n_{t−1} − d, scaled below
    mo.exp_diff.lerp_(d, 1.0 - b3)
    torch.div(mo.exp_avg, bc1, out=a)  # m̂
    if not _is(b3, 0.0):
        _axpy_(a, mo.exp_diff, b3)  # N
    a.div_(den)

    # Lion's sign update, and the mix u = ω a + (1−ω) sign(cᴸ).
    lion_b1, lion_b2 = lion_betas
    if _is(omega, 1.0) and "omega" not in want:
        u = a
    else:
        torch.lerp(mo.lion_avg, grad, 1.0 - lion_b1, out=sign_l).sign_()
        torch.lerp(sign_l, a, omega, out=u)  # exactly a at ω = 1, sign(cᴸ) at ω = 0
    mo.lion_avg.lerp_(grad, 1.0 - lion_b2)
    if not want:
        return u
    assert out is not None

    # Derivatives, with the moments of step t−1 held fixed.
    k_v = g2 if g2 is not ghat2 else y  # reuse a buffer that is free now: ∂u/∂V
    if want & {"beta2", "beta3", "rho", "c"}:
        # ∂u/∂V = −ω a/(2 sqrt(V) D); where V = 0 every gradient so far was 0, and a = 0.
        torch.mul(root, den, out=k_v).clamp_min_(torch.finfo(root.dtype).tiny)
        torch.div(a, k_v, out=k_v).mul_(omega * -0.5 * out_scale)  # (scaled)
    avg_w = rho + (1.0 - rho) / step  # ∂V/∂v̂, through v̂ and ṽ
    dv_scale = avg_w * (1.0 - b2) / bc2  # ∂V/∂g̃²
    if "beta1" in want:
        r = deriv("beta1")
        _axpy_(r, mo.exp_avg, prod1 / bc1).div_(den).mul_(omega * out_scale / bc1)
    if "beta2" in want:
        r = deriv("beta2")
        _axpy_(r, mo.exp_avg_sq, prod2 / bc2).mul_(k_v).mul_(avg_w / bc2)
    if "beta3" in want:
        r = deriv("beta3")
        r.mul_(b3).add_(mo.exp_diff).div_(den).mul_(omega * out_scale)  # ω/D · ∂N/∂β3
        tmp = ghat2  # free now: (c + (1−c) s) 2 ĝ d ∂u/∂V ∂V/∂g̃²
        torch.mul(sgn, 1.0 - c, out=tmp).add_(c).mul_(ghat).mul_(d).mul_(k_v)
        _axpy_(r, tmp, dv_scale * 2.0)
    if "rho" in want:
        torch.sub(vhat, mo.exp_avg_sq_mean, out=deriv("rho")).mul_(k_v)
    if "c" in want:
        deriv("c").mul_(k_v).mul_(dv_scale)
    if "omega" in want:
        torch.sub(a, sign_l, out=deriv("omega")).mul_(out_scale)
    return u
