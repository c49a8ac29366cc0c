"""Start-up cost of ``stabcli check``: the whole process against a bare ``python -c pass``.

Issue 3's target: ``stabcli check 0.95 0.9`` under 0.25 s median and at most 3x the bare
interpreter's start, on a 2-core machine. Runs are interleaved (bare, module, script, bare,
...) so that drifts in machine load hit every command alike; a couple of warm-up rounds
fill the OS file cache first.

    python benchmarks/bench_check.py            # 21 timed runs of each command
    python benchmarks/bench_check.py --runs 41
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository, so `-m stabcli` resolves
POINT = ["0.95", "0.9"]  # (β, γ) in the paper's order: torch betas=(0.9, 0.95)
TARGET_SECONDS = 0.25  # issue 3: median wall time of `stabcli check`
TARGET_RATIO = 3.0  # issue 3: at most 3x bare Python start


def commands() -> dict[str, list[str]]:
    """The commands to time, by label; the console script only where it is installed."""
    out = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -m stabcli check": [sys.executable, "-m", "stabcli", "check", *POINT],
    }
    # The console script that belongs to this interpreter's environment, not any other.
    script = shutil.which("stabcli", path=str(Path(sys.executable).parent))
    if script:
        out["stabcli check"] = [script, "check", *POINT]
    return out


def time_once(argv: list[str]) -> float:
    """Wall-clock seconds for one run; a failing command stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        last = err[-1] if err else "(no stderr)"
        raise SystemExit(f"`{' '.join(argv)}` exited {done.returncode}: {last}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="timed runs per command (>= 15)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    args = parser.parse_args()
    if args.runs < 15:
        parser.error("--runs must be at least 15")

    cmds = commands()
    for _ in range(args.warmup):
        for argv in cmds.values():
            time_once(argv)
    times: dict[str, list[float]] = {label: [] for label in cmds}
    for _ in range(args.runs):
        for label, argv in cmds.items():  # interleaved: one run of each per round
            times[label].append(time_once(argv))

    bare = statistics.median(times["python -c pass"])
    print(f"python {sys.version.split()[0]} at {sys.executable}; {os.cpu_count()} CPUs")
    print(f"{args.runs} interleaved runs per command, after {args.warmup} warm-up rounds")
    print(f"{'command':<26} {'median':>9} {'min':>9} {'max':>9} {'ratio':>7}")
    ok = True
    for label, samples in times.items():
        median = statistics.median(samples)
        ratio = median / bare
        print(
            f"{label:<26} {median:>8.4f}s {min(samples):>8.4f}s {max(samples):>8.4f}s"
            f" {ratio:>6.2f}x"
        )
        if label != "python -c pass":
            ok &= median < TARGET_SECONDS and ratio <= TARGET_RATIO
    verdict = "meets" if ok else "MISSES"
    print(f"{verdict} issue 3's target: median < {TARGET_SECONDS} s and <= {TARGET_RATIO:g}x bare")


if __name__ == "__main__":
    main()
