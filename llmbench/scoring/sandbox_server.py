"""The fork server inside each sandbox worker process, and the messages it exchanges with the harness.

For every program the server forks a child that drops to an unprivileged uid, enters fresh
user/pid/net/mount namespaces over a locked read-only view of the host (`sandbox_confine` tells how),
sets rlimits and runs the program. The kernel kills the program's whole process tree when its PID
namespace ends. The harness side is `llmbench.scoring.sandbox`.
This module imports only the standard library: the harness runs it as a script, outside the package.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal


def _load_beside(name: str) -> ModuleType:
    """A module from this file's directory, by path: run as a script, this file has no package."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"__llmbench_{name}__", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from llmbench.scoring import sandbox_confine as confine
else:
    confine = _load_beside("sandbox_confine")

SandboxStatus = Literal["passed", "failed", "timeout", "oom", "error"]
Isolation = Literal["namespaces", "uid", "rlimits"]
LEVELS: tuple[Isolation, ...] = ("namespaces", "uid", "rlimits")
_PRELOAD = (
    "builtins resource traceback math cmath re collections collections.abc itertools functools heapq bisect "
    "string typing random hashlib json fractions decimal statistics operator copy array datetime"
)
_SETUP_FAILED = 97
_EXPOSE: list[str] = []  # set in the fork server: Python's own directories, kept visible to programs
_NAMESPACE_WORKDIR = "/tmp/work"
_UID_BASE = 1_500_000_000  # sandboxed programs run as uid _UID_BASE + server pid: no one else's uid


@dataclass(frozen=True)
class SandboxLimits:
    """What one program may use; the defaults are safe for judging generated code."""

    timeout_s: float = 10.0
    memory_mb: int = 2048
    max_processes: int = 64
    max_output_bytes: int = 1 << 20
    tmp_size_mb: int = 64


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


def _serve(level: str) -> None:
    """Fork server main loop: detect the isolation level, then run each program it is sent."""
    for name in _PRELOAD.split():
        with contextlib.suppress(ImportError):
            __import__(name)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _EXPOSE[:] = confine.python_paths()
    if level == "auto":
        candidates = [lv for lv in LEVELS if lv != "uid" or os.geteuid() == 0]
        probe = SandboxLimits(timeout_s=5)
        level = next((lv for lv in candidates if _execute("pass", probe, lv).status == "passed"), "rlimits")
    send_message(stdout, {"isolation": level})
    while (req := read_message(stdin)) is not None:
        result = _execute(req["source"], SandboxLimits(**req["limits"]), level)  # type: ignore[arg-type]
        send_message(stdout, asdict(result))


def _execute(source: str, limits: SandboxLimits, level: Isolation) -> SandboxResult:
    """Fork a child for one program, feed nothing, collect its output until it ends or times out."""
    # stdout, stderr, completion (the marker, written by the program's process), the marker to expect, pid
    pipes = [os.pipe() for _ in range(5)]
    uid = program_uid(os.getpid())
    # namespaces: a directory on the program's own empty /tmp (which may also hold Python's directories)
    workdir = _NAMESPACE_WORKDIR if level == "namespaces" else tempfile.mkdtemp(prefix="llmbench-sandbox-")
    if level == "uid":
        os.chown(workdir, uid, uid)
    start = time.perf_counter()
    child = os.fork()
    if child == 0:
        _exit = os._exit
        try:
            _child(source, limits, level, [w for _, w in pipes], uid, workdir)
        except BaseException as exc:  # reported on the program's stderr
            with contextlib.suppress(BaseException):
                os.write(2, f"sandbox setup: {type(exc).__name__}: {exc}\n".encode())
        finally:
            _exit(_SETUP_FAILED)
    for _, w in pipes:
        os.close(w)
    out, err, done, key, info = (r for r, _ in pipes)
    grandchild = int(_read_all(info) or 0)
    bufs: dict[int, bytearray] = {fd: bytearray() for fd in (out, err, done, key)}
    deadline = start + limits.timeout_s
    reason = ""
    status: SandboxStatus | None = None
    code: int | None = None
    open_fds = [out, err, done, key]
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            status, reason = "timeout", f"wall-clock limit of {limits.timeout_s:g} s"
            break
        if not open_fds:
            pid, st = os.waitpid(child, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(st)
                break
            time.sleep(min(0.002, left))
            continue
        ready, _, _ = select.select(open_fds, [], [], left)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.remove(fd)
            bufs[fd] += chunk
        if len(bufs[out]) + len(bufs[err]) > limits.max_output_bytes:
            status, reason = "failed", f"output limit of {limits.max_output_bytes} bytes exceeded"
            break
        if len(bufs[done]) > confine.MARKER_BYTES:  # only the sandbox writes there, and only the marker
            status, reason = "failed", "wrote to the sandbox's completion pipe"
            break
    code = _kill(child, grandchild, level, uid, code)
    for fd in (out, err, done, key):
        os.close(fd)
    if level != "namespaces":
        shutil.rmtree(workdir, ignore_errors=True)
    duration_ms = (time.perf_counter() - start) * 1000
    text = {fd: bytes(b[-limits.max_output_bytes :]).decode("utf-8", "replace") for fd, b in bufs.items()}
    if status is None:
        status, reason = _verdict(code, bytes(bufs[done]), bytes(bufs[key]), text[err])
    return SandboxResult(status, code, text[out], text[err], round(duration_ms, 3), level, reason)


def _verdict(code: int, done: bytes, marker: bytes, stderr: str) -> tuple[SandboxStatus, str]:
    if code == _SETUP_FAILED and not done:
        return "error", "the sandbox could not be set up: " + stderr[-300:]
    if done.startswith(b"oom") or (code != 0 and "MemoryError" in stderr[-300:]):
        return "oom", "memory limit reached"
    if code == 0 and done == marker and len(marker) == confine.MARKER_BYTES:
        return "passed", ""
    if code == 0:
        return "failed", "exited before running to its end"
    if code < 0:
        return "failed", f"killed by {signal.Signals(-code).name}"
    return "failed", f"exit code {code}"


def _kill(child: int, grandchild: int, level: Isolation, uid: int, code: int | None) -> int:
    """End every process the program started (its PID namespace, its uid, or at least its group).

    Returns the child's exit code: `code` when it was already reaped, else the one reaped here. The
    child is waited for only after the program is gone, so its namespace has finished dying on return.
    """
    if code is None:
        with contextlib.suppress(OSError):
            os.kill(grandchild or child, signal.SIGKILL)
        end = time.perf_counter() + 5
        while (pid_status := os.waitpid(child, os.WNOHANG))[0] == 0 and time.perf_counter() < end:
            time.sleep(0.001)
        if pid_status[0] == 0:
            os.kill(child, signal.SIGKILL)
            pid_status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(pid_status[1])
    if level == "rlimits" and grandchild:
        with contextlib.suppress(OSError):
            os.killpg(grandchild, signal.SIGKILL)
    if level == "uid":  # a process of the program's own uid may signal every other one of them
        reaper = os.fork()
        if reaper == 0:
            with contextlib.suppress(BaseException):
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            os._exit(0)
        os.waitpid(reaper, 0)
    return code


def _read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    os.close(fd)
    return data


def _child(
    source: str, limits: SandboxLimits, level: Isolation, fds: list[int], uid: int, workdir: str
) -> None:
    """In the forked child: leave the server's session, drop privileges, enter namespaces, fork the program."""
    libc = ctypes.CDLL(None, use_errno=True)
    out, err, done, key, info = fds
    os.setsid()
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the server
    devnull = os.open("/dev/null", os.O_RDONLY)
    for src, dst in ((devnull, 0), (out, 1), (err, 2)):
        os.dup2(src, dst)
    for fd in [int(f) for f in os.listdir("/proc/self/fd")]:
        if fd > 2 and fd not in (done, key, info):
            with contextlib.suppress(OSError):
                os.close(fd)
    confine.enter(libc, level, uid, limits.tmp_size_mb, _EXPOSE)
    pid = os.fork()
    if pid == 0:
        os.close(info)
        _program(libc, source, limits, level, workdir, done, key)
    os.write(info, str(pid).encode())
    for fd in (info, done, key, 0, 1, 2):
        os.close(fd)
    os._exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) & 0xFF)


