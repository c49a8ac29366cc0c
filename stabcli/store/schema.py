"""The columns of a run directory's files (README, "Run directories").

The sweep and the monitor write them and the report reads them; this is their one
definition. The measurement columns are those of :class:`stabcli.measure.PointMeasurement`
(docs/theory.md §9), one per figure a reader may need to check a verdict.

Every points.csv has :data:`POINT_COLUMNS`. Some runs add optional columns after them:
k-Adam sweeps :data:`KADAM_POINT_COLUMNS` (and one ``level_ratio_l<i>`` per level,
:func:`level_ratio_column`), HyperAdam and MADA sweeps :data:`PATH_POINT_COLUMNS`, monitor
runs :data:`MONITOR_POINT_COLUMNS`. Likewise traces have :data:`TRACE_COLUMNS` and, by
optimizer or origin, :data:`KADAM_TRACE_PREFIX` columns, :data:`PATH_TRACE_COLUMNS`,
:data:`MADA_TRACE_COLUMNS` or :data:`MONITOR_TRACE_COLUMNS`.
"""

#: points.csv, in order (the store appends ``batch``, the file holding the point's traces).
POINT_COLUMNS = (
    # identity: the point in both conventions, and what each theory says of it
    "point_id",  # content-derived id: settings fingerprint + exact β, γ
    "position",  # position along the region, 0..1
    "beta",  # paper's β = torch beta2
    "gamma",  # paper's γ = torch beta1
    "torch_beta1",
    "torch_beta2",
    "c_value",  # C(β, γ) = 2/γ − 1/β − 1 (paper Section 3.1)
    "paper_region",  # B+, B0 or B-
    "exact_stable",  # γ² < β (docs/theory.md §3)
    # the valid window (docs/theory.md (9.3)): where a rate is compared with theory
    "settle_step",  # first step where the window's rule holds; empty if never
    "window_rule",  # growth, bounded or boundary: which rule opened the window
    "window_start",  # first step of the window
    "window_stop",  # one past its last step
    "steps_needed",  # shortest run whose window holds enough settled steps
    # the rate over the window and the class it implies (docs/theory.md (9.4), (9.5))
    "rate",  # least-squares slope of log‖u_n‖∞ per step over the window
    "rate_stderr",  # its AR(1)-corrected standard error
    "rate_low",  # rate − t·stderr at the run's confidence level
    "rate_high",  # rate + t·stderr
    "rate_lag1",  # lag-1 autocorrelation of the fit's residuals
    "measured_class",  # growing, bounded, undetermined or diverged
    "class_reason",  # why undetermined or diverged; empty otherwise
    # the paper's central difference (App. H; docs/theory.md (9.8))
    "central_slope",  # (log u_{n+5} − log u_{n−5}) / 10 at n = central_at
    "central_at",  # the step n of that difference (--slope-at)
    # growth on the boundary (docs/theory.md §4)
    "power_exponent",  # slope of log u_n against log(n + 1) after the settle step
    "power_halfwidth",  # its interval's half-width
    "growth_shape",  # bounded, power law, exponential or undetermined
    "sqrt_n",  # a power law with exponent ½
    # each theory's verdict (docs/theory.md (9.7))
    "paper_rate",  # |C|/2 in B−, else 0
    "paper_verdict",
    "paper_rel_error",  # |paper_rate − rate| / rate where growth was predicted and seen
    "exact_rate",  # mean ρ_n over the window when γ² > β, else 0
    "exact_verdict",
    "exact_rel_error",
    "closer_theory",  # paper, exact or both: within 10% of the rate; empty otherwise
    # the exact bound check (docs/theory.md (9.6)); for k-Adam against the last level's
    # bound (docs/theory.md (6.3)), for learned betas against the path's (§5, (7.5))
    "bound_ratio_max",  # max over all n of u_n / (bound_n + λ‖θ_n‖∞)
    "bound_ratio_step",  # the n where it is reached
    "bound_ratio_settled",  # the same max over the valid window: past the transient
    "bound_check",  # within the bound, … up to rounding, numerically invalid, above the
    # bound, or (MADA off its Adam-AVGrad-Lion face) no bound off the Adam-AVGrad-Lion face
    "bound_note",  # the rounding tolerance used, or why the point is numerically invalid
    # the rest
    "diverged_step",  # first step whose loss or max-update was not finite, or empty
    "underflow_step",  # first step whose max came from v below the dtype's normal range
    "max_tensor",  # tensor holding the max-update most often over the valid window
    "final_loss",
    "best_test_loss",
)
#: k-Adam's points.csv columns (after POINT_COLUMNS). A k-Adam point's theory and
#: measurement columns (c_value, paper_region, exact_stable, the window, both theories'
#: rates and verdicts, the bound check) are those of its last level's (β_k, γ_k), which
#: bounds the update (docs/theory.md (6.3)); ``beta`` and ``gamma`` stay the base pair the
#: strategy started from (the point of the region).
KADAM_POINT_COLUMNS = (
    "level_beta",  # β_i of the levels (paper App. P: every strategy gives all levels one pair)
    "level_gamma",  # γ_i of the levels
    "level_worst",  # the level whose ‖u^(i)‖∞ / bound(β_i, γ_i) is largest (1..k)
    "level_ratio_max",  # that ratio: max over n and levels
    "level_ratio_step",  # the n where it is reached
    "level_check",  # its words (within the bound, …, above the bound: a falsification)
    # then level_ratio_l1 .. level_ratio_lk: max over n of ‖u^(i)_n‖∞ / U_n(β_i, γ_i)
)
#: HyperAdam's and MADA's points.csv columns (after POINT_COLUMNS). ``beta``, ``gamma``,
#: c_value, paper_region and exact_stable are of the starting pair (the point of the
#: region); the window and the paper's verdict are of the final pair; the bound check, the
#: exact rate and verdict are the path's (docs/theory.md §5, (5.7); MADA (7.5)).
PATH_POINT_COLUMNS = (
    "final_beta",  # β at the last step (torch beta2)
    "final_gamma",  # γ at the last step (torch beta1)
    "first_unstable_step",  # first n with γ_n² > β_n; empty if the path never entered
    "unstable_class",  # the max-update over the steps after it: growing, bounded,
    # undetermined, or "no valid window" (fewer than min_window steps); empty if never
    "unstable_rate",  # slope of log‖u_n‖∞ per step over those steps
    "unstable_rate_low",  # its interval
    "unstable_rate_high",
    "unstable_reason",  # why undetermined or no valid window
    "bound_kind",  # path, MADA face, or none (MADA off its Adam-AVGrad-Lion face)
    "off_face_step",  # MADA: first step with β3 > 0 or c < 1; empty if none
)
#: A monitor run's points.csv columns (after POINT_COLUMNS).
MONITOR_POINT_COLUMNS = (
    "param_groups",  # the param groups the point covers, e.g. "0,1"
    "path",  # "constant" or "moving": whether (β, γ) changed during the run
)


