"""An output cannot change how it is judged, nor reach the host: each guarantee of docs/sandbox.md, attacked.

Every attack here passed (or reached the host) before the solution and its tests ran in two processes
under a seccomp filter with the harness's directories hidden; each must now fail like a wrong answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmbench.config.suite import DatasetSpec
from llmbench.data.base import DataContext, Sample
from llmbench.data.humaneval import humaneval, humaneval_path
from llmbench.data.readers import LocalSource
from llmbench.scoring.code import CodeScorer, build_program
from llmbench.scoring.sandbox import SandboxLimits, SandboxPool, concealed_paths, isolation_level
from llmbench.scoring.sandbox_confine import python_paths

ROOT = Path(__file__).resolve().parents[2]
LIMITS = SandboxLimits(timeout_s=10, memory_mb=512)


@pytest.fixture(scope="module")
def scorer() -> Iterator[CodeScorer]:
    s = CodeScorer(timeout_s=10, workers=2, calibrate_timeout=False)
    yield s
    s.close()


@pytest.fixture(scope="module")
def problems() -> list[Sample]:
    return humaneval({"limit": 24}, DataContext(suite_dir=ROOT))


@pytest.fixture(scope="module")
def leetcode() -> list[Sample]:
    spec = DatasetSpec(local="suites/data/coding/leetcode_mini.jsonl")
    return LocalSource().load(spec, DataContext(suite_dir=ROOT))


def never_correct(scorer: CodeScorer, items: list[tuple[Sample, str]]) -> None:
    scores = scorer.score_batch(items)
    passed = [s.id for (s, _), score in zip(items, scores, strict=True) if score.status == "correct"]
    assert passed == [], f"forged passes: {passed}"


# ------------------------------------------------------------------ the output cannot change the tests


@pytest.mark.parametrize(
    "tail",
    [
        "    return None\n\n@(lambda f: (lambda *a, **k: None))\n",  # turns `check` into a no-op
        "    return None\n\n@staticmethod\n",
        "    return None\n\nclass _Swallow:\n",  # a block left open for the tests to fill
        "    return (None\n",
    ],
)
def test_a_completion_that_would_rewrite_the_tests_after_it_is_a_syntax_error(
    scorer: CodeScorer, problems: list[Sample], tail: str
) -> None:
    scores = scorer.score_batch([(p, tail) for p in problems])
    assert [s.status for s in scores] == ["unparsed"] * len(problems)


@pytest.mark.parametrize(
    "attack",
    [
        "import json\njson.loads = lambda s, *a, **k: []\n",
        "import sys, json\nsys.modules['json'] = type(sys)('json')\nsys.modules['json'].loads = lambda s: []\n",
        "import builtins\nbuiltins.isinstance = lambda *a: False\nbuiltins.round = lambda *a: 0\n",
        "import builtins\nbuiltins.AssertionError = type('Quiet', (Exception,), {})\n",
        "import builtins\n_r = builtins.range\nbuiltins.enumerate = lambda *a, **k: iter(())\n",
    ],
)
def test_replacing_what_the_tests_use_cannot_pass_a_problem(
    scorer: CodeScorer, leetcode: list[Sample], attack: str
) -> None:
    items = [
        (p, attack + f"def {p.fields['entry_point']}(*args, **kwargs):\n    return None\n") for p in leetcode
    ]
    never_correct(scorer, items)


@pytest.mark.parametrize(
    "answer",
    [
        "class _Any:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n",
        "class _Any(float):\n    def __eq__(self, other):\n        return True\n    def __abs__(self):\n"
        "        return 0.0\n    def __sub__(self, other):\n        return self\n    def __lt__(self, o):\n"
        "        return True\n    __hash__ = float.__hash__\n",
        "class _Any(list):\n    def __eq__(self, other):\n        return True\n",
        "class _Any(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n",
    ],
)
def test_an_answer_that_claims_to_equal_everything_is_judged_by_its_value(
    scorer: CodeScorer, problems: list[Sample], answer: str
) -> None:
    items = [
        (p, f"{answer}\ndef {p.fields['entry_point']}(*args, **kwargs):\n    return _Any()\n")
        for p in problems
    ]
    never_correct(scorer, items)


def test_the_judge_rebuilds_plain_values_so_honest_answers_still_pass(scorer: CodeScorer) -> None:
    tests = [
        "assert f(3) == (3, [3], {3: 'x'}, {3}, frozenset({3}), 3.5, b'3', None, True, 3j)",
        "assert list(g(3)) == [0, 1, 2] and h(2) == range(2)",
        "assert isinstance(k('x'), dict) and k('x') == {'x': [1.0, float('inf')]}",
        "import math\nassert math.isnan(n())",
        "try:\n    boom()\nexcept ValueError as e:\n    assert 'no' in str(e)\nelse:\n    raise AssertionError",
        "p = make(2)\nassert p.double() == 4 and p == p and p.value == 2",
    ]
    code = (
        "def f(x):\n    return (x, [x], {x: 'x'}, {x}, frozenset({x}), x + .5, str(x).encode(), None, True, x * 1j)\n"
        "def g(n):\n    yield from range(n)\ndef h(n):\n    return range(n)\n"
        "def k(s):\n    return {s: [1.0, float('inf')]}\ndef n():\n    return float('nan')\n"
        "def boom():\n    raise ValueError('no')\n"
        "class P:\n    def __init__(self, v):\n        self.value = v\n    def double(self):\n"
        "        return 2 * self.value\ndef make(v):\n    return P(v)\n"
    )
    sample = Sample(id="plain", fields={"test_list": tests, "code": code})
    score = scorer.score(sample, code)
    assert score.status == "correct", score.details


def test_a_solution_that_fails_on_import_fails_its_tests(scorer: CodeScorer) -> None:
    sample = Sample(id="imp", fields={"test_list": ["assert 1 == 1"], "code": ""})
    score = scorer.score(sample, "raise SystemExit(0)\ndef f():\n    return 1\n")
    assert score.status == "wrong" and "SystemExit" in score.details.get("stderr_tail", "")


def test_the_signal_handler_route_to_the_marker_forges_nothing(
    scorer: CodeScorer, problems: list[Sample]
) -> None:
    """The attack the sandbox's docs once listed: a timer handler that looks for the marker in frames."""
    attack = (
        "import signal, sys\n"
        "def _hunt(signum, frame):\n"
        "    f = frame\n"
        "    while f is not None:\n"
        "        for v in list(f.f_locals.values()):\n"
        "            if isinstance(v, list) and v and isinstance(v[0], bytes) and len(v[0]) == 32:\n"
        "                import os\n"
        "                for fd in range(3, 64):\n"
        "                    try:\n                        os.write(fd, v[0])\n"
        "                    except OSError:\n                        pass\n"
        "                os._exit(0)\n"
        "        f = f.f_back\n"
        "signal.signal(signal.SIGALRM, _hunt)\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.00005, 0.00005)\n"
    )
    items = [
        (p, attack + f"def {p.fields['entry_point']}(*a, **k):\n    return None\n") for p in problems[:8]
    ]
    never_correct(scorer, items)


