"""`llmbench run` twice: the second answers from the generation cache and says so; `llmbench cache` shows
and empties it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llmbench.testing.tinymodel import ensure_tiny_model
from tests.e2e.helpers import llmbench

pytestmark = pytest.mark.e2e


def test_a_second_run_says_its_generations_came_from_the_cache(tmp_path: Path) -> None:
    tiny = ensure_tiny_model()
    home = tmp_path / "cache"
    shutil.copytree(tiny, home / "models" / tiny.name)
    env = {"LLMBENCH_CACHE": str(home), "LLMBENCH_NO_CACHE": "0"}
    args = ("run", "suites/math.yaml", "--model", "tiny-qwen2", "--task", "gsm8k", "--limit", "3")
    args += ("--max-new-tokens", "8", "--results-dir", str(tmp_path / "results"))

    first = llmbench(*args, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "0 of 3 generations from the cache" in first.stdout
    second = llmbench(*args, env=env, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "3 of 3 generations from the cache (no timings" in second.stdout
    bypass = llmbench(*args, "--no-cache", env=env, timeout=600)
    assert bypass.returncode == 0, bypass.stderr
    assert "generations from the cache" not in bypass.stdout and "TTFT p50" in bypass.stdout

    info = llmbench("cache", "info", env=env)
    assert info.returncode == 0, info.stderr
    assert "3 generation(s)" in info.stdout and "tiny-qwen2" in info.stdout
    vague = llmbench("cache", "prune", env=env)
    assert vague.returncode == 2 and "--older-than-days" in vague.stderr
    cleared = llmbench("cache", "clear", env=env)
    assert cleared.returncode == 0 and "removed 3 cached generation(s)" in cleared.stdout
