"""The sandbox runs a program in a fresh process and says truthfully how it ended."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmbench.scoring.sandbox import LEVELS, SandboxLimits, SandboxPool, isolation_level, run, run_many

# Programs that must finish get a limit only a hang reaches: a busy host may take seconds to run them.
FAST = SandboxLimits(timeout_s=300)


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(workers=2) as p:
        yield p


def test_program_that_runs_to_its_end_passes_and_its_output_comes_back(pool: SandboxPool) -> None:
    r = pool.run("print('hello'); import sys; print('oops', file=sys.stderr)", FAST)
    assert (r.status, r.exit_code, r.stdout, r.stderr) == ("passed", 0, "hello\n", "oops\n")
    assert r.duration_ms > 0 and r.isolation in LEVELS


def test_exception_is_a_failure_with_its_traceback(pool: SandboxPool) -> None:
    r = pool.run("assert 1 == 2, 'nope'", FAST)
    assert r.status == "failed" and r.exit_code == 1 and "AssertionError: nope" in r.stderr


def test_nonzero_exit_is_a_failure(pool: SandboxPool) -> None:
    r = pool.run("raise SystemExit(3)", FAST)
    assert (r.status, r.exit_code) == ("failed", 3)


def test_wall_clock_timeout_ends_the_program(pool: SandboxPool) -> None:
    r = pool.run("import time\ntime.sleep(3600)", SandboxLimits(timeout_s=0.5))
    assert r.status == "timeout" and r.duration_ms < 1_800_000  # ended long before its hour of sleep


def test_memory_limit_reports_oom(pool: SandboxPool) -> None:
    r = pool.run("x = bytearray(600 << 20)", SandboxLimits(timeout_s=300, memory_mb=256))
    assert r.status == "oom"


def test_output_is_capped(pool: SandboxPool) -> None:
    r = pool.run("print('y' * 5000)", SandboxLimits(timeout_s=300, max_output_bytes=1000))
    assert r.status == "failed" and "output limit" in r.reason and len(r.stdout) <= 1000


def test_each_program_starts_in_an_empty_working_directory(pool: SandboxPool) -> None:
    first = pool.run("open('left_behind.txt', 'w').write('x')", FAST)
    second = pool.run("import os\nassert os.listdir('.') == [], os.listdir('.')", FAST)
    assert first.status == "passed" and second.status == "passed", second.stderr


def test_programs_can_import_the_standard_library_and_installed_packages(pool: SandboxPool) -> None:
    r = pool.run("import statistics, decimal, numpy\nprint(statistics.mean([1, 2, 3]))", FAST)
    assert r.status == "passed" and r.stdout == "2\n", r.stderr


def test_standard_library_code_that_looks_at_its_callers_still_runs(pool: SandboxPool) -> None:
    """The guard refuses frames; namedtuple, typing, enum, logging and warnings fall back without them."""
    program = (
        "import collections, dataclasses, enum, logging, typing, warnings\n"
        "P = collections.namedtuple('P', 'x y')\nT = typing.TypeVar('T')\nE = enum.Enum('E', 'A B')\n"
        "class Q(typing.NamedTuple):\n    a: int\n"
        "@dataclasses.dataclass\nclass D:\n    x: int = 1\n"
        "logging.warning('logged')\nwarnings.warn('warned')\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    assert e.__traceback__.tb_lineno == 13\n"
        "print(P(1, 2), Q(3), E.A, D())"
    )
    r = pool.run(program, FAST)
    assert r.status == "passed", r.stderr
    assert r.stdout == "P(x=1, y=2) Q(a=3) E.A D(x=1)\n" and "logged" in r.stderr and "warned" in r.stderr


def test_run_many_keeps_the_programs_order_and_per_program_limits() -> None:
    programs = [f"print({i})" for i in range(6)] + ["import time\ntime.sleep(30)"]
    limits = [FAST] * 6 + [SandboxLimits(timeout_s=0.3)]
    results = run_many(programs, limits, workers=3)
    assert [r.stdout for r in results[:6]] == [f"{i}\n" for i in range(6)]
    assert results[6].status == "timeout"


def test_limits_list_must_match_the_programs() -> None:
    with pytest.raises(ValueError):
        run_many(["pass", "pass"], [FAST])


def test_isolation_level_is_detected_and_recorded() -> None:
    level = isolation_level()
    assert level in LEVELS
    assert run("pass", FAST).isolation == level


@pytest.mark.parametrize("level", ["uid", "rlimits"])
def test_fallback_levels_still_run_judge_and_time_out(level: str) -> None:
    with SandboxPool(workers=1, isolation=level) as p:  # type: ignore[arg-type]
        ok, early, slow = p.run_many(
            ["print(6 * 7)", "import os\nos._exit(0)", "while True: pass"],
            [FAST, FAST, SandboxLimits(timeout_s=0.5)],
        )
    assert (ok.status, ok.stdout, ok.isolation) == ("passed", "42\n", level)
    assert early.status == "failed" and slow.status == "timeout"


def test_namespaces_give_the_program_its_own_pids_network_and_empty_tmp(tmp_path: Path) -> None:
    if isolation_level() != "namespaces":
        pytest.skip("namespaces are refused on this host")
    (tmp_path / "harness-secret.txt").write_text("x")  # the host's /tmp holds this; the program's must not
    program = (
        "import os\n"
        f"print(os.getpid(), os.path.exists({str(tmp_path / 'harness-secret.txt')!r}), [ln.split(':')[0].strip() for ln in open('/proc/net/dev').readlines()[2:]])\n"
        "print(os.getcwd(), os.listdir('.'))"
    )
    r = run(program, FAST)
    assert r.status == "passed", r.stderr
    assert r.stdout == "1 False ['lo']\n/tmp/work []\n"


def test_the_fork_server_imports_only_the_standard_library() -> None:
    """The server runs as a script with `python -I`: the llmbench package is not importable there."""
    scoring = Path(__file__).resolve().parents[2] / "llmbench" / "scoring"
    for name in ("sandbox_server.py", "sandbox_confine.py", "sandbox_protocol.py"):
        tree = ast.parse((scoring / name).read_text())
        typing_only = {
            id(node)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
            for node in ast.walk(ast.Module(body=block.body, type_ignores=[]))
        }
        imported = {
            alias.name if isinstance(node, ast.Import) else node.module or ""
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in typing_only
            for alias in node.names
        }
        assert {m.split(".")[0] for m in imported} <= set(sys.stdlib_module_names) | {"__future__"}, name


def test_a_python_that_lives_under_tmp_stays_visible_and_read_only(tmp_path: Path) -> None:
    """A virtual environment in /tmp (a CI clone, say) must not vanish under the program's empty /tmp."""
    import subprocess
    from dataclasses import asdict

    from llmbench.scoring import sandbox_server
    from llmbench.scoring.sandbox_protocol import clean_env, read_message, send_message

    assert str(tmp_path).startswith("/tmp/")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "probe_in_tmp.py").write_text("X = 42\n")
    (site / "probe_in_tmp.py").chmod(0o666)  # writable by anyone: only a read-only mount can refuse it
    boot = "import runpy,sys; runpy.run_path(sys.argv[1], run_name='__llmbench_sandbox__')"
    server = subprocess.Popen(
        [str(venv / "bin" / "python"), "-I", "-c", boot, sandbox_server.__file__, "auto"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=clean_env(),
        cwd="/",
    )
    try:
        hello = read_message(server.stdout)
        assert hello is not None and hello["isolation"] == isolation_level()
        outcomes = []
        for source in (
            "import probe_in_tmp; print(probe_in_tmp.X)",
            "import probe_in_tmp; open(probe_in_tmp.__file__, 'a').write('Y = 1')",
        ):
            send_message(server.stdin, {"source": source, "limits": asdict(SandboxLimits(timeout_s=300))})
            outcomes.append(read_message(server.stdout))
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=300)  # a hang guard
    imported, written = outcomes
    assert imported is not None and (imported["status"], imported["stdout"]) == ("passed", "42\n"), imported
    assert written is not None and written["status"] == "failed"
    if isolation_level() == "namespaces":
        assert "Read-only file system" in written["stderr"]
    assert (site / "probe_in_tmp.py").read_text() == "X = 42\n"
