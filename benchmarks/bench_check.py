"""Start-up cost of ``stabcli check`` against a bare Typer hello-world and bare ``python``.

Target: ``stabcli check 0.95 0.9`` within 1.3x the median wall time of a one-command Typer
hello-world app run by the same interpreter (written to a temporary file here), i.e. check
should cost little more than Typer itself. Bare ``python -c pass`` is shown for scale.
Runs are interleaved (bare, hello, module, script, bare, ...) so that drifts in machine
load hit every command alike; a couple of warm-up rounds fill the OS file cache first.

    python benchmarks/bench_check.py            # 21 timed runs of each command
    python benchmarks/bench_check.py --runs 41
    python benchmarks/bench_check.py --cached-bytecode

Every command runs with the caller's environment. Where PYTHONDONTWRITEBYTECODE is set,
each run compiles stabcli's sources again (site-packages have their bytecode from
install): ``--cached-bytecode`` times all commands with bytecode cached in a temporary
PYTHONPYCACHEPREFIX instead, as after any ordinary install.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository, so `-m stabcli` resolves
POINT = ["0.95", "0.9"]  # (β, γ) in the paper's order: torch betas=(0.9, 0.95)
TARGET_RATIO = 1.3  # median of `stabcli check` / median of the Typer hello-world
BARE = "python -c pass"
HELLO = "typer hello-world"
HELLO_APP = """\
import typer

app = typer.Typer()


@app.command()
def hello(name: str = "world") -> None:
    typer.echo(f"hello {name}")


if __name__ == "__main__":
    app()
"""


def commands(hello_path: Path) -> dict[str, list[str]]:
    """The commands to time, by label; the console script only where it is installed."""
    out = {
        BARE: [sys.executable, "-c", "pass"],
        HELLO: [sys.executable, str(hello_path)],
        "python -m stabcli check": [sys.executable, "-m", "stabcli", "check", *POINT],
    }
    # The console script that belongs to this interpreter's environment, not any other.
    script = shutil.which("stabcli", path=str(Path(sys.executable).parent))
    if script:
        out["stabcli check"] = [script, "check", *POINT]
    return out


def time_once(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Wall-clock seconds for one run; a failing command stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        last = err[-1] if err else "(no stderr)"
        raise SystemExit(f"`{' '.join(argv)}` exited {done.returncode}: {last}")
    return elapsed


def run(
    cmds: dict[str, list[str]], runs: int, warmup: int, env: dict[str, str] | None = None
) -> dict[str, list[float]]:
    """``runs`` interleaved timings of each command after ``warmup`` untimed rounds."""
    for _ in range(warmup):
        for argv in cmds.values():
            time_once(argv, env)
    times: dict[str, list[float]] = {label: [] for label in cmds}
    for _ in range(runs):
        for label, argv in cmds.items():  # interleaved: one run of each per round
            times[label].append(time_once(argv, env))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="timed runs per command (>= 15)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument(
        "--cached-bytecode",
        action="store_true",
        help="cache bytecode in a temporary PYTHONPYCACHEPREFIX (as after an install)",
    )
    args = parser.parse_args()
    if args.runs < 15:
        parser.error("--runs must be at least 15")

    with tempfile.TemporaryDirectory() as tmp:
        hello_path = Path(tmp) / "hello.py"
        hello_path.write_text(HELLO_APP, encoding="utf-8")
        env = None
        if args.cached_bytecode:
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        times = run(commands(hello_path), args.runs, max(args.warmup, 1), env)

    bare = statistics.median(times[BARE])
    hello = statistics.median(times[HELLO])
    print(f"python {sys.version.split()[0]} at {sys.executable}; {os.cpu_count()} CPUs")
    print(f"{args.runs} interleaved runs per command, after {args.warmup} warm-up rounds")
    if args.cached_bytecode:
        print("bytecode cached in a temporary PYTHONPYCACHEPREFIX")
    elif os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("PYTHONDONTWRITEBYTECODE is set: each run compiles stabcli's sources")
    print(f"{'command':<26} {'median':>9} {'min':>9} {'max':>9} {'/bare':>7} {'/hello':>7}")
    ok = True
    for label, samples in times.items():
        median = statistics.median(samples)
        print(
            f"{label:<26} {median:>8.4f}s {min(samples):>8.4f}s {max(samples):>8.4f}s"
            f" {median / bare:>6.2f}x {median / hello:>6.2f}x"
        )
        if label not in (BARE, HELLO):
            ok &= median / hello <= TARGET_RATIO
    verdict = "meets" if ok else "MISSES"
    print(f"{verdict} the target: check's median <= {TARGET_RATIO:g}x the Typer hello-world's")


if __name__ == "__main__":
    main()
