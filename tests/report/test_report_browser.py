"""The HTML report in a real browser: headless Chromium, opened from disk, network disabled.

Every plot must render (each plotly div holds an ``<svg class="main-svg">``), the page must
log nothing to the console (errors included), and it must request nothing from the network
(Chromium's own background calls to Google services are not the page's and are ignored).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
from synthetic_run import make_synthetic_run, monitored_run

from stabcli.report import load_run, write_html

pytestmark = pytest.mark.browser

#: Hosts Chromium itself calls at start-up despite the flags (not requests of the page).
CHROMIUM_OWN_HOSTS = ("google.com", "googleapis.com", "gstatic.com", "gvt1.com")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium"):
        if found := shutil.which(name):
            return found
    pytest.skip("no Chromium found (Debian: apt-get install chromium; .ci/setup installs it)")


def _open_offline(page: Path, profile: Path) -> tuple[str, list[str], list[str]]:
    """Load ``page`` from disk with networking disabled: (DOM, console lines, URLs fetched)."""
    net_log = profile.parent / "net-log.json"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: no network
        "--proxy-server=127.0.0.1:9",
        f"--log-net-log={net_log}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=15000",
        "--window-size=1400,3000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(
        [_chromium(), *flags], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    urls = []
    if net_log.exists():
        text = net_log.read_text(encoding="utf-8", errors="replace")
        urls = sorted(set(re.findall(r'"url":\s*("(?:[^"\\]|\\.)*")', text)))
        urls = [json.loads(u) for u in urls]
    return done.stdout, console, urls


def _page_requests(urls: list[str]) -> list[str]:
    def own(url: str) -> bool:
        host = urlparse(url).hostname or ""
        return any(host == h or host.endswith("." + h) for h in CHROMIUM_OWN_HOSTS)

    return [u for u in urls if not u.startswith("file:") and not own(u)]


@pytest.mark.parametrize(
    ("kind", "figures"),
    [
        ("curve", 6),  # plane, updates, rates along the curve, profiles, test loss, tensors
        ("points-and-boundary", 7),  # rates against predictions, and the boundary's √n figure
        ("partial-empty", 5),  # the empty run records no test loss: no test-loss figure
        ("kadam-torch", 7),  # curve's figures and k-Adam's levels, typed in PyTorch's order
        ("hyperadam", 6),  # plane, path bound, paths, rates, profiles, tensors
        ("monitor", 6),  # the same for a monitored loop: no loss, so no test-loss figure
    ],
)
def test_report_renders_offline_without_errors(tmp_path: Path, kind: str, figures: int) -> None:
    chromium = _chromium()  # skip early, before building anything
    assert chromium
    if kind == "curve":
        run_dir = make_synthetic_run(tmp_path / "run", 8, 600, eval_every=50, diverge_at=100)
    elif kind == "points-and-boundary":
        run_dir = make_synthetic_run(
            tmp_path / "run", 6, 600, kind="points", boundary=(0.81, 0.95), diverge_at=100
        )
    elif kind == "kadam-torch":
        run_dir = make_synthetic_run(
            tmp_path / "run", 6, 600, eval_every=50, optimizer="kadam", order="torch"
        )
    elif kind == "hyperadam":
        run_dir = make_synthetic_run(
            tmp_path / "run", 6, 600, eval_every=None, kind="points", optimizer="hyperadam"
        )
    elif kind == "monitor":
        run_dir = monitored_run(tmp_path / "run")
    else:
        run_dir = make_synthetic_run(tmp_path / "run", 4, 100, finished=0)
    page = write_html(load_run(run_dir), tmp_path / "report.html")
    dom, console, urls = _open_offline(page, tmp_path / "profile")

    chunks = re.split(r'<div id="fig-', dom)[1:]
    assert len(chunks) == figures, f"expected {figures} plot divs, found {len(chunks)}"
    for chunk in chunks:
        name = chunk.split('"', 1)[0]
        assert 'class="main-svg"' in chunk, f"plot {name} did not render"
    assert "table" in dom and 'class="points"' in dom
    assert console == [], "the page logged to the console:\n" + "\n".join(console)
    assert _page_requests(urls) == [], f"the page made network requests: {_page_requests(urls)}"
