"""The fork server inside each sandbox worker process (the messages it exchanges with the harness: `sandbox_protocol`).

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
import sys
import tempfile
import time
from dataclasses import asdict
from types import ModuleType
from typing import TYPE_CHECKING, Any


def _load_beside(name: str) -> ModuleType:
    """A module from this file's directory, by path: run as a script, this file has no package."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"__llmbench_{name}__", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from llmbench.scoring import sandbox_confine as confine
    from llmbench.scoring import sandbox_judge as judging
    from llmbench.scoring import sandbox_protocol as protocol
else:
    confine = _load_beside("sandbox_confine")
    judging = _load_beside("sandbox_judge")
    protocol = _load_beside("sandbox_protocol")

_PRELOAD = (
    "builtins resource traceback math cmath re collections collections.abc itertools functools heapq bisect "
    "string typing random hashlib json fractions decimal statistics operator copy array datetime"
)
_SETUP_FAILED = 97
_EXPOSE: list[str] = []  # set in the fork server: Python's own directories, kept visible to programs
_CONCEAL: list[str] = []  # set in the fork server: the harness's directories, hidden from programs
_NAMESPACE_WORKDIR = "/tmp/work"


def _serve(level: str, concealed: list[str]) -> None:
    """Fork server main loop: detect the isolation level, then run each program it is sent."""
    for name in _PRELOAD.split():
        with contextlib.suppress(ImportError):
            __import__(name)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _CONCEAL[:] = concealed
    _EXPOSE[:] = confine.python_paths(excluding=concealed)
    if level == "auto":
        candidates = [lv for lv in protocol.LEVELS if lv != "uid" or os.geteuid() == 0]
        probe = protocol.SandboxLimits(timeout_s=5)
        level = next((lv for lv in candidates if _execute("pass", probe, lv).status == "passed"), "rlimits")
    protocol.send_message(stdout, {"isolation": level})
    while (req := protocol.read_message(stdin)) is not None:
        judged = protocol.JudgedProgram(**req["judged"]) if req.get("judged") else None
        limits = protocol.SandboxLimits(**req["limits"])
        result = _execute(req["source"], limits, level, judged)  # type: ignore[arg-type]
        protocol.send_message(stdout, asdict(result))


class _Run:
    """One sandboxed process of a program: its child, PID-1 grandchild, pipes and what they carried."""

    def __init__(
        self,
        role: str,
        source: str,
        rpc: list[int],
        limits: protocol.SandboxLimits,
        level: protocol.Isolation,
    ) -> None:
        # stdout, stderr, completion (the marker, written by the program's process), the marker to expect, pid
        pipes = [os.pipe() for _ in range(5)]
        self.uid = protocol.program_uid(os.getpid())
        # namespaces: a directory on the program's own empty /tmp (which may also hold Python's directories)
        self.workdir = (
            _NAMESPACE_WORKDIR if level == "namespaces" else tempfile.mkdtemp(prefix="llmbench-sandbox-")
        )
        if level == "uid":
            os.chown(self.workdir, self.uid, self.uid)
        self.child = os.fork()
        if self.child == 0:
            _exit = os._exit
            try:
                _child(role, source, limits, level, [w for _, w in pipes], rpc, self.uid, self.workdir)
            except BaseException as exc:  # reported on the program's stderr
                with contextlib.suppress(BaseException):
                    os.write(2, f"sandbox setup: {type(exc).__name__}: {exc}\n".encode())
            finally:
                _exit(_SETUP_FAILED)
        for _, w in pipes:
            os.close(w)
        self.out, self.err, self.done, self.key, self.info = (r for r, _ in pipes)
        self.grandchild = 0
        self.open = [self.out, self.err, self.done, self.key]
        self.bufs: dict[int, bytearray] = {fd: bytearray() for fd in self.open}
        self.code: int | None = None

    def started(self) -> None:
        """Wait until the program's process exists (its setup ran), and learn its pid."""
        self.grandchild = int(_read_all(self.info) or 0)

    def text(self, fd: int, cap: int) -> str:
        return bytes(self.bufs[fd][-cap:]).decode("utf-8", "replace")

    def end(self, level: protocol.Isolation) -> None:
        """Kill what is left of the program's processes, close its pipes, remove its work directory."""
        self.code = confine.kill_program(self.child, self.grandchild, level, self.uid, self.code)
        for fd in (self.out, self.err, self.done, self.key):
            os.close(fd)
        if level != "namespaces":
            shutil.rmtree(self.workdir, ignore_errors=True)


