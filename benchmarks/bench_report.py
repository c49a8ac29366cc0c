"""Benchmark of ``stabcli report --html`` on a large synthetic run (128 points x 3000 steps).

Targets: the HTML is written in under 5 s and weighs under 15 MB, the slope profiles of
every point recomputed from the traces included (stabcli.measure, docs/theory.md (9.2));
that recomputation is also timed on its own. The synthetic run is the report tests'
fixture (tests/report/synthetic_run.py: traces measured by the sweep's own code, no
training).

    python benchmarks/bench_report.py [--points 128] [--steps 3000] [--repeats 3]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_dir = make_synthetic_run(
            Path(tmp) / "run", n_points=args.points, steps=args.steps, eval_every=100
        )
        built = time.perf_counter() - start
        out = Path(tmp) / "report.html"
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()  # what `stabcli report RUN --html` does: read, draw, write
            write_html(load_run(run_dir), out)
            times.append(time.perf_counter() - start)
        size_mb = out.stat().st_size / 1e6
        run = load_run(run_dir)
        profile_times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            _get_profiles_info(run.points, run.traces, run.measure_settings)
            profile_times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"synthetic run: {args.points} points x {args.steps} steps (built in {built:.1f} s)")
    print(
        f"write HTML: median {median:.2f} s over {args.repeats} runs "
        f"(min {min(times):.2f} s, max {max(times):.2f} s; target < {TARGET_SECONDS:g} s)"
    )
    print(
        f"  of which the slope profiles of every point, recomputed from the traces: median "
        f"{statistics.median(profile_times):.2f} s"
    )
    print(f"HTML size: {size_mb:.2f} MB (target < {TARGET_MB:g} MB)")
    ok = median < TARGET_SECONDS and size_mb < TARGET_MB
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
