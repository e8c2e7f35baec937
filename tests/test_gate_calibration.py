"""benchmarks/gate_calibration.py's small mode: the real gate on the recorded repeat noise, one table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gate_calibration.py"
FIXTURE = ROOT / "benchmarks" / "fixtures" / "gate_calibration_noise.json"


def test_the_noise_fixture_is_small_and_holds_real_repeats_of_one_setting() -> None:
    assert FIXTURE.stat().st_size < 16_000
    noise = json.loads(FIXTURE.read_text())
    assert noise["backend"].startswith("vllm") and len(noise["runs"]) >= 8
    assert len({r["seed"] for r in noise["runs"]}) == len(noise["runs"])
    assert all(len(r["points"]) == len(noise["points"]) for r in noise["runs"])


def test_small_mode_prints_the_calibration_table_within_30_seconds() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--small"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert any("A/A nightly" in r and "false alarms" in r for r in rows)
    assert any("TTFT +5%" in r for r in rows) and any("accuracy -3 points, n=20" in r for r in rows)
