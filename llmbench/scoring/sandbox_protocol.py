"""What the harness and a sandbox's fork server share: limits, programs, results, and the messages between them.

Like `sandbox_server`, this module imports only the standard library: the server loads it by path.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Literal

SandboxStatus = Literal["passed", "failed", "timeout", "oom", "error"]
Isolation = Literal["namespaces", "uid", "rlimits"]
LEVELS: tuple[Isolation, ...] = ("namespaces", "uid", "rlimits")
_UID_BASE = 1_500_000_000  # sandboxed programs run as uid _UID_BASE + server pid: no one else's uid


@dataclass(frozen=True)
class SandboxLimits:
    """What one program may use; the defaults are safe for judging generated code."""

    timeout_s: float = 10.0
    memory_mb: int = 2048
    max_processes: int = 64
    max_output_bytes: int = 1 << 20
    tmp_size_mb: int = 64
    max_open_files: int = 256


@dataclass(frozen=True)
class JudgedProgram:
    """A solution and the tests that judge it, run in two sandboxed processes (see `sandbox_judge`).

    `tests` runs with `candidate` bound to the solution's `entry` (when given) and each name in
    `wanted` that the solution defines bound to it; only the tests' process can report a pass.
    """

    solution: str
    tests: str
    entry: str | None = None
    wanted: tuple[str, ...] = ()


@dataclass(frozen=True)
class SandboxResult:
    """How one program ended: `passed` means it ran to its end and exited 0, nothing less."""

    status: SandboxStatus
    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: float
    isolation: Isolation
    reason: str = ""


def program_uid(server_pid: int) -> int:
    """The host uid a fork server's programs run as: its own, shared with no other process."""
    return _UID_BASE + server_pid


def clean_env() -> dict[str, str]:
    """The whole environment of a fork server and of each program: nothing of the harness's leaks in."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}


def send_message(stream: Any, obj: dict[str, Any]) -> None:
    """Write one message: its length as 4 little-endian bytes, then its JSON."""
    data = json.dumps(obj).encode()
    stream.write(struct.pack("<I", len(data)) + data)
    stream.flush()


def read_message(stream: Any) -> dict[str, Any] | None:
    """Read one message written by `send_message`; None when the stream has ended."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    data: dict[str, Any] = json.loads(stream.read(struct.unpack("<I", head)[0]))
    return data
