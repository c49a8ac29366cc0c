"""The red team's table: bad inputs to `stabcli`, `stabcli sweep` and `stabcli report`.

Each must give exactly one stderr line starting "stabcli: error:", exit code 2, no
traceback, and leave the directory tree exactly as it was (nothing created, nothing
removed, no byte changed).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from stabcli.cli import main

FAST = ["--preset", "mlp-synthetic", "--steps", "20"]
POINT = ["--point", "0.9,0.5"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, complete sweep (2 points) to damage, copied for each case."""
    out = tmp_path_factory.mktemp("red-team") / "run"
    assert (
        main(["sweep", *FAST, "--point", "0.9,0.5", "--point", "0.99,0.9", "--out", str(out), "-q"])
        == 0
    )
    return out


def _toml(work: Path, name: str, text: str) -> str:
    path = work / f"{name}.toml"
    path.write_text(text)
    return str(path)


def _huge(key: str, section: str, value: str, extra: str = "") -> Callable[[Path], list[str]]:
    def case(work: Path) -> list[str]:
        text = f"[{section}]\n{key} = {value}\n{extra}"
        return ["sweep", "--preset", _toml(work, "huge", text), *POINT, "--out", "out"]

    return case


def _damaged(damage: Callable[[Path], None], *args: str) -> Callable[[Path], list[str]]:
    def case(work: Path) -> list[str]:
        damage(work / "run")
        return [args[0], *args[1:]] if args else ["report", "run"]

    return case


def _torn_row(run: Path) -> None:
    lines = (run / "points.csv").read_text().splitlines()
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    (run / "points.csv").write_text("\n".join(lines) + "\n")


def _contradiction(run: Path) -> None:
    points = pd.read_csv(run / "points.csv", dtype=str)
    points.loc[0, "torch_beta2"] = "0.95"  # β is torch's beta2: 0.9 ≠ 0.95
    points.to_csv(run / "points.csv", index=False)


def _beta_outside(run: Path) -> None:
    points = pd.read_csv(run / "points.csv", dtype=str)
    points.loc[0, ["beta", "torch_beta2"]] = "1.5"
    points.to_csv(run / "points.csv", index=False)


def _garbage_evals(run: Path) -> None:
    for file in (run / "evals").glob("*.parquet"):
        file.write_bytes(b"not parquet at all")


def _foreign(work: Path) -> list[str]:
    other = work / "mine"
    (other / "traces").mkdir(parents=True)
    (other / "config.json").write_text('{"my": "settings"}')
    (other / "points.csv").write_text("a,b\n1,2\n")
    (other / "traces" / "data.parquet").write_bytes(b"precious")
    return ["sweep", *FAST, *POINT, "--out", "mine", "--overwrite"]


def _symlinked_traces(work: Path) -> list[str]:
    elsewhere = work / "elsewhere"
    shutil.move(str(work / "run" / "traces"), elsewhere)
    (elsewhere / "other.parquet").write_bytes(b"precious")
    (work / "run" / "traces").symlink_to(elsewhere, target_is_directory=True)
    return ["sweep", *FAST, "--point", "0.9,0.5", "--point", "0.99,0.9", "--out", "run"]


def _points_file(
    content: str, *extra: str, name: str = "points.csv"
) -> Callable[[Path], list[str]]:
    def case(work: Path) -> list[str]:
        (work / name).write_text(content, encoding="utf-8")
        return ["sweep", *FAST, "--points-file", name, *extra, "--out", "out"]

    return case


def _plain(*args: str) -> Callable[[Path], list[str]]:
    return lambda work: list(args)


def _with_text(*args: str) -> Callable[[Path], list[str]]:
    def case(work: Path) -> list[str]:
        (work / "corpus.txt").write_text("some text\n" * 500)
        return list(args)

    return case


