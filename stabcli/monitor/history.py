"""The monitor's host side: every step's records, per param group, and the points they form.

Each host copy appends a block of steps. Per step and param group g it keeps the settings
(β, γ, η, λ, …: :mod:`stabcli.monitor.groups`), and from the per-tensor
‖θ_n − θ_{n+1}‖∞ of the device records (:mod:`stabcli.monitor.device`):

- max_update = max over g's tensors of ‖θ_n − θ_{n+1}‖∞ / η_{n,g} (docs/theory.md (1.5));
- tensor: the tensor holding it (the first one on ties, as the probe engine's argmax);
- wd_term = λ_{n,g} ‖θ_n‖∞ over g's tensors under decoupled decay, else 0;
- resolution = 2 ε ‖θ_n‖∞ / η_{n,g}, with ε of the dtype of the tensor holding the max and
  ‖θ_n‖∞ over g's tensors: θ_{n+1} is rounded to its dtype (once by Adam, once more by
  AdamW's decay), so a max-update read from parameters is known to within this, on top of
  the rounding of u_n itself. Where the device recorded ‖θ_n‖∞ only at a block's first
  step s (groups without decoupled decay), ‖θ_n‖∞ <= ‖θ_s‖∞ + Σ_{s<=k<n} ‖θ_{k+1} − θ_k‖∞
  (triangle inequality) is used: an upper bound, so the resolution stays conservative.

A step with η = 0 moved nothing that could be divided by η and is left unmeasured, as are
the steps skipped by ``every``. Memory is O(steps × groups): per-tensor values are reduced
as soon as they reach the host.

A *point* is what the measurement compares with one (β, γ) path: all groups together while
they share the same path (the maximum over all tensors, as the probe engine records it),
else each group on its own (:meth:`History.points`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Settings columns that define a point's path (not η or λ, which the bound does not see).
_PATH_FIELDS = ("beta", "gamma", "rho", "omega", "c", "beta3")


class _Growing:
    """An array that grows along its first axis by appended blocks."""

    def __init__(self, shape: tuple[int, ...], dtype: type | np.dtype) -> None:
        self._blocks: list[np.ndarray] = [np.empty((0, *shape), dtype=dtype)]
        self._whole: np.ndarray | None = None

    def append(self, block: np.ndarray) -> None:
        self._blocks.append(block)
        self._whole = None

    @property
    def whole(self) -> np.ndarray:
        if self._whole is None:
            self._whole = np.concatenate(self._blocks)
            self._blocks = [self._whole]
        return self._whole


@dataclass(frozen=True)
class PointTrace:
    """One point's records at every step seen; arrays (S,): steps."""

    groups: tuple[int, ...]  # param groups it covers
    steps: np.ndarray  # optimizer step n (consecutive)
    measured: np.ndarray  # bool: max_update was recorded at this step
    settings: dict[str, np.ndarray]  # beta, gamma, lr, weight_decay (+ MADA's): the group's,
    # or for lr and weight_decay the group holding the max
    max_update: np.ndarray  # ‖θ_{n+1} − θ_n‖∞ / η_n; nan where not measured
    max_tensor: np.ndarray  # object: name of the tensor holding it; None where not measured
    wd_term: np.ndarray  # λ‖θ_n‖∞ (max over the covered groups), 0 without decoupled decay
    resolution: np.ndarray  # 2ε‖θ_n‖∞/η_n of the tensor holding the max (module docstring)

    @property
    def beta(self) -> np.ndarray:
        return self.settings["beta"]

    @property
    def gamma(self) -> np.ndarray:
        return self.settings["gamma"]

    @property
    def moving(self) -> bool:
        """Whether (β, γ) (or MADA's coefficients) changed during the recorded steps."""
        return any(
            np.any(values != values[0])
            for name, values in self.settings.items()
            if name in _PATH_FIELDS and values.size
        )


