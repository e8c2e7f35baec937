"""The HTML report opened in real headless Chromium, offline: the DOM it builds holds every plot and table.

Without Chromium the tests skip on a developer's machine and fail in CI (where `CI` is set), so a CI image
that lost its browser cannot pass them silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from llmbench.analysis.compare import build_comparison
from llmbench.report import render_html
from tests.factories import longctx_scores, make_run, performance, verdicts

EXPECTED_PLOTS = (
    "plot-suite-overview",
    "plot-task-scores",
    "plot-longctx-needle",
    "plot-ttft-vs-input",
    "plot-tps-vs-input",
    "plot-ttft-vs-concurrency",
    "plot-throughput-vs-concurrency",
    "plot-peak-vram",
    "plot-accuracy-vs-cost",
)
INSTALL_HINT = "apt-get update && apt-get install -y chromium"


def _chromium() -> str | None:
    return next(
        (
            p
            for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
            if p and Path(p).exists()
        ),
        None,
    )


def _require_chromium() -> str:
    binary = _chromium()
    if binary is None:
        message = f"Chromium is not installed (install it with: {INSTALL_HINT})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so this test must run")
        pytest.skip(message)
    return binary


class _Elements(HTMLParser):
    """Collects (tag, id, aria-label) of every element of the dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str | None, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.found.append((tag, a.get("id"), a.get("aria-label")))


def _run_chromium(binary: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'profile'}",
    ]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=1800, check=False)


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = verdicts(150, 0.6, seed=1)
    lc = longctx_scores([2048, 8192, 32768], [0.0, 0.5, 1.0], per_cell=8, decay=0.2, seed=3)
    runs = [
        make_run(
            "llama3-8b",
            {"gsm8k": base, "math": verdicts(80, 0.3, 2)},
            longctx=lc,
            perf=performance(sweep=True),
        ),
        make_run(
            "qwen2.5-7b",
            {"gsm8k": [1.0 if i < 20 else v for i, v in enumerate(base)], "math": verdicts(80, 0.5, 4)},
            longctx=lc,
            perf=performance(sweep=True, ttft_ms=65, tokens_per_s=2100, peak_vram_mib=16100, seed=5),
        ),
    ]
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render_html(runs, build_comparison(runs)), encoding="utf-8")
    return path


def test_chromium_renders_every_plot_and_table(report_file: Path, tmp_path: Path) -> None:
    binary = _require_chromium()
    done = _run_chromium(binary, tmp_path, "--dump-dom", report_file.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    parser = _Elements()
    parser.feed(done.stdout)
    svgs = {id_: label for tag, id_, label in parser.found if tag == "svg" and id_}
    for plot_id in EXPECTED_PLOTS:
        assert plot_id in svgs, f"{plot_id} missing from the rendered DOM"
        assert svgs[plot_id], f"{plot_id} has no alt text"
    tags = [tag for tag, _, _ in parser.found]
    assert tags.count("table") >= 5 and tags.count("figure") == len(EXPECTED_PLOTS)
    assert "qwen2.5-7b" in done.stdout and "llama3-8b" in done.stdout


def test_chromium_screenshot_of_the_report_is_drawn(report_file: Path, tmp_path: Path) -> None:
    binary = _require_chromium()
    shot = tmp_path / "report.png"
    done = _run_chromium(
        binary, tmp_path, "--window-size=1280,4000", f"--screenshot={shot}", report_file.as_uri()
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 100_000  # a page of tables and plots; a blank page of this size is ~25 kB


def test_a_missing_chromium_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "_chromium", lambda: None)
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        _require_chromium()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        _require_chromium()


def test_a_report_of_twenty_runs_fits_the_window_and_labels_every_run(tmp_path: Path) -> None:
    binary = _require_chromium()
    from llmbench.analysis.leaderboard import build_leaderboard

    runs = [
        make_run(model, {"t": verdicts(30, rate, i)}, backend=backend, suite=suite, perf=performance(seed=i))
        for i, (model, rate, backend, suite) in enumerate(
            (m, r, b, s)
            for m, r in (("llama3-8b", 0.6), ("qwen2.5-7b", 0.7))
            for b in ("vllm", "transformers")
            for s in ("math", "json", "coding", "instruction", "multilingual")
        )
    ]
    comparison = build_comparison(runs)
    assert len(runs) == 20 and len(set(comparison.labels)) == 20
    page = render_html(runs, comparison, build_leaderboard(runs))
    # The page measures itself and writes the result where --dump-dom shows it.
    probe = (
        "<script>addEventListener('load',()=>{document.title="
        "'width '+document.documentElement.scrollWidth+' of '+window.innerWidth})</script>"
    )
    path = tmp_path / "twenty.html"
    path.write_text(page.replace("</body>", probe + "</body>"), encoding="utf-8")
    done = _run_chromium(binary, tmp_path, "--window-size=1280,900", "--dump-dom", path.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    title = done.stdout.split("<title>", 1)[1].split("</title>", 1)[0]
    _, scroll, _, window = title.split()
    assert int(scroll) <= int(window), f"the page is {scroll} px wide in a {window} px window"
    for label in comparison.labels:
        assert label in done.stdout, f"{label} is not shown"
    notes = done.stdout.find('id="fingerprint-notes"')  # below the results, collapsed, where there are any
    assert notes == -1 or notes > done.stdout.index('id="section-performance"')
