"""`llmbench view` in real headless Chromium (Debian's, driven by Playwright): open, filter, open a sample,
open a two-run diff, and check what the page shows; hostile model output stays text.

Without Chromium or Playwright the tests skip on a developer's machine and fail in CI (where `CI` is set).
`LLMBENCH_UPDATE_SCREENSHOTS=1` writes the README's screenshot (docs/images/view-diff.png) from this run.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from llmbench.view.server import ViewServer
from tests.view.sample_runs import HOSTILE, hostile_key

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "images" / "view-diff.png"


def _need(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what}; CI is set, so this test must run")
    pytest.skip(what)


def _chromium() -> str:
    binary = next(
        (p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and Path(p).exists()), None
    )
    if binary is None:
        _need("Chromium is not installed (apt-get install -y chromium)")
    return str(binary)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    binary = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("Playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        # Debian's Chromium through its path: nothing is downloaded. Root in a container needs no sandbox.
        b = p.chromium.launch(executable_path=binary, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    # The page's CSP allows no eval, which Playwright's waiting needs; bypassing it also shows that the
    # hostile output stays text by the page's own escaping, not only because the CSP would block a script.
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    pg = context.new_page()
    pg.set_default_timeout(120_000)  # a hang guard on a loaded host, never a measurement
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert errors == [], errors


def open_page(page: Any, server: ViewServer, route: str = "", **params: Any) -> None:
    page.goto(f"{server.url}#/{route}" + (f"?{urlencode(params)}" if params else ""))
    settled(page)


def settled(page: Any) -> None:
    """Wait until the page shows the answer to the address in the location bar (not an earlier one)."""
    page.wait_for_function("document.querySelector('main').dataset.shown === location.hash")


def ids(pair_dir: Path) -> tuple[str, str]:
    return (pair_dir / "transformers.json").as_posix(), (pair_dir / "vllm.json").as_posix()


def test_the_run_list_shows_each_run_and_opens_one(page: Any, viewer: ViewServer, pair_dir: Path) -> None:
    open_page(page, viewer)
    rows = page.locator("[data-testid=runs] tbody tr")
    assert rows.count() == 2
    text = page.locator("[data-testid=runs]").inner_text()
    assert "transformers" in text and "vllm" in text and "2,400" in text and "[0.465, 0.707]" in text
    page.locator(f"tr[data-run='{ids(pair_dir)[0]}'] a").click()
    settled(page)
    assert "gsm8k" in page.locator("[data-testid=tasks]").inner_text()


def test_filters_narrow_the_sample_table(page: Any, viewer: ViewServer, pair_dir: Path) -> None:
    a, _ = ids(pair_dir)
    open_page(page, viewer, "run", id=a)
    assert "64 samples" in page.locator("[data-testid=pager]").inner_text()
    page.select_option("select[data-filter=task]", "mgsm")
    settled(page)
    page.select_option("select[data-filter=language]", "de")
    settled(page)
    assert "6 samples" in page.locator("[data-testid=pager]").inner_text()
    langs = page.locator("[data-testid=samples] tbody tr td:nth-child(5)").all_inner_texts()
    assert langs == ["de"] * 6
    page.select_option("select[data-filter=status]", "wrong")
    settled(page)
    verdicts = page.locator("[data-testid=samples] .badge").all_inner_texts()
    assert verdicts and set(verdicts) == {"wrong"}


def test_a_text_search_finds_the_sample_and_opens_it(page: Any, viewer: ViewServer, pair_dir: Path) -> None:
    a, _ = ids(pair_dir)
    open_page(page, viewer, "run", id=a, task="gsm8k")
    page.fill("input[data-filter=text]", "Tobias has 47")
    page.press("input[data-filter=text]", "Enter")
    settled(page)
    assert "· 1 samples" in page.locator("[data-testid=pager]").inner_text()
    page.locator("[data-testid=samples] tbody tr").first.click()
    settled(page)
    assert "<|im_start|>user" in page.locator("[data-testid=prompt]").inner_text()
    assert page.locator("[data-testid=reasoning]").inner_text().startswith("Count the bags first")
    assert "<think>" not in page.locator("[data-testid=output]").inner_text()
    assert page.locator("[data-testid=reference]").inner_text().strip() == "111"
    assert "expected" in page.locator("[data-testid=details]").inner_text()
    assert "TTFT" in page.locator("[data-testid=timings]").inner_text()
    plot = page.locator("svg[data-testid=gaps]")
    assert "median" in (plot.get_attribute("aria-label") or "")
    assert plot.locator("polyline").count() == 1


def test_hostile_output_renders_as_text(page: Any, viewer: ViewServer, pair_dir: Path) -> None:
    a, b = ids(pair_dir)
    open_page(page, viewer, "sample", id=a, key=hostile_key(pair_dir / "transformers.json"))
    assert page.locator("[data-testid=output] pre").inner_text() == HOSTILE
    assert HOSTILE in page.locator("[data-testid=prompt]").inner_text()
    open_page(page, viewer, "diff", a=a, b=b, kind="changed")
    assert "onerror" in page.locator("[data-testid=diff-rows]").inner_text()
    open_page(page, viewer, "run", id=a, text="onerror")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("main img, main script, main b").count() == 0


def test_the_two_run_diff_shows_why_and_where(page: Any, viewer: ViewServer, pair_dir: Path) -> None:
    a, b = ids(pair_dir)
    open_page(page, viewer)
    for run_id in (a, b):
        page.locator(f"tr[data-run='{run_id}'] input[type=checkbox]").check()
    page.click("[data-testid=compare]")
    settled(page)
    assert "paired" in page.locator("[data-testid=paired-test]").inner_text()
    fingerprints = page.locator("[data-testid=fingerprint-diff]").inner_text()
    assert "chat_template" in fingerprints and "c-9f10" in fingerprints
    kinds = [k for k in page.locator(".diffrow").evaluate_all("rows => rows.map(r => r.dataset.kind)")]
    assert kinds[0] == "flipped" and "changed" in kinds
    assert kinds == sorted(kinds, key=["flipped", "changed"].index)
    first = page.locator(".diffrow").first
    assert first.locator(".del").count() > 0 and first.locator(".ins").count() > 0
    page.click("button[data-kind=changed]")
    settled(page)
    assert set(page.locator(".diffrow").evaluate_all("rows => rows.map(r => r.dataset.kind)")) == {"changed"}


def test_a_study_folder_opens_on_its_leaderboard(page: Any, study_viewer: ViewServer) -> None:
    open_page(page, study_viewer)
    board = page.locator("[data-testid=study-board]")
    assert "Study demo" in board.inner_text()
    assert (
        board.locator("tbody tr").count() == 2
        and "qwen2.5-7b" in board.locator("tbody tr").first.inner_text()
    )
    assert page.locator("[data-testid=runs] tbody tr").count() == 4


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_a_screenshot_of_the_two_run_diff_is_drawn(
    page: Any, viewer: ViewServer, pair_dir: Path, tmp_path: Path
) -> None:
    a, b = ids(pair_dir)
    open_page(page, viewer, "diff", a=a, b=b)
    shot = tmp_path / "view-diff.png"
    page.screenshot(path=str(shot))
    data = shot.read_bytes()
    assert _png_size(data) == (1400, 1000) and len(data) > 60_000  # a blank page of this size is ~10 kB
    if os.environ.get("LLMBENCH_UPDATE_SCREENSHOTS"):
        SCREENSHOT.write_bytes(data)


def test_the_readme_screenshot_is_a_drawn_page() -> None:
    data = SCREENSHOT.read_bytes()
    width, height = _png_size(data)
    assert width >= 1000 and height >= 700 and len(data) > 60_000
    assert "docs/images/view-diff.png" in (ROOT / "README.md").read_text(encoding="utf-8")
