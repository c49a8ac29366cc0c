"""The monitor's device side: θ_n copied before each step, ‖θ_n − θ_{n+1}‖∞ per tensor after it.

docs/theory.md (1.5): the max-update is ‖u_n‖∞ = ‖θ_{n+1} − θ_n‖∞ / η_n, the largest
coordinate over all parameter tensors; under decoupled weight decay the step also holds
λθ_n, so λ‖θ_n‖∞ is recorded beside it (the probe engine's ``wd_term``).

Per step, with preallocated buffers and no host synchronisation:

- before ``step()``: ``θ_n`` is copied into a buffer per parameter (one foreach copy);
- after ``step()``: the extremes of θ_n (for λ‖θ_n‖∞ and for the measurement's rounding,
  ε‖θ_n‖∞/η_n); then the buffer becomes θ_n − θ_{n+1} (one foreach subtraction) and its
  extremes are written into row r of a (K, 2, T) device buffer of per-tensor (min, max).

:meth:`DeviceRecords.fetch` copies the finished rows to the host every K steps (the only
synchronisation); the inf-norm max(max, −min), the division by η_n and the max over
tensors happen there, in float64. On CPU the extremes come from ``torch.aminmax``, one
pass over memory (``torch._foreach_norm(ord=inf)`` is several times slower there); on other
devices from ``torch._foreach_norm(ord=inf)``, one fused launch, stored as the max with a
min of 0. NaN and inf propagate either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class _Bucket:
    """The tracked tensors that live on one device, and that device's buffers."""

    index: np.ndarray  # (T_d,) positions of these tensors among all tracked tensors
    params: list[torch.Tensor]
    prev: list[torch.Tensor]  # θ_n, then θ_n − θ_{n+1}
    stats: torch.Tensor  # (K, 2, T_d): rows, (min, max), tensors: of θ_n − θ_{n+1}
    theta: torch.Tensor  # (K, 2, T_d): the same of θ_n


def _extremes(tensors: list[torch.Tensor], out: torch.Tensor) -> None:
    """Write per-tensor (min, max) into ``out`` (2, T), or (0, ‖·‖∞) off the CPU."""
    if not tensors:
        return
    if out.device.type == "cpu":
        pairs = [torch.aminmax(t) for t in tensors]
        torch.stack([p.min for p in pairs], out=out[0])
        torch.stack([p.max for p in pairs], out=out[1])
    else:  # out[0] stays 0 from allocation: max(‖·‖∞, −0) = ‖·‖∞
        torch.stack(torch._foreach_norm(tensors, math.inf), out=out[1])


class DeviceRecords:
    """Preallocated copies of θ_n and a (K, 2, T) record per device (module docstring)."""

    def __init__(self, params: list[torch.Tensor], rows: int):
        self.n_tensors = len(params)
        self.rows = rows
        stats_dtype = torch.float64 if any(p.dtype == torch.float64 for p in params) else None
        by_device: dict[torch.device, list[int]] = {}
        for i, p in enumerate(params):
            by_device.setdefault(p.device, []).append(i)
        self.buckets: list[_Bucket] = []
        with torch.no_grad():
            for device, positions in by_device.items():
                tensors = [params[i] for i in positions]
                prev = [torch.empty_like(p, memory_format=torch.preserve_format) for p in tensors]
                shape, dtype = (rows, 2, len(tensors)), stats_dtype or torch.float32
                self.buckets.append(
                    _Bucket(
                        index=np.asarray(positions, dtype=np.intp),
                        params=tensors,
                        prev=prev,
                        stats=torch.zeros(shape, dtype=dtype, device=device),
                        theta=torch.zeros(shape, dtype=dtype, device=device),
                    )
                )

    @torch.no_grad()
    def snapshot(self) -> None:
        """Copy θ_n (before the optimizer's step)."""
        for b in self.buckets:
            torch._foreach_copy_(b.prev, b.params)

    @torch.no_grad()
    def record(self, row: int) -> None:
        """Record row ``row``: extremes of θ_n, then of θ_n − θ_{n+1}."""
        for b in self.buckets:
            _extremes(b.prev, b.theta[row])
            torch._foreach_sub_(b.prev, b.params)
            _extremes(b.prev, b.stats[row])

    def fetch(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """(‖θ_n − θ_{n+1}‖∞, ‖θ_n‖∞) of the first ``rows`` rows, each (rows, T) float64 on the
        host. One copy per device."""
        step = np.full((rows, self.n_tensors), np.nan)
        theta = np.full((rows, self.n_tensors), np.nan)
        for b in self.buckets:
            both = torch.stack([b.stats[:rows], b.theta[:rows]]).to("cpu", torch.float64)
            stats, values = both.numpy()  # each (R, 2, T_d)
            step[:, b.index] = np.maximum(stats[:, 1], -stats[:, 0])
            theta[:, b.index] = np.maximum(values[:, 1], -values[:, 0])
        return step, theta
