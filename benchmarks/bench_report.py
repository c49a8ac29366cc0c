"""Benchmark of ``stabcli report --html`` on large synthetic runs (128 points x 3000 steps).

Targets: the HTML is written in under 5 s and weighs under 15 MB, the slope profiles of
every point recomputed from the traces included (stabcli.measure, docs/theory.md (9.2));
that recomputation is also timed on its own. One run per optimizer is timed in the same
process (default Adam, k-Adam and HyperAdam): k-Adam's report adds every level against
its own bound, HyperAdam's the path bound recomputed along every recorded (β_n, γ_n)
(docs/theory.md §5) and the paths on the plane; the ratio to Adam's time is printed. The
synthetic runs are the report tests' fixture (tests/report/synthetic_run.py: traces
measured by the sweep's own code, no training).

    python benchmarks/bench_report.py [--points 128] [--steps 3000] [--repeats 3]
                                      [--optimizers adam,kadam,hyperadam]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from stabcli.report import load_run, write_html
from stabcli.report.profiles import _get_profiles_info

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "report"))
from synthetic_run import make_synthetic_run

TARGET_SECONDS = 5.0
TARGET_MB = 15.0


def _time_report(run_dir: Path, out: Path, repeats: int) -> tuple[list[float], list[float]]:
    """(seconds of `stabcli report RUN --html`, seconds of the profiles alone) per repeat."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()  # what `stabcli report RUN --html` does: read, draw, write
        write_html(load_run(run_dir), out)
        times.append(time.perf_counter() - start)
    run = load_run(run_dir)
    profile_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _get_profiles_info(run.points, run.traces, run.measure_settings)
        profile_times.append(time.perf_counter() - start)
    return times, profile_times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--optimizers", default="adam,kadam,hyperadam")
    args = parser.parse_args()
    optimizers = [o.strip() for o in args.optimizers.split(",") if o.strip()]
    ok = True
    medians: dict[str, float] = {}
    print(f"synthetic runs: {args.points} points x {args.steps} steps")
    with tempfile.TemporaryDirectory() as tmp:
        for optimizer in optimizers:
            start = time.perf_counter()
            run_dir = make_synthetic_run(
                Path(tmp) / optimizer,
                n_points=args.points,
                steps=args.steps,
                eval_every=100,
                optimizer=optimizer,
            )
            built = time.perf_counter() - start
            out = Path(tmp) / f"{optimizer}.html"
            times, profile_times = _time_report(run_dir, out, args.repeats)
            size_mb = out.stat().st_size / 1e6
            median = statistics.median(times)
            medians[optimizer] = median
            ratio = f", {median / medians['adam']:.2f}x Adam's" if "adam" in medians else ""
            print(
                f"{optimizer} (run built in {built:.1f} s): write HTML median {median:.2f} s over "
                f"{args.repeats} runs (min {min(times):.2f} s, max {max(times):.2f} s; target "
                f"< {TARGET_SECONDS:g} s){ratio}; slope profiles alone median "
                f"{statistics.median(profile_times):.2f} s; HTML {size_mb:.2f} MB "
                f"(target < {TARGET_MB:g} MB)"
            )
            ok &= median < TARGET_SECONDS and size_mb < TARGET_MB
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
