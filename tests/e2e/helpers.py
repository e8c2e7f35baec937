"""Running the real `llmbench` CLI in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def llmbench(
    *args: str, cwd: Path | None = None, timeout: float = 3600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ) | {"COLUMNS": "200", "PYTHONUNBUFFERED": "1"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "llmbench", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def start_llmbench(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ) | {"COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "llmbench", *args],
        cwd=cwd or ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
