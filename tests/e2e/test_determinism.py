"""`--repeat` reports how often greedy decoding flips across runs and batch sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.helpers import llmbench

pytestmark = pytest.mark.e2e


def test_repeat_and_batch_sizes_report_flip_rate(tmp_path: Path) -> None:
    r = llmbench(
        "run",
        "suites/math.yaml",
        "--model",
        "tiny-qwen2",
        "--limit",
        "3",
        "--task",
        "gsm8k",
        "--repeat",
        "2",
        "--batch-sizes",
        "1,3",
        "--results-dir",
        str(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    assert len(list(tmp_path.glob("*.json"))) == 4
    assert "determinism over 4 runs" in r.stdout
    assert "output flip rate" in r.stdout and "verdict flip rate" in r.stdout
