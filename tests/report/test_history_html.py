"""`llmbench history DIR --html FILE`: one page that plots every gated figure's trend with its noise band,
opened in real headless Chromium (skipped without it on a developer's machine, failed in CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from llmbench import api
from llmbench.results.io import write_results
from tests.test_gate_sweep import perf_run, point

NIGHTS = 10


class SvgLabels(HTMLParser):
    """The aria-label of each <svg> of the page, by id."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "svg" and a.get("id"):
            self.labels[str(a["id"])] = a.get("aria-label") or ""


def chromium() -> str:
    binary = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed; CI is set, so this test must run")
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    return binary


def open_in_chromium(page: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={tmp / 'p'}"]
    return subprocess.run(
        [chromium(), *flags, *args, page.as_uri()], capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten nights of two sweep points; the last night's first token 20% late."""
    folder = tmp_path_factory.mktemp("history")
    for day in range(1, NIGHTS + 1):
        ttft = 20.0 + 0.1 * (day % 3) + (4.0 if day == NIGHTS else 0.0)
        run = perf_run(
            [point(ttft, concurrency=1, seed=day), point(1.5 * ttft, seed=day)],
            f"night-{day:02d}",
            f"2026-11-{day:02d}T02:00:00+00:00",
        )
        write_results(run, folder / f"{day:02d}.json")
    out = folder.parent / "history.html"
    h = api.history(folder, html=out)
    assert len(h.gated) == 10  # two points x (TTFT p50, p90, TPOT p50, tokens/s, VRAM)
    return out


def test_the_page_plots_every_gated_figure_with_its_band_and_names_the_one_outside(
    page: Path, tmp_path: Path
) -> None:
    done = open_in_chromium(page, tmp_path, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    svgs = SvgLabels()
    svgs.feed(done.stdout)
    assert sorted(svgs.labels) == sorted(f"plot-gated-{i}" for i in range(10))
    ttft = [label for label in svgs.labels.values() if "conc=4 · ttft_ms p50" in label]
    assert len(ttft) == 1 and "noise band ±" in ttft[0] and "from 7 runs; the latest is OUTSIDE it" in ttft[0]
    tpot = next(label for label in svgs.labels.values() if "conc=4 · tpot_ms p50" in label)
    assert "the latest is inside it" in tpot
    assert done.stdout.count("night-") >= NIGHTS  # the runs' table


def test_a_screenshot_of_the_page_is_drawn(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "history.png"
    done = open_in_chromium(page, tmp_path, "--window-size=1280,2400", f"--screenshot={shot}")
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 100_000  # a blank page of this size is ~30 kB
