"""Math answers: extract the final answer from free text and check it for equivalence, not string equality.

Extraction (`extract: auto`, in `math_extract`) tries, in order: the last `\\boxed{}`, the last `#### N`
(GSM8K), the last and innermost "the (final) answer is ...", the last "Answer: ..." line; these are explicit
markers. A marker whose capture reads as prose ("therefore 42") gives the mathematics inside it: its last
`\\boxed{}`, inline-math segment or number. Failing all markers, the last number in the text is taken as a
lenient fallback. `boxed`, `hash` and `last_number` use one method only. The reference is the sample's
reference: the part after `####`, the last `\\boxed{}` of a worked solution, or the value itself.

Equivalence: plain numbers (thousands separators, currency, a listed unit such as `km` or `dollars`,
percent signs, scale words such as `million`, fractions, unicode digits) are compared exactly in Python;
anything else (`2 pi`, `2i`) goes to `math_verify` in worker processes owned by the scorer, because its
own SIGALRM timeout fails outside the main thread and C-level arithmetic cannot be interrupted at all. Each item has `timeout_s`; a worker that overruns is killed and the item is `error`.

Per sample: `accuracy` (primary) = `lenient`: correct by any extraction, fallback included, so that format
slips do not hide ability; `strict`: correct and found by an explicit marker (omitted for `last_number`);
`no_answer`: 1 when nothing could be extracted (status `unparsed`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from multiprocessing import connection
from pathlib import Path
from typing import Any, ClassVar

from llmbench.data.base import Sample
from llmbench.errors import MissingDependencyError
from llmbench.scoring.base import Score, Scorer
from llmbench.scoring.math_extract import (
    EXTRACT_MODES,
    ascii_digits,
    extract_answer,
    parse_number,
    reference_answer,
)

MAX_ANSWER_CHARS = 2000  # no real final answer is longer; longer ones are not worth a sympy parse
_STARTUP_TIMEOUT_S = 120.0  # importing sympy in a fresh worker on a loaded machine
_WORKER_MEMORY_BYTES = 4 << 30  # a runaway sympy expansion fails with MemoryError instead of swapping

__all__ = [
    "EXTRACT_MODES",
    "MathScorer",
    "VerifierPool",
    "ascii_digits",
    "extract_answer",
    "parse_number",
    "reference_answer",
    "serve_verifier",
]


def _same_text(a: str, b: str) -> bool:
    return re.sub(r"\s+", "", a).casefold() == re.sub(r"\s+", "", b).casefold()


@dataclass(frozen=True)
class _Verdict:
    equal: bool | None  # None: the check itself failed (timeout, crash)
    how: str


def serve_verifier() -> None:
    """A verifier process's main loop: JSON lines [job, gold, pred] in, [job, ok, value] out, until EOF.

    Protocol lines go to a private copy of stdout; whatever sympy or math_verify print goes to stderr.
    """
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    with contextlib.suppress(ImportError, ValueError, OSError):  # not on every platform
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (_WORKER_MEMORY_BYTES, _WORKER_MEMORY_BYTES))
    try:
        from math_verify import parse, verify
    except ImportError as exc:
        proto.write(json.dumps(["missing", str(exc)]) + "\n")
        proto.flush()
        return
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the backstop alarm terminates, even inside C arithmetic
    proto.write(json.dumps(["ready", None]) + "\n")
    proto.flush()
    for line in sys.stdin:
        job, gold, pred, backstop_s = json.loads(line)
        signal.setitimer(
            signal.ITIMER_REAL, backstop_s
        )  # outlives the parent's kill only if the parent is gone
        try:
            g = parse(f"\\boxed{{{gold}}}", parsing_timeout=None)  # type: ignore[arg-type]
            p = parse(f"\\boxed{{{pred}}}", parsing_timeout=None)  # type: ignore[arg-type]
            reply = [
                job,
                True,
                bool(verify(g, p, timeout_seconds=None)) if g and p else _same_text(gold, pred),
            ]
        except Exception as exc:  # one bad expression must not take the worker down
            reply = [job, False, f"{type(exc).__name__}: {exc}"[:300]]
        signal.setitimer(signal.ITIMER_REAL, 0)
        proto.write(json.dumps(reply) + "\n")
        proto.flush()


class MathWorker:
    """One verifier process (a plain subprocess: no fork from threads, no re-import of __main__) and its job."""

    def __init__(self) -> None:
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from llmbench.scoring.math import serve_verifier; serve_verifier()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
            encoding="utf-8",
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.job: int | None = None
        self.deadline = 0.0

    def wait_ready(self) -> None:
        if not connection.wait([self.stdout.fileno()], timeout=_STARTUP_TIMEOUT_S):
            self.kill()
            raise RuntimeError("a math verifier process did not start in time")
        line = self.stdout.readline()
        kind, message = json.loads(line) if line else ("dead", None)
        if kind != "ready":
            self.kill()
            if kind == "missing":
                raise MissingDependencyError("math-verify", purpose=f"math answer checking ({message})")
            raise RuntimeError("a math verifier process exited at start")

    def send(self, job: int, gold: str, pred: str, timeout_s: float) -> None:
        self.job, self.deadline = job, time.monotonic() + timeout_s
        try:
            self.stdin.write(json.dumps([job, gold, pred, 2 * timeout_s + 5]) + "\n")
            self.stdin.flush()
        except OSError:  # died: the reply read finds EOF and the worker is replaced
            pass

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        for stream in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                stream.close()


class VerifierPool:
    """Worker processes that run math_verify, each item under its own timeout; hung workers are replaced."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._workers: list[MathWorker] = []
        self._lock = threading.Lock()

    def _spawn(self, n: int) -> list[MathWorker]:
        fresh = [MathWorker() for _ in range(n)]
        for w in fresh:
            w.wait_ready()
        return fresh

    def _replace(self, worker: MathWorker) -> None:
        worker.kill()
        self._workers.remove(worker)
        self._workers += self._spawn(1)

    def run(self, jobs: Sequence[tuple[str, str]], timeout_s: float) -> list[_Verdict]:
        """Verify each (gold, pred) pair; results in input order."""
        results: list[_Verdict | None] = [None] * len(jobs)
        with self._lock:
            try:
                self._run(jobs, timeout_s, results)
            finally:  # after an error (a replacement that failed to start), drop workers left mid-job
                for w in [w for w in self._workers if w.job is not None]:
                    w.kill()
                    self._workers.remove(w)
        return [r if r is not None else _Verdict(None, "not verified") for r in results]

    def _run(self, jobs: Sequence[tuple[str, str]], timeout_s: float, results: list[_Verdict | None]) -> None:
        for w in [w for w in self._workers if w.proc.poll() is not None]:
            w.kill()
            self._workers.remove(w)
        if len(self._workers) < min(self._size, len(jobs)):
            self._workers += self._spawn(min(self._size, len(jobs)) - len(self._workers))
        todo = deque(range(len(jobs)))
        while todo or any(w.job is not None for w in self._workers):
            for w in self._workers:
                if w.job is None and todo:
                    nxt = todo.popleft()
                    w.send(nxt, *jobs[nxt], timeout_s)
            busy = [w for w in self._workers if w.job is not None]
            wait_s = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = connection.wait([w.stdout.fileno() for w in busy], timeout=wait_s)
            for w in busy:
                job = w.job
                assert job is not None
                if w.stdout.fileno() in ready:
                    results[job], alive = self._receive(w)
                elif time.monotonic() >= w.deadline:
                    results[job], alive = (
                        _Verdict(None, f"verification timed out after {timeout_s:g} s"),
                        False,
                    )
                else:
                    continue
                w.job = None
                if not alive:
                    self._replace(w)

    @staticmethod
    def _receive(w: MathWorker) -> tuple[_Verdict, bool]:
        """The worker's answer and whether it is still alive."""
        line = w.stdout.readline()
        if not line:
            return _Verdict(None, f"verifier process died (exit code {w.proc.poll()})"), False
        _, ok, value = json.loads(line)
        return (
            _Verdict(bool(value), "math_verify") if ok else _Verdict(None, f"math_verify failed: {value}")
        ), True

    def close(self) -> None:
        """Stop every worker process."""
        with self._lock:
            for w in self._workers:
                w.kill()
            self._workers = []


