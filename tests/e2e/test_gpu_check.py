"""benchmarks/gpu_check.sh's dry run: the GPU check's every step on this CPU with tiny-qwen2, doctor first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_the_gpu_check_dry_run_goes_through_on_a_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check"
    env = dict(os.environ, PYTHON=sys.executable)
    r = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry-run", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert log.index("no GPU") < log.index("performance sweep")  # doctor ran first, and said so
    assert json.loads((out / "doctor.json").read_text())["has_gpu"] is False
    for name in ("context.json", "concurrency.json", "decode_step.json", "figures.md"):
        assert (out / name).stat().st_size > 0, name
