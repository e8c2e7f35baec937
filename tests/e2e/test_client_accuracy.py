"""benchmarks/client_accuracy.py's small mode: both clients against the known-timing server, one table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.vllm, pytest.mark.slow]


def test_client_accuracy_small_mode_prints_the_table(tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    script = ROOT / "benchmarks" / "client_accuracy.py"
    done = subprocess.run(
        [sys.executable, str(script), "--small", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 80 |")]
    assert len(rows) == 1, done.stdout[-2000:]
    assert (tmp_path / "rows.json").is_file()