class MathScorer(Scorer):
    """Final-answer accuracy on math problems, strict (marker) and lenient (last number) side by side."""

    name: ClassVar[str] = "math"
    primary_metric: ClassVar[str] = "accuracy"

    def __init__(
        self, *, extract: str = "auto", timeout_s: float = 5, workers: int = 2, **options: Any
    ) -> None:
        super().__init__(**options)
        if extract not in EXTRACT_MODES:
            raise TypeError(f"extract must be one of {', '.join(EXTRACT_MODES)}, not {extract!r}")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
            raise TypeError("timeout_s must be a positive number of seconds")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise TypeError("workers must be a positive integer")
        if importlib.util.find_spec("math_verify") is None:
            raise MissingDependencyError("math-verify", purpose="math answer checking")
        self.extract, self.timeout_s = extract, float(timeout_s)
        self._pool = VerifierPool(workers)
        self._finalizer = weakref.finalize(self, self._pool.close)

    def close(self) -> None:
        """Stop the verifier processes (they also stop when the scorer is collected or Python exits)."""
        self._finalizer()

    def score(self, sample: Sample, output: str) -> Score:
        return self.score_batch([(sample, output)])[0]

    def score_batch(self, items: Sequence[tuple[Sample, str]]) -> list[Score]:
        """Extract every answer here, settle the plain ones at once, send the rest to the verifier pool."""
        scores: list[Score | None] = [None] * len(items)
        pending: list[tuple[int, str, str, str]] = []
        for i, (sample, output) in enumerate(items):
            try:
                gold = reference_answer(sample.reference)
                found = extract_answer(output, self.extract)
                if found is None:
                    scores[i] = self._verdict(None, gold, True, "no answer found")
                elif len(found[0]) > MAX_ANSWER_CHARS:
                    scores[i] = self._verdict(
                        found, gold, False, f"answer longer than {MAX_ANSWER_CHARS} chars"
                    )
                elif (quick := self._quick_equal(gold, found[0])) is not None:
                    scores[i] = self._verdict(found, gold, *quick)
                else:
                    pending.append((i, gold, *found))
            except Exception as exc:  # a malformed sample costs one score, not the batch
                scores[i] = Score(0.0, "error", details={"error": f"{type(exc).__name__}: {exc}"})
        if pending:
            try:
                verdicts = self._pool.run([(gold, answer) for _, gold, answer, _ in pending], self.timeout_s)
            except (
                OSError,
                RuntimeError,
            ) as exc:  # no verifier could start: these items are errors, not a crash
                verdicts = [_Verdict(None, f"math verifier unavailable: {exc}")] * len(pending)
            for (i, gold, answer, method), v in zip(pending, verdicts, strict=True):
                if v.equal is None:
                    scores[i] = Score(
                        0.0, "error", details={"error": v.how, "extracted": answer[:200], "reference": gold}
                    )
                else:
                    scores[i] = self._verdict((answer, method), gold, v.equal, v.how)
        return [s if s is not None else Score(0.0, "error") for s in scores]

    @staticmethod
    def _quick_equal(gold: str, answer: str) -> tuple[bool, str] | None:
        """(equal, how) for identical texts and plain numbers; None when only math_verify can tell."""
        if _same_text(gold, answer):
            return True, "identical"
        g, a = parse_number(gold), parse_number(answer)
        if g is not None and a is not None:
            return abs(g - a) <= Fraction(1, 10**6) * max(Fraction(1), abs(g)), "numeric"
        return None

    def _verdict(self, found: tuple[str, str] | None, gold: str, equal: bool, how: str) -> Score:
        if found is None:
            metrics = {"lenient": 0.0, "no_answer": 1.0} | (
                {} if self.extract == "last_number" else {"strict": 0.0}
            )
            return Score(0.0, "unparsed", metrics, {"reason": how, "reference": gold})
        answer, method = found
        metrics = {"lenient": float(equal), "no_answer": 0.0}
        if self.extract != "last_number":
            metrics["strict"] = float(equal and method != "last_number")
        details = {"extracted": answer[:200], "method": method, "reference": gold, "equivalence": how}
        return Score(float(equal), "correct" if equal else "wrong", metrics, details)

    def reference_output(self, sample: Sample) -> str:
        gold = reference_answer(sample.reference)
        if self.extract == "hash":
            return f"#### {gold}"
        if self.extract != "boxed" and parse_number(gold) is not None and "\\" not in gold:
            return f"The answer is {gold}."
        return f"The final answer is $\\boxed{{{gold}}}$."