def _bounded(theta: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """‖θ_n‖∞ where recorded, else the last recorded value plus the steps since (module
    docstring); ``moved`` (M,) is ‖θ_{n+1} − θ_n‖∞ of each row. nan before any record."""
    before = np.concatenate([[0.0], np.cumsum(moved)[:-1]])  # Σ over earlier rows
    known = ~np.isnan(theta)
    if known.all():
        return theta
    last = np.maximum.accumulate(np.where(known, np.arange(theta.size), -1))
    base = np.where(last >= 0, theta[np.maximum(last, 0)] - before[np.maximum(last, 0)], np.nan)
    return np.where(known, theta, base + before)


class History:
    """Host-side records of every step (module docstring)."""

    def __init__(
        self,
        fields: tuple[str, ...],  # settings columns (groups.BASE_FIELDS [+ MADA_FIELDS])
        group_of: np.ndarray,  # (T,) param group of each tracked tensor
        n_groups: int,
        names: list[str],  # (T,) tensor names
        eps: np.ndarray,  # (T,) machine epsilon of each tensor's dtype
        decoupled: tuple[bool, ...],  # (G,) decoupled weight decay per group
    ) -> None:
        self.fields = fields
        self.names = np.asarray(names, dtype=object)
        self._eps = np.asarray(eps, dtype=np.float64)
        self.n_groups = n_groups
        self._members = [np.flatnonzero(group_of == g) for g in range(n_groups)]
        self._decoupled = decoupled
        self._path_columns = [i for i, f in enumerate(fields) if f in _PATH_FIELDS]
        g, f = n_groups, len(fields)
        self._steps = _Growing((), np.int64)
        self._settings = _Growing((g, f), np.float64)  # (S, G, F)
        self._measured = _Growing((g,), np.bool_)  # (S, G)
        self._max_update = _Growing((g,), np.float64)  # (S, G)
        self._tensor = _Growing((g,), np.int64)  # (S, G) index into names, −1 if none
        self._wd_term = _Growing((g,), np.float64)  # (S, G)
        self._resolution = _Growing((g,), np.float64)  # (S, G)
        self.groups_differ = False  # some step had groups on different paths

    def __len__(self) -> int:
        return len(self._steps.whole)

    def append(
        self,
        steps: np.ndarray,  # (R,) optimizer steps of the block
        settings: np.ndarray,  # (R, G, F) float64
        measured: np.ndarray,  # (R,) bool: the device recorded these rows
        step_norm: np.ndarray,  # (M, T) ‖θ_n − θ_{n+1}‖∞ of the M measured rows, in order
        theta_norm: np.ndarray,  # (M, G) ‖θ_n‖∞ per group
    ) -> None:
        """Reduce a block of records to per-group values and keep them."""
        r, g = len(steps), self.n_groups
        lr = settings[:, :, self.fields.index("lr")]  # (R, G)
        wd = settings[:, :, self.fields.index("weight_decay")]  # (R, G)
        ok = measured[:, None] & (lr > 0) & np.isfinite(lr)  # (R, G)
        max_update = np.full((r, g), np.nan)
        tensor = np.full((r, g), -1, dtype=np.int64)
        wd_term = np.zeros((r, g))
        resolution = np.zeros((r, g))
        rows = np.flatnonzero(measured)  # (M,) rows of the block that step_norm holds
        for k, members in enumerate(self._members):
            ok[:, k] &= members.size > 0
            if not members.size:
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                u = step_norm[:, members] / lr[rows, k][:, None]  # (M, T_g)
            at = u.argmax(axis=1)  # first max; a nan counts as the max (it propagates)
            max_update[rows, k] = u[np.arange(len(rows)), at]
            tensor[rows, k] = held = members[at]
            theta = _bounded(theta_norm[:, k], step_norm[:, members].max(axis=1))  # (M,)
            with np.errstate(divide="ignore", invalid="ignore"):
                resolution[rows, k] = 2.0 * self._eps[held] * theta / lr[rows, k]
            if self._decoupled[k]:
                wd_term[rows, k] = wd[rows, k] * theta
        max_update[~ok] = np.nan
        tensor[~ok] = -1
        wd_term[~ok] = 0.0
        resolution[~ok] = 0.0
        path = settings[:, :, self._path_columns]  # (R, G, P)
        self.groups_differ |= bool(np.any(path != path[:, :1]))
        self._steps.append(np.asarray(steps, dtype=np.int64))
        self._settings.append(settings)
        self._measured.append(ok)
        self._max_update.append(max_update)
        self._tensor.append(tensor)
        self._wd_term.append(wd_term)
        self._resolution.append(resolution)

    def points(self) -> tuple[tuple[int, ...], ...]:
        """All groups as one point while they share their path, else one point per group."""
        if self.groups_differ:
            return tuple((g,) for g in range(self.n_groups))
        return (tuple(range(self.n_groups)),)

    def point(self, groups: tuple[int, ...], since: int = 0) -> PointTrace:
        """The records of the point covering ``groups`` (module docstring), from the
        history's row ``since`` on."""
        cols = list(groups)
        steps = self._steps.whole[since:]
        measured = self._measured.whole[since:, cols]  # (S, k)
        u = self._max_update.whole[since:, cols]  # (S, k)
        chosen = np.where(measured, u, -np.inf).argmax(axis=1)  # (S,) group holding the max
        rows = np.arange(len(steps))
        any_measured = np.asarray(measured.any(axis=1), dtype=bool)
        settings = self._settings.whole[since:, cols]  # (S, k, F)
        values = {name: settings[:, 0, i] for i, name in enumerate(self.fields)}
        for name in ("lr", "weight_decay"):  # the group whose step is the max
            values[name] = settings[rows, chosen, self.fields.index(name)]
        tensor = self._tensor.whole[since:][rows, np.asarray(cols)[chosen]]
        names = np.full(len(steps), None, dtype=object)
        named = any_measured & (tensor >= 0)
        names[named] = self.names[tensor[named]]
        wd = np.where(measured, self._wd_term.whole[since:, cols], 0.0).max(axis=1)
        resolution = self._resolution.whole[since:][rows, np.asarray(cols)[chosen]]
        return PointTrace(
            groups=tuple(groups),
            steps=steps,
            measured=any_measured,
            settings=values,
            max_update=np.where(any_measured, u[rows, chosen], np.nan),
            max_tensor=names,
            wd_term=wd,
            resolution=np.where(any_measured, resolution, 0.0),
        )
