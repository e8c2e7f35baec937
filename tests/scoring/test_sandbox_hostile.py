"""Hostile programs through the real sandbox: each fails safely, never passes, and leaves nothing behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmbench.data.base import Sample
from llmbench.scoring.code import CodeScorer
from llmbench.scoring.sandbox import SandboxLimits, SandboxPool, SandboxResult

LIMITS = SandboxLimits(timeout_s=300, memory_mb=512, max_processes=16)  # only a hang reaches the limit


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(workers=2) as p:
        yield p


def sandbox_processes(pool: SandboxPool) -> list[int]:
    """Host processes running as one of the pool's program uids (none may be left once a program ended).

    Only this pool's uids count: other test workers run sandboxes of their own at the same time.
    """
    uids = pool.program_uids()
    assert uids, "the pool has started no fork server"
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.stat(f"/proc/{entry}").st_uid in uids:
                found.append(int(entry))
        except OSError:
            continue
    return found


def run_hostile(pool: SandboxPool, program: str, limits: SandboxLimits = LIMITS) -> SandboxResult:
    result = pool.run(program, limits)
    assert result.status != "passed", result
    assert sandbox_processes(pool) == []
    assert pool.run("print('still fine')", LIMITS).stdout == "still fine\n"  # the harness's servers survived
    return result


def test_infinite_loop_times_out(pool: SandboxPool) -> None:
    assert run_hostile(pool, "while True:\n    pass", SandboxLimits(timeout_s=1)).status == "timeout"


def test_deep_recursion_fails(pool: SandboxPool) -> None:
    program = "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1) + 1\nf(0)"
    assert run_hostile(pool, program, SandboxLimits(timeout_s=2, memory_mb=512)).status in (
        "failed",
        "oom",
        "timeout",
    )


def test_huge_allocation_is_refused(pool: SandboxPool) -> None:
    assert run_hostile(pool, "blob = bytearray(64 << 30)\nprint(len(blob))").status == "oom"


def test_fork_bomb_is_contained_and_leaves_no_process(pool: SandboxPool) -> None:
    program = "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)"
    run_hostile(pool, program, SandboxLimits(timeout_s=2, max_processes=16))


def test_background_child_does_not_outlive_its_program(pool: SandboxPool) -> None:
    program = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\nraise SystemExit(1)"
    run_hostile(pool, program)


def test_files_outside_its_directory_are_out_of_reach(pool: SandboxPool, tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("alive")
    attempts = [
        f"os.remove({str(canary)!r})",
        f"open({str(canary)!r}, 'w').write('gone')",
        f"open({str(tmp_path / 'planted.txt')!r}, 'w').write('x')",
        f"open({str(Path.cwd() / 'planted.txt')!r}, 'w').write('x')",
        "open('/etc/planted.txt', 'w').write('x')",
        "import shutil; shutil.rmtree('/work', ignore_errors=False)",
    ]
    for attempt in attempts:
        run_hostile(pool, f"import os\n{attempt}")
    assert canary.read_text() == "alive"
    assert not (tmp_path / "planted.txt").exists() and not (Path.cwd() / "planted.txt").exists()
    assert not Path("/etc/planted.txt").exists()


def test_harness_environment_variables_are_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMBENCH_TEST_SECRET", "hunter2-do-not-leak")
    program = (
        "import os, glob\nprint(dict(os.environ))\n"
        "for path in glob.glob('/proc/*/environ'):\n"
        "    try:\n        print(open(path, 'rb').read())\n    except OSError:\n        pass\n"
        "raise SystemExit(1)"
    )
    with SandboxPool(workers=1) as fresh:  # started after the secret was set
        result = run_hostile(fresh, program)
    assert "hunter2" not in result.stdout + result.stderr
    assert "LLMBENCH_TEST_SECRET" not in result.stdout


def test_network_connections_are_refused(pool: SandboxPool) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(listener.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'hi')"
    result = run_hostile(pool, program)
    thread.join()
    listener.close()
    assert accepted == [] and "Error" in result.stderr


def test_signalling_the_parent_or_everyone_harms_no_one(pool: SandboxPool) -> None:
    for attack in (
        "os.kill(os.getppid(), signal.SIGKILL)",
        f"os.kill({os.getpid()}, signal.SIGKILL)",
        "os.kill(-1, signal.SIGKILL)",
        "os.killpg(os.getpgid(0), signal.SIGKILL)",
        "os.kill(1, signal.SIGTERM)",
    ):
        run_hostile(pool, f"import os, signal\n{attack}\nimport time\ntime.sleep(0.2)\nraise SystemExit(1)")


@pytest.mark.parametrize(
    "early_exit", ["import os; os._exit(0)", "import sys; sys.exit(0)", "raise SystemExit"]
)
def test_exiting_early_with_status_zero_is_not_a_pass(pool: SandboxPool, early_exit: str) -> None:
    result = run_hostile(pool, f"{early_exit}\nassert False, 'the tests'")
    assert result.status == "failed" and "before running to its end" in result.reason


def test_closing_stdout_and_the_marker_pipe_is_not_a_pass(pool: SandboxPool) -> None:
    run_hostile(
        pool,
        "import os\nfor fd in range(3, 64):\n    try:\n        os.close(fd)\n    except OSError:\n        pass",
    )


def test_flooding_the_completion_pipe_is_cut_off_at_once(pool: SandboxPool) -> None:
    program = "import os\nfor fd in range(3, 64):\n    try:\n        while True:\n            os.write(fd, b'1' * 65536)\n    except OSError:\n        pass"
    result = run_hostile(pool, program, SandboxLimits(timeout_s=300))
    # Cut off for the flood itself, not by the wall-clock limit: the reason says which.
    assert result.status == "failed" and "completion pipe" in result.reason, result


# Each finds a 32-character hex bytes value (the completion marker) in the sandbox's own frames, writes it
# to every descriptor and exits 0; the sandbox must neither let it reach those frames nor count it a pass.
FORGE = """
import os, sys
def steal(frame):
    while frame is not None:
        for value in list(frame.f_locals.values()):
            if isinstance(value, list) and value:
                value = value[0]
            if isinstance(value, bytes) and len(value) == 32:
                for fd in range(3, 64):
                    try:
                        os.write(fd, value)
                    except OSError:
                        pass
                os._exit(0)
        frame = frame.f_back
