"""Hostile programs through the real sandbox: each fails safely, never passes, and leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmbench.data.base import Sample
from llmbench.scoring.code import CodeScorer
from llmbench.scoring.sandbox import SandboxLimits, SandboxPool, SandboxResult

LIMITS = SandboxLimits(timeout_s=4, memory_mb=512, max_processes=16)


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


def test_flooding_stdout_is_cut_off(pool: SandboxPool) -> None:
    result = run_hostile(
        pool, "while True:\n    print('x' * 65536)", SandboxLimits(timeout_s=5, max_output_bytes=1 << 20)
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
    ],
)
def test_completions_that_dodge_the_tests_score_wrong(completion: str) -> None:
    scorer = CodeScorer(timeout_s=4, calibrate_timeout=False, workers=1)
    try:
        assert scorer.score(HUMANEVAL_LIKE, completion).status == "wrong"
        assert (
            scorer.score(HUMANEVAL_LIKE, "    return a + b\n").status == "correct"
        )  # builtins are fresh again
    finally:
        scorer.close()
