"""Where ``stabcli report`` may write an export or a page: never over a file a run keeps,
and never over a file of the user's that is not an earlier export of the same kind.

``--csv runs/x/points.csv`` replaced the run's own results with the export's columns (the
next sweep then found them damaged and trained its points again), and ``-o notes.tex``
replaced a user's file with a page, both silently. An earlier export is still replaced, so
a command re-run writes its file again: a table over a file of its suffix, a page over a
page stabcli wrote.
"""

from __future__ import annotations

from pathlib import Path

from stabcli.errors import StabcliError

#: The files a run or k-study directory keeps (stabcli.store): never written by a report.
RUN_FILES = frozenset(
    {"config.json", "state.json", "points.csv", ".stabcli-lock", "kstudy.json", "assessment.json"}
)
#: A run's folders of per-batch files.
RUN_FOLDERS = frozenset({"traces", "evals"})
#: Which existing files an export of each kind may replace, by suffix.
SUFFIXES = {"csv": (".csv",), "markdown": (".md", ".markdown", ".txt")}
#: How every page stabcli writes begins (stabcli.report.page.page_head writes it).
PAGE_START = "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"


def _is_run_dir(path: Path) -> bool:
    return (path / "config.json").is_file() or (path / "kstudy.json").is_file()


def _written_by_stabcli(path: Path) -> bool:
    """Whether ``path`` starts as the pages stabcli writes do."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(PAGE_START))
    except OSError:
        return False
    return head == PAGE_START.encode()


def check_target(target: str | Path | None, kind: str, option: str) -> None:
    """Refuse, before anything is written, to write a ``kind`` ("csv", "markdown" or
    "html") export to ``target``: a file a run keeps, a folder, or an existing file that is
    not an earlier export of that kind. None and "-" (stdout) are always fine."""
    if target is None or str(target) == "-":
        return
    path = Path(target)
    run_file = path.name in RUN_FILES and _is_run_dir(path.parent)
    if run_file or (path.parent.name in RUN_FOLDERS and _is_run_dir(path.parent.parent)):
        raise StabcliError(
            f"{option} {path}: one of the run's own files; a report writes beside them, "
            "never over them"
        )
    if path.is_dir():
        raise StabcliError(f"{option} {path} is a directory; give a file name")
    if not path.exists():
        return
    if kind == "html":
        if not _written_by_stabcli(path):
            raise StabcliError(
                f"{option} {path} exists and is not a page stabcli wrote; remove it or "
                "choose another file"
            )
    elif path.suffix.lower() not in SUFFIXES[kind]:
        allowed = ", ".join(SUFFIXES[kind])
        raise StabcliError(
            f"{option} {path} exists and is not a {allowed} file; remove it or choose another file"
        )