def _execute(
    source: str,
    limits: protocol.SandboxLimits,
    level: protocol.Isolation,
    judged: protocol.JudgedProgram | None = None,
) -> protocol.SandboxResult:
    """Run one program (or a solution and its judge), feed nothing, collect output until the end or timeout.

    The last process started decides the verdict: the program itself, or the judge of a solution.
    """
    start = time.perf_counter()
    runs = _start_runs(source, limits, level, judged)
    main = runs[-1]
    status, reason = _collect(runs, limits, deadline=start + limits.timeout_s)
    for run in runs:
        run.end(level)
    duration_ms = (time.perf_counter() - start) * 1000
    cap = limits.max_output_bytes
    stdout = "".join(r.text(r.out, cap) for r in runs)[-cap:]
    stderr = "".join(r.text(r.err, cap) for r in runs)[-cap:]
    code = main.code
    assert code is not None
    if status is None:
        main_err = main.text(main.err, cap)
        status, reason = _verdict(code, bytes(main.bufs[main.done]), bytes(main.bufs[main.key]), main_err)
    return protocol.SandboxResult(status, code, stdout, stderr, round(duration_ms, 3), level, reason)


def _start_runs(
    source: str,
    limits: protocol.SandboxLimits,
    level: protocol.Isolation,
    judged: protocol.JudgedProgram | None,
) -> list[_Run]:
    """The program's process, or a solution's and then its judge's, joined by two pipes; all started."""
    if judged is None:
        runs = [_Run("program", source, [], limits, level)]
    else:
        to_judge, to_solution = os.pipe(), os.pipe()
        runs = [_Run("candidate", judged.solution, [to_solution[0], to_judge[1]], limits, level)]
        tests = json.dumps({"tests": judged.tests, "entry": judged.entry, "wanted": list(judged.wanted)})
        runs.append(_Run("judge", tests, [to_judge[0], to_solution[1]], limits, level))
        for fd in (*to_judge, *to_solution):
            os.close(fd)
    for run in runs:  # both started before waiting for either: their setups overlap
        run.started()
    return runs


def _collect(
    runs: list[_Run], limits: protocol.SandboxLimits, deadline: float
) -> tuple[protocol.SandboxStatus | None, str]:
    """Read every run's pipes until the last run exits (no verdict yet: None) or a limit decides it."""
    main = runs[-1]
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return "timeout", f"wall-clock limit of {limits.timeout_s:g} s"
        wait = left
        if not main.open:  # its pipes are closed: has it exited?
            pid, st = os.waitpid(main.child, os.WNOHANG)
            if pid:
                main.code = os.waitstatus_to_exitcode(st)
                return None, ""
            wait = min(0.002, left)
        fds = [fd for r in runs for fd in r.open]
        if not fds:
            time.sleep(wait)
            continue
        ready, _, _ = select.select(fds, [], [], wait)
        for run in runs:
            for fd in [fd for fd in run.open if fd in ready]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    run.open.remove(fd)
                run.bufs[fd] += chunk
        if sum(len(r.bufs[r.out]) + len(r.bufs[r.err]) for r in runs) > limits.max_output_bytes:
            return "failed", f"output limit of {limits.max_output_bytes} bytes exceeded"
        if any(len(r.bufs[r.done]) > confine.MARKER_BYTES for r in runs):  # only the sandbox writes there
            return "failed", "wrote to the sandbox's completion pipe"


def _verdict(code: int, done: bytes, marker: bytes, stderr: str) -> tuple[protocol.SandboxStatus, str]:
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


def _read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    os.close(fd)
    return data