def _program(
    libc: Any, source: str, limits: SandboxLimits, level: Isolation, workdir: str, done: int, key: int
) -> None:
    """In the grandchild (PID 1 of its namespace): set limits, guard the marker, run the program to its end.

    Only this frame can have the marker written (`confine.guard`), and only once `exec` has returned.
    """
    import builtins
    import resource
    import traceback

    _exit, _write, flush, audit = os._exit, os.write, sys.stdout.flush, sys.audit
    try:
        os.setsid()
        libc.prctl(1, signal.SIGKILL)
        if level == "namespaces":
            confine.must_mount(libc, "proc", "/proc", "proc", 2 | 4 | 8, None)
            os.makedirs(workdir, exist_ok=True)
        confine.drop_privileges(libc, level)
        os.chdir(workdir)
        os.environ.clear()
        os.environ.update(clean_env(), HOME=workdir)
        mem = limits.memory_mb << 20
        cpu = int(limits.timeout_s) + 1
        nproc = limits.max_processes + (_count_own_processes() if level == "rlimits" else 0)
        for res, value in (
            (resource.RLIMIT_AS, mem),
            (resource.RLIMIT_CPU, cpu),
            (resource.RLIMIT_NPROC, nproc),
            (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_FSIZE, limits.tmp_size_mb << 20),
        ):
            resource.setrlimit(res, (value, value))
        sys.argv = ["<program>"]
        confine.guard(done, key)
    except BaseException as exc:  # any failure here means the sandbox is not in place
        with contextlib.suppress(BaseException):
            _write(2, f"sandbox setup: {exc}\n".encode())
        _exit(_SETUP_FAILED)
    finished, ended, suppress = confine.FINISHED, confine.ENDED, contextlib.suppress  # bound before it runs
    code, error, outcome = 0, None, finished
    try:
        exec(compile(source, "<program>", "exec"), {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        outcome = ended
    except MemoryError:
        code, outcome = 1, "oom"
    except BaseException as exc:  # the program's own failure, reported as its traceback
        code, error, outcome = 1, exc, ended
    with suppress(BaseException):
        flush()
        sys.stderr.flush()
    with suppress(BaseException):
        audit(finished if outcome == finished else ended)
        if error is not None:
            traceback.print_exception(error)
        if outcome == "oom":
            _write(done, b"oom")
    _exit(code & 0xFF)


def _count_own_processes() -> int:
    """Processes of our uid already running (RLIMIT_NPROC counts them all outside a user namespace)."""
    uid, n = os.getuid(), 0
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            n += entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == uid
    return n


if __name__ == "__llmbench_sandbox__":
    _serve(sys.argv[2])