def test_exiting_early_with_status_zero_is_not_a_pass(scorer: CodeScorer, problems: list[Sample]) -> None:
    attacks = [
        "import os\nos._exit(0)\n",
        "import sys\nsys.exit(0)\n",
        "import os\nos.kill(os.getppid(), 9)\n",
    ]
    items = [
        (p, a + f"def {p.fields['entry_point']}(*x):\n    return None\n")
        for p in problems[:4]
        for a in attacks
    ]
    never_correct(scorer, items)


# ------------------------------------------------------------------ the data and the harness are not visible


def namespaces_only() -> None:
    if isolation_level() != "namespaces":
        pytest.skip("files are hidden only at the namespaces level")


def test_the_shipped_data_and_the_harness_are_not_visible_to_a_program() -> None:
    namespaces_only()
    secrets = [
        str(humaneval_path()),
        str(ROOT / "suites" / "data" / "coding" / "mbpp_mini.jsonl"),
        str(ROOT / "llmbench" / "scoring" / "code.py"),
        str(Path.cwd()),
        *concealed_paths(),
    ]
    python = python_paths(excluding=concealed_paths())  # Python's own stay visible wherever they live
    program = (
        "import os, json\n"
        "found = []\n"
        f"for top in {secrets!r}:\n"
        "    if os.path.isfile(top):\n        found.append(top)\n"
        "    for root, dirs, files in os.walk(top):\n"
        f"        dirs[:] = [d for d in dirs if os.path.join(root, d) not in {python!r}]\n"
        "        found += [os.path.join(root, f) for f in files]\n"
        "print(json.dumps(found[:5]))\n"
    )
    with SandboxPool(workers=1) as pool:
        result = pool.run(program, LIMITS)
    assert result.status == "passed", result.stderr
    assert json.loads(result.stdout) == []