def _child(
    role: str,
    source: str,
    limits: protocol.SandboxLimits,
    level: protocol.Isolation,
    fds: list[int],
    rpc: list[int],
    uid: int,
    workdir: str,
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
        if fd > 2 and fd not in (done, key, info, *rpc):
            with contextlib.suppress(OSError):
                os.close(fd)
    confine.enter(libc, level, uid, limits.tmp_size_mb, _EXPOSE, _CONCEAL)
    pid = os.fork()
    if pid == 0:
        os.close(info)
        _program(libc, role, source, limits, level, workdir, done, key, rpc)
    os.write(info, str(pid).encode())
    for fd in (info, done, key, 0, 1, 2, *rpc):
        os.close(fd)
    os._exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) & 0xFF)


def _program(
    libc: Any,
    role: str,
    source: str,
    limits: protocol.SandboxLimits,
    level: protocol.Isolation,
    workdir: str,
    done: int,
    key: int,
    rpc: list[int],
) -> None:
    """In the grandchild (PID 1 of its namespace): set limits, guard the marker, run the program to its end.

    Only this frame can have the marker written (`confine.guard`), and only once `exec` has returned.
    `role` is `program` (run `source`), `candidate` (run a solution, then answer its judge's calls on
    `rpc`) or `judge` (run the tests `source` describes against the candidate on `rpc`).
    """
    import traceback

    _exit, _write, flush, audit = os._exit, os.write, sys.stdout.flush, sys.audit
    try:
        run = _confine_program(libc, role, source, limits, level, workdir, rpc)
        confine.guard(done, key)  # from this frame, the one that runs the program and then audits its end
    except BaseException as exc:  # any failure here means the sandbox is not in place
        with contextlib.suppress(BaseException):
            _write(2, f"sandbox setup: {exc}\n".encode())
        _exit(_SETUP_FAILED)
    finished, ended, suppress = confine.FINISHED, confine.ENDED, contextlib.suppress  # bound before it runs
    code, error, outcome = 0, None, finished
    try:
        run()
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


def _confine_program(
    libc: Any,
    role: str,
    source: str,
    limits: protocol.SandboxLimits,
    level: protocol.Isolation,
    workdir: str,
    rpc: list[int],
) -> Any:
    """Confine this process (session, mounts, privileges, environment, limits) and bind what it will run."""
    os.setsid()
    libc.prctl(1, signal.SIGKILL)
    if level == "namespaces":
        confine.must_mount(libc, "proc", "/proc", "proc", 2 | 4 | 8, None)
        os.makedirs(workdir, exist_ok=True)
    confine.drop_privileges(libc, level)
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(protocol.clean_env(), HOME=workdir)
    _set_rlimits(limits, level)
    confine.deny_host_reach(libc)
    if role == "judge":  # no process of the same uid may trace it or read its memory
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
    run = _runner(role, source, rpc)
    sys.argv = ["<program>"]
    return run


def _set_rlimits(limits: protocol.SandboxLimits, level: protocol.Isolation) -> None:
    """Memory, CPU time, processes, core dumps, file size and open files, hard and soft alike."""
    import resource

    mem = limits.memory_mb << 20
    cpu = int(limits.timeout_s) + 1
    nproc = limits.max_processes + (confine.count_own_processes() if level == "rlimits" else 0)
    for res, value in (
        (resource.RLIMIT_AS, mem),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_NPROC, nproc),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, limits.tmp_size_mb << 20),
        (resource.RLIMIT_NOFILE, limits.max_open_files),
    ):
        resource.setrlimit(res, (value, value))


def _runner(role: str, source: str, rpc: list[int]) -> Any:
    """What the program's process runs once confined, bound before the program can touch anything."""
    import builtins

    if role == "candidate":
        serve, rfd, wfd = judging.serve_candidate, rpc[0], rpc[1]
        return lambda: serve(source, rfd, wfd)
    if role == "judge":
        spec = json.loads(source)
        judge, rfd, wfd = judging.run_judge, rpc[0], rpc[1]
        return lambda: judge(spec["tests"], spec["wanted"], spec["entry"], rfd, wfd)
    return lambda: exec(
        compile(source, "<program>", "exec"), {"__name__": "__main__", "__builtins__": builtins}
    )


if __name__ == "__llmbench_sandbox__":
    _serve(sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else [])
