"""The columns of a run directory's files (README, "Run directories").

The sweep writes them and the report reads them; this is their one definition.
"""

#: points.csv, in order (the store appends ``batch``, the file holding the point's traces).
POINT_COLUMNS = (
    "point_id",  # content-derived id: settings fingerprint + exact β, γ
    "position",  # position along the region, 0..1
    "beta",  # paper's β = torch beta2
    "gamma",  # paper's γ = torch beta1
    "torch_beta1",
    "torch_beta2",
    "c_value",  # C(β, γ)
    "paper_region",  # B+, B0 or B-
    "exact_stable",  # γ² < β
    "paper_rate",  # |C|/2 in B−, else 0
    "exact_rate",  # ρ_n at the slope step when γ² > β, else 0
    "measured_slope",  # central difference at the slope step (paper App. H)
    "fit_slope",  # least squares around the slope step
    "measured_class",  # growing, bounded or diverged
    "diverged_step",  # first non-finite step, or empty
    "underflow_step",  # first step whose max came from v below the dtype's normal range
    "bound_ratio_max",  # max_n measured / exact bound
    "max_tensor",  # tensor holding the max-update at the slope step
    "agrees_with",  # both, paper, exact or neither
    "final_loss",
    "best_test_loss",
    "slope_step",
)
#: points.csv columns holding text (with the store's ``batch``); exact_stable is boolean.
POINT_TEXT_COLUMNS = ("point_id", "paper_region", "measured_class", "max_tensor", "agrees_with")
POINT_BOOL_COLUMNS = ("exact_stable",)
#: points.csv columns holding whole numbers (written as 50, never 50.0; empty when unknown).
POINT_INT_COLUMNS = ("diverged_step", "underflow_step", "slope_step")
POINT_NUMBER_COLUMNS = tuple(
    c for c in POINT_COLUMNS if c not in POINT_TEXT_COLUMNS + POINT_BOOL_COLUMNS
)
#: traces/*.parquet and evals/*.parquet.
TRACE_COLUMNS = ("point_id", "step", "max_update", "max_tensor", "loss", "lr", "wd_term")
EVAL_COLUMNS = ("point_id", "step", "test_loss")