def level_ratio_column(level: int) -> str:
    """points.csv's column of level ``level``'s (1..k) bound ratio: ``level_ratio_l<i>``."""
    return f"level_ratio_l{level}"


#: points.csv columns holding text (with the store's ``batch``); the bool ones are booleans.
POINT_TEXT_COLUMNS = (
    "point_id",
    "paper_region",
    "window_rule",
    "measured_class",
    "class_reason",
    "growth_shape",
    "paper_verdict",
    "exact_verdict",
    "closer_theory",
    "bound_check",
    "bound_note",
    "max_tensor",
)
#: Optional points.csv columns holding text (the others hold numbers).
OPTIONAL_TEXT_COLUMNS = (
    "level_check",
    "unstable_class",
    "unstable_reason",
    "bound_kind",
    "param_groups",
    "path",
)
POINT_BOOL_COLUMNS = ("exact_stable", "sqrt_n")
#: Whole-number columns of points.csv written before the measurement module (read back
#: as written: whole numbers).
LEGACY_INT_COLUMNS = ("slope_step",)
#: points.csv columns holding whole numbers (written as 50, never 50.0; empty when unknown).
POINT_INT_COLUMNS = (
    "settle_step",
    "window_start",
    "window_stop",
    "steps_needed",
    "central_at",
    "bound_ratio_step",
    "diverged_step",
    "underflow_step",
    "level_worst",
    "level_ratio_step",
    "first_unstable_step",
    "off_face_step",
    *LEGACY_INT_COLUMNS,
)
POINT_NUMBER_COLUMNS = tuple(
    c for c in POINT_COLUMNS if c not in POINT_TEXT_COLUMNS + POINT_BOOL_COLUMNS
)
#: traces/*.parquet, one row per point and step n, and evals/*.parquet.
TRACE_COLUMNS = (
    "point_id",
    "step",  # n
    "max_update",  # ‖θ_{n+1} − θ_n‖∞/η_n = ‖u_n + λθ_n‖∞ (λθ_n under decoupled decay only)
    "max_tensor",  # the parameter tensor holding it
    "loss",  # training loss at step n (NaN in a monitor run: it sees the optimizer only)
    "lr",  # η_n
    "wd_term",  # λ‖θ_n‖∞ under decoupled decay (the measured step's part that is not u_n)
)
#: k-Adam's traces: ``max_update_l1`` .. ``max_update_lk``, ‖u^(i)_n‖∞ of level i before
#: λθ_n (docs/theory.md §6).
KADAM_TRACE_PREFIX = "max_update_l"
#: HyperAdam's (and a monitor's) traces: the (β_n, γ_n) that made step n (docs/theory.md §5).
PATH_TRACE_COLUMNS = ("beta", "gamma")
#: MADA's traces: its coefficients q of step n besides β and γ (docs/theory.md (7.1)):
#: Adan's β3, AVGrad's ρ, Yogi's c and Lion's weight ω.
MADA_TRACE_COLUMNS = ("beta3", "rho", "c", "omega")
#: A monitor run's traces: the path, its bound at step n (the exact, path or MADA bound,
#: without λ‖θ_n‖∞) and ``resolution``, 2ε‖θ_n‖∞/η_n: the rounding of a step read from the
#: parameters, which the monitor's bound check allows for.
MONITOR_TRACE_COLUMNS = ("beta", "gamma", "bound", "resolution")
EVAL_COLUMNS = ("point_id", "step", "test_loss")


def level_trace_column(level: int) -> str:
    """traces' column of level ``level``'s (1..k) max-update: ``max_update_l<i>``."""
    return f"{KADAM_TRACE_PREFIX}{level}"