#: case id: (prepare the work folder and return argv, words the error must contain)
CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    # --- the command line itself
    "no-command": (_plain(), "missing command"),
    "unknown-command": (_plain("sweeep"), "No such command"),
    # --- sizes with no upper bound (7)
    "steps-31-digits": (
        _plain("sweep", *FAST[:2], "--steps", "1" + "0" * 30, *POINT, "--out", "o"),
        "train.steps = 1" + "0" * 30 + "; must be in [1, 1,000,000]",
    ),
    "steps-1e10": (_plain("sweep", "--steps", "1e10", *POINT, "--out", "o"), "--steps"),
    "seed-over-64-bits": (
        _plain("sweep", *FAST, "--seed", "100000000000000000000", *POINT, "--out", "o"),
        "train.seed = 100000000000000000000; must be in [0, 2**64)",
    ),
    "seed-negative": (
        _plain("sweep", *FAST, "--seed", "-1", *POINT, "--out", "o"),
        "train.seed = -1",
    ),
    "preset-seed": (_huge("seed", "train", "100000000000000000000"), "train.seed"),
    "preset-n_embd": (_huge("n_embd", "model", "1000000", "n_head = 1\n"), "model.n_embd"),
    "preset-n_layer": (_huge("n_layer", "model", "100000"), "model.n_layer"),
    "preset-batch_size": (_huge("batch_size", "train", "100000000"), "train.batch_size"),
    "preset-eval_batches": (
        _huge("eval_batches", "train", "1000000000", "eval_every = 10\n"),
        "train.eval_batches",
    ),
    "preset-corpus_chars": (_huge("corpus_chars", "data", "1000000000000"), "data.corpus_chars"),
    "preset-n_samples": (
        _huge(
            "n_samples",
            "data",
            "100000000000",
            'source = "synthetic-classes"\n[model]\nkind = "mlp"\n',
        ),
        "data.n_samples",
    ),
    "preset-memory": (
        _huge("n_embd", "model", "8192", "n_head = 8\nn_layer = 12\n"),
        "one probe point of preset huge needs about",
    ),
    "points-1e8": (
        _plain("sweep", *FAST, "--points", "100000000", "--out", "o"),
        "--points gives 100,000,000 points",
    ),
    "grid-1e10": (
        _plain("sweep", *FAST, "--grid", "0.5:0.99:100000,0.1:0.9:100000", "--out", "o"),
        "--grid gives 10,000,000,000 points",
    ),
    # --- small gaps (8)
    "grid-one-point-range": (
        _plain("sweep", *FAST, "--grid", "0.9:0.99:1,0.5:0.6:2", "--out", "o"),
        "ambiguous",
    ),
    "grid-inf": (
        _plain("sweep", *FAST, "--grid", "0.5:0.9:2,0.5:inf:2", "--out", "o"),
        "0.5:inf must be finite",
    ),
    "grid-and-span": (
        _plain("sweep", *FAST, "--grid", "0.5:0.9:2,0.5:0.6:2", "--span", "0.9:0.99", "--out", "o"),
        "--span applies only to",
    ),
    "point-and-through": (
        _plain("sweep", *FAST, *POINT, "--through", "0.99,0.9", "--out", "o"),
        "--through applies only to",
    ),
    "points-file-and-points": (
        _points_file("beta,gamma\n0.9,0.5\n", "--points", "7"),
        "--points applies only to",
    ),
    "through-and-torch-through": (
        _plain("sweep", *FAST, "--through", "0.999,0.9", "--torch-through", "0.9,0.999"),
        "--through or --torch-through, not both",
    ),
    "data-for-generated-data": (
        _with_text("sweep", *FAST, "--data", "corpus.txt", *POINT, "--out", "o"),
        "--data is set, but preset mlp-synthetic generates its data",
    ),
    "points-file-extra-column": (
        _points_file("beta,gamma\n0.9,0.5,0.7\n"),
        "--points-file points.csv, line 2: expected 2 values",
    ),
    "points-file-bad-header": (_points_file("b,g\n0.9,0.5\n"), "needs columns beta,gamma"),
    "points-file-markup-name": (
        _plain("sweep", *FAST, "--points-file", "[/x]missing.csv", "--out", "o"),
        "[/x]missing.csv",
    ),
    "points-per-batch-zero": (
        _plain("sweep", *FAST, *POINT, "--points-per-batch", "0", "--out", "o"),
        "--points-per-batch",
    ),
    "slope-at-outside": (
        _plain("sweep", *FAST, *POINT, "--slope-at", "500", "--out", "o"),
        "--slope-at must be between 5 and 14",
    ),
    # --- data safety (1-4)
    "other-settings-same-out": (
        _plain("sweep", "--preset", "mlp-synthetic", "--steps", "30", *POINT, "--out", "run"),
        "choose another --out or pass --overwrite",
    ),
    "overwrite-foreign-directory": (_foreign, "not a stabcli run"),
    "symlinked-traces": (_symlinked_traces, "run/traces is a symbolic link"),
    "report-torn-row": (_damaged(_torn_row), "points.csv, line 3: a torn row"),
    "report-beta-contradicts-torch-beta2": (
        _damaged(_contradiction),
        "beta = 0.9 but torch_beta2 = 0.95",
    ),
    "report-beta-outside": (_damaged(_beta_outside), "beta must be in (0, 1)"),
    "report-garbage-evals": (_damaged(_garbage_evals), ".parquet is corrupt"),
    "report-markup-path": (_plain("report", "[/x]no-such-run"), "[/x]no-such-run"),
    "report-foreign-directory": (
        lambda work: [*_foreign(work)[:0], "report", "mine"],
        "mine is not a stabcli run directory",
    ),
    "report-two-stdout-tables": (
        _plain("report", "run", "--csv", "-", "--markdown", "-"),
        "both write to stdout",
    ),
}


def _tree(root: Path) -> dict[str, bytes | str | None]:
    out: dict[str, bytes | str | None] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = f"-> {path.readlink()}"
        elif path.is_file():
            out[key] = path.read_bytes()
        else:
            out[key] = None
    return out


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    case: str,
    finished_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work = tmp_path / "work"
    shutil.copytree(finished_run, work / "run", symlinks=True)
    prepare, words = CASES[case]
    args = prepare(work)
    monkeypatch.chdir(work)
    before = _tree(work)
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("stabcli: error: "), err
    assert words in lines[0], err  # it says what is wrong
    assert "nan" not in lines[0].replace("nanogpt", ""), err  # no NaN leaks into messages
    assert "Traceback" not in err + out
    assert _tree(work) == before


def test_the_table_covers_what_the_cases_claim(finished_run: Path) -> None:
    """The damaged run is a real stabcli run before damage, so the report cases test damage."""
    assert json.loads((finished_run / "state.json").read_text())["status"] == "complete"
    assert main(["report", str(finished_run)]) == 0