def test_running_the_canonical_solution_from_the_shipped_data_does_not_pass(
    scorer: CodeScorer, problems: list[Sample]
) -> None:
    namespaces_only()
    steal = (
        "import gzip, json\n"
        f"_rows = [json.loads(l) for l in gzip.open({str(humaneval_path())!r}, 'rt')]\n"
        "_me = next(r for r in _rows if r['entry_point'] == {entry!r})\n"
        "exec(_me['prompt'] + _me['canonical_solution'])\n"
    )
    items = [(p, steal.format(entry=p.fields["entry_point"])) for p in problems[:6]]
    never_correct(scorer, items)


# ------------------------------------------------------------------ no socket of the host is reachable


@contextlib.contextmanager
def listening(family: int, address: object) -> Iterator[tuple[list[bytes], object]]:
    """A host listener that records whatever a connection sends it; yields that list and its address."""
    received: list[bytes] = []
    server = socket.socket(family, socket.SOCK_STREAM)
    server.bind(address)
    server.listen(4)
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(1)
                with contextlib.suppress(OSError):
                    received.append(conn.recv(64))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield received, server.getsockname()
    finally:
        stop.set()
        thread.join(5)
        server.close()


def connect_program(family: str, address: object) -> str:
    return (
        "import socket\n"
        f"s = socket.socket(socket.{family}, socket.SOCK_STREAM)\n"
        f"s.connect({address!r})\n"
        "s.sendall(b'reached the host')\n"
    )


def host_socket_dir() -> Path:
    """A directory the sandbox's read-only view shows (not /tmp, which it covers), for a pathname socket."""
    for base in ("/run", "/var/lib", "/srv"):
        if os.access(base, os.W_OK):
            return Path(tempfile.mkdtemp(prefix="llmbench-sock-", dir=base))
    pytest.skip("no visible writable directory for a host socket")


def test_a_pathname_unix_socket_of_the_host_is_unreachable() -> None:
    directory = host_socket_dir()
    path = str(directory / "host.sock")
    try:
        with listening(socket.AF_UNIX, path) as (received, _), SandboxPool(workers=1) as pool:
            os.chmod(directory, 0o755)
            os.chmod(path, 0o777)
            result = pool.run(connect_program("AF_UNIX", path), LIMITS)
        assert result.status == "failed" and "PermissionError" in result.stderr, result
        assert received == []
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        directory.rmdir()


def test_an_abstract_unix_socket_and_loopback_tcp_of_the_host_are_unreachable() -> None:
    name = f"\0llmbench-test-{os.getpid()}"
    with (
        listening(socket.AF_UNIX, name) as (abstract, _),
        listening(socket.AF_INET, ("127.0.0.1", 0)) as (tcp, address),
        SandboxPool(workers=1) as pool,
    ):
        a = pool.run(connect_program("AF_UNIX", name), LIMITS)
        t = pool.run(connect_program("AF_INET", tuple(address)), LIMITS)  # type: ignore[arg-type]
    assert a.status == "failed" and "PermissionError" in a.stderr, a
    assert t.status == "failed" and "PermissionError" in t.stderr, t
    assert abstract == [] and tcp == []


def test_a_socket_of_any_family_is_refused_outright() -> None:
    program = (
        "import socket\n"
        "errors = []\n"
        "for family in (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK):\n"
        "    try:\n        socket.socket(family, socket.SOCK_DGRAM if family == socket.AF_NETLINK else socket.SOCK_STREAM)\n"
        "    except PermissionError:\n        errors.append('socket')\n"
        "print(errors)\n"
    )
    with SandboxPool(workers=1) as pool:
        result = pool.run(program, LIMITS)
    assert result.status == "passed", result.stderr
    assert result.stdout.strip() == "['socket', 'socket', 'socket', 'socket']"


def test_open_files_are_limited_like_the_rest(scorer: CodeScorer) -> None:
    program = (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "assert soft == hard == 256, (soft, hard)\n"
        "handles = []\n"
        "try:\n    for _ in range(10_000):\n        handles.append(open('/dev/null'))\n"
        "except OSError as exc:\n    assert exc.errno == 24\n"
        "assert 200 < len(handles) < 256\n"
    )
    with SandboxPool(workers=1) as pool:
        result = pool.run(program, LIMITS)
    assert result.status == "passed", result.stderr


def test_build_program_keeps_the_tests_out_of_the_solution(problems: list[Sample]) -> None:
    program = build_program(problems[0].fields, problems[0].fields["canonical_solution"])
    assert "def check" not in program.solution and "def check" in program.tests