"""
FRAME_ROUTES = {
    "sys._getframe": "steal(sys._getframe(1))",
    "inspect": "import inspect\nsteal(inspect.currentframe())",
    "traceback": "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    steal(e.__traceback__.tb_frame)",
    "generator": "def g():\n    steal(me.gi_frame)\n    yield\nme = g()\nnext(me)",
    "threads": "for f in sys._current_frames().values():\n    steal(f)",
    "tracing": "sys.settrace(lambda f, *a: steal(f))\n(lambda: 0)()",
    "gc": "import gc\nfor o in gc.get_objects():\n    if type(o).__name__ == 'frame':\n        steal(o)",
}


@pytest.mark.parametrize("route", FRAME_ROUTES)
def test_reading_the_sandbox_frames_to_forge_the_marker_is_refused(pool: SandboxPool, route: str) -> None:
    result = run_hostile(pool, FORGE + FRAME_ROUTES[route] + "\nraise SystemExit(1)")
    assert result.status == "failed" and result.exit_code == 1, result
    assert "not allowed in the sandbox" in result.stderr or "frames are not available" in result.stderr


@pytest.mark.parametrize(
    ("attack", "refusal"),
    [
        ("import sys, os\nsys.audit('llmbench.sandbox.finished')\nos._exit(0)", "the sandbox's own event"),
        ("import ctypes\nctypes.string_at(id(0), 8)", "ctypes.string_at is not allowed"),
        ("import ctypes\nctypes.CDLL(None).getpid()", "ctypes.dlopen is not allowed"),
        ("open('/proc/self/mem', 'rb')", "open is not allowed"),
        ("import os\nos.symlink('/proc/self/mem', 'm')\nopen('m', 'rb')", "os.symlink is not allowed"),
        (
            "import sys\nseen = []\nsys.addaudithook(lambda e, a: seen.append(e))\nid(0)\nassert seen, 'no hook'",
            "AssertionError: no hook",
        ),
    ],
)
def test_the_guard_refuses_its_own_event_raw_memory_and_new_hooks(
    pool: SandboxPool, attack: str, refusal: str
) -> None:
    assert refusal in run_hostile(pool, attack).stderr


def test_flooding_stdout_is_cut_off(pool: SandboxPool) -> None:
    result = run_hostile(
        pool, "while True:\n    print('x' * 65536)", SandboxLimits(timeout_s=300, max_output_bytes=1 << 20)
    )
    assert result.status == "failed" and len(result.stdout) <= 1 << 20


HUMANEVAL_LIKE = Sample(
    id="hostile/0",
    fields={
        "task_id": "hostile/0",
        "prompt": 'def add(a, b):\n    """Return a + b."""\n',
        "canonical_solution": "    return a + b\n",
        "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
        "entry_point": "add",
    },
)


@pytest.mark.parametrize(
    "completion",
    [
        "import os\nos._exit(0)\ndef add(a, b):\n    return a + b",
        "import sys\nsys.exit(0)",
        "    import os\n    os._exit(0)\n",
        "import builtins, os, sys\nbuiltins.AssertionError = Exception\nos._exit = lambda c: None\n"
        "sys.exit = lambda *a: None\nbuiltins.print = lambda *a, **k: None\ndef add(a, b):\n    return 0",
        "import atexit, os\natexit.register(lambda: os._exit(0))\ndef add(a, b):\n    return 0",
        "import os, sys\nf = sys._getframe(1)\nos.write(f.f_locals['done'], f.f_locals['marker'])\nos._exit(0)",
    ],
)
def test_completions_that_dodge_the_tests_score_wrong(completion: str) -> None:
    scorer = CodeScorer(timeout_s=300, calibrate_timeout=False, workers=1)
    try:
        assert scorer.score(HUMANEVAL_LIKE, completion).status == "wrong"
        assert (
            scorer.score(HUMANEVAL_LIKE, "    return a + b\n").status == "correct"
        )  # builtins are fresh again
    finally:
        scorer.close()


ROOT = Path(__file__).resolve().parents[2]
UNPRIVILEGED_HARNESS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from llmbench.scoring.sandbox import SandboxLimits, SandboxPool
with open(sys.argv[3] + "/control.txt", "w") as fh:  # the harness's own user may write here
    fh.write("x")
with SandboxPool(workers=1) as pool:
    results = [pool.run(p, SandboxLimits(timeout_s=300, max_processes=16)) for p in json.loads(sys.argv[2])]
print(json.dumps([[r.status, r.isolation, r.stdout + r.stderr] for r in results]))
"""
REMOUNT_AND_WRITE = "umount -l /tmp; mount -o remount,rw /; mount -o remount,bind,rw /; echo x > {target}"
REMOUNT_BY_SYSCALL = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print(libc.umount2(b"/tmp", 2), libc.mount(None, b"/", None, 32 | 4096, None), ctypes.get_errno())
open({target!r}, "w").write("x")
"""


def escape_attempts(targets: list[str]) -> list[str]:
    """Programs that try to undo the read-only view and write to the host as the harness's user."""
    programs = []
    for target in targets:
        shell = REMOUNT_AND_WRITE.format(target=target)
        programs += [
            f"import subprocess\nsubprocess.run({shell!r}, shell=True)",
            f"import subprocess\nsubprocess.run(['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c', {shell!r}])",
            REMOUNT_BY_SYSCALL.format(target=target),
            f"open({target!r}, 'w').write('x')",
        ]
    return programs


