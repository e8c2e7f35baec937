"""A model that is neither on this machine nor downloadable fails in seconds, in one line, exit 2,
naming what is missing and the ways out; nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.helpers import ROOT, llmbench

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("offline", ["1", ""])
def test_a_missing_model_is_one_line_and_writes_nothing(tmp_path: Path, offline: str) -> None:
    env = {
        "HF_HOME": str(tmp_path / "hf"),  # an empty cache
        "HF_HUB_OFFLINE": offline,
        "HF_ENDPOINT": "http://127.0.0.1:9",  # no network: nothing listens there
    }
    r = llmbench(
        "run", str(ROOT / "suites/coding.yaml"), "--model", "qwen2.5-7b", "--results-dir", str(tmp_path / "results"),
        cwd=tmp_path, env=env, timeout=1800,  # a hang guard only
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "Qwen/Qwen2.5-7B-Instruct" in r.stderr and "is not on this machine" in r.stderr
    assert "hf download Qwen/Qwen2.5-7B-Instruct" in r.stderr
    assert "qwen2.5-7b-dummy" in r.stderr and "tiny-qwen2" in r.stderr
    assert ("HF_HUB_OFFLINE" in r.stderr) == bool(offline)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"] or not list(tmp_path.iterdir())
    assert not (tmp_path / "results").exists()
