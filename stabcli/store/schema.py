"""The columns of a run directory's files (README, "Run directories").

The sweep writes them and the report reads them; this is their one definition. The
measurement columns are those of :class:`stabcli.measure.PointMeasurement`
(docs/theory.md §9), one per figure a reader may need to check a verdict.
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
    # the exact bound check (docs/theory.md (9.6))
    "bound_ratio_max",  # max over all n of u_n / (bound_n + λ‖θ_n‖∞)
    "bound_ratio_step",  # the n where it is reached
    "bound_ratio_settled",  # the same max over the valid window: past the transient
    "bound_check",  # within the bound, … up to rounding, numerically invalid, above the bound
    "bound_note",  # the rounding tolerance used, or why the point is numerically invalid
    # the rest
    "diverged_step",  # first step whose loss or max-update was not finite, or empty
    "underflow_step",  # first step whose max came from v below the dtype's normal range
    "max_tensor",  # tensor holding the max-update most often over the valid window
    "final_loss",
    "best_test_loss",
)
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
    *LEGACY_INT_COLUMNS,
)
POINT_NUMBER_COLUMNS = tuple(
    c for c in POINT_COLUMNS if c not in POINT_TEXT_COLUMNS + POINT_BOOL_COLUMNS
)
#: traces/*.parquet and evals/*.parquet.
TRACE_COLUMNS = ("point_id", "step", "max_update", "max_tensor", "loss", "lr", "wd_term")
EVAL_COLUMNS = ("point_id", "step", "test_loss")