def python_that_imports_llmbench(env: dict[str, str], as_user: dict[str, object]) -> str | None:
    """This interpreter, or the system's when another user may not run this one (e.g. it lives under /root)."""
    probe = ["-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); import llmbench.scoring.sandbox"]
    system = shutil.which("python3", path=env["PATH"])
    for exe in dict.fromkeys([sys.executable, sys._base_executable, *([system] if system else [])]):
        with contextlib.suppress(OSError):
            if (
                subprocess.run([exe, *probe], env=env, cwd="/", capture_output=True, **as_user).returncode
                == 0
            ):  # type: ignore[call-overload]
                return exe
    return None


def test_an_unprivileged_harness_keeps_its_programs_off_the_host() -> None:
    """Without root, the view is built in the harness user's own user namespace: it must still be locked."""
    as_user: dict[str, object] = {}
    uid = os.getuid()
    if os.geteuid() == 0:  # become a user of our own, as most users of shared GPU hosts are
        uid = 1_450_000_000 + os.getpid()
        as_user = {"user": uid, "group": uid, "extra_groups": []}
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp"}
    python = python_that_imports_llmbench(env, as_user)
    if python is None:
        pytest.skip(f"no Python interpreter that uid {uid} may run imports llmbench from {ROOT}")
    if subprocess.run(["unshare", "--user", "--map-root-user", "true"], env=env, **as_user).returncode:  # type: ignore[call-overload]
        pytest.skip("unprivileged user namespaces are refused on this host")
    home = tempfile.mkdtemp(prefix="llmbench-unprivileged-", dir="/tmp")
    os.chown(home, uid, uid)
    loose = f"/tmp/llmbench-planted-{os.getpid()}.txt"  # /tmp itself is writable by everyone
    targets = [f"{home}/planted.txt", loose]
    try:
        run = subprocess.run(
            [python, "-c", UNPRIVILEGED_HARNESS, str(ROOT), json.dumps(escape_attempts(targets)), home],
            env=env,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=1800,
            **as_user,  # type: ignore[arg-type]
        )
        assert run.returncode == 0, run.stderr
        results = json.loads(run.stdout)
        assert os.listdir(home) == ["control.txt"], (os.listdir(home), results)
        assert not os.path.exists(loose), results
        assert {isolation for _, isolation, _ in results} == {"namespaces"}, results
    finally:
        shutil.rmtree(home, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(loose)
