"""The `code` scorer: runs generated code against a problem's tests in the sandbox, reports pass@k.

Three problem formats are understood from the sample's fields: HumanEval (`prompt`, `test`,
`entry_point`), MBPP (`test_list`, optional `test_setup_code`) and LeetCode-style (`entry_point`,
`tests` as input/output pairs or assert strings).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from llmbench.data.base import Sample
from llmbench.scoring.base import Score, ScoredOutput, Scorer
from llmbench.scoring.reasoning import split_reasoning
from llmbench.scoring.sandbox import LEVELS, JudgedProgram, SandboxLimits, SandboxPool, SandboxResult

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_REASONING = (("<think>", "</think>"), ("<reasoning>", "</reasoning>"))
CALIBRATED_RUNTIMES_S: dict[
    JudgedProgram, float
] = {}  # reference program -> its runtime on this host (s), per process
_CALIBRATION_LOCK = threading.Lock()
_CALIBRATION_TIMEOUT_S = 20.0  # a reference gets this long to show its runtime
_ISOLATION_METRICS = tuple(f"isolation_{level}" for level in LEVELS)  # strongest first
_LEETCODE_CHECK = """
import json as _json
def _norm(v):
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {{str(k): _norm(x) for k, x in v.items()}}
    if isinstance(v, float):
        return round(v, 6)
    return v
for _i, _case in enumerate(_json.loads({cases!r})):
    if isinstance(_case, str):
        exec(_case, globals())
        continue
    _args = _case["input"]
    _got = {entry}(**_args) if isinstance(_args, dict) else {entry}(*_args)
    assert _norm(_got) == _norm(_case["output"]), f"test {{_i}}: got {{_got!r}}"
"""


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k), as a stable product."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def extract_code(output: str) -> str:
    """The program in a model's answer: reasoning cut, then the first fenced block (Python first), else all."""
    text = output
    if any(tag in text for pair in _REASONING for tag in pair):
        text = split_reasoning(text, _REASONING).answer  # strips: fine, the answer is then a whole program
    blocks = _FENCE.findall(text)
    if blocks:
        python = [body for lang, body in blocks if lang.lower() in ("python", "py", "python3")]
        return str((python or [blocks[0][1]])[0]).rstrip()
    return re.sub(r"\A(?:[ \t]*\n)+", "", text).rstrip()  # keep the first line's indentation (completions)


def defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def problem_format(fields: dict[str, Any]) -> str:
    """'humaneval', 'mbpp' or 'leetcode', from the fields a sample has."""
    if "test" in fields and "entry_point" in fields and "prompt" in fields:
        return "humaneval"
    if "test_list" in fields:
        return "mbpp"
    if "tests" in fields and "entry_point" in fields:
        return "leetcode"
    raise ValueError(
        "a code sample needs HumanEval (prompt, test, entry_point), MBPP (test_list) "
        "or LeetCode-style (entry_point, tests) fields"
    )


def build_program(fields: dict[str, Any], code: str) -> JudgedProgram:
    """The solution (compiled on its own, complete) and the tests that judge it in another process.

    Nothing is appended to the solution: a completion that ends in a dangling decorator, or leaves a
    block open, is a syntax error rather than a way to change the tests that follow it.
    """
    fmt = problem_format(fields)
    if fmt == "humaneval":
        entry, prompt = fields["entry_point"], fields["prompt"]
        solution = prompt + "\n\n" + code if defines(code, entry) else prompt + code
        # The prompt's helpers stay the prompt's; its entry-point stub is the solution, as tests expect.
        tests = f"{prompt}\n\n{entry} = candidate\n\n{fields['test']}\n\ncheck(candidate)\n"
        return JudgedProgram(_complete(solution), tests, entry=entry)
    if fmt == "mbpp":
        setup = fields.get("test_setup_code") or ""
        tests = "\n".join([setup, *fields["test_list"], ""])
        return JudgedProgram(_complete(setup + "\n" + code), tests, wanted=free_names(tests))
    entry = fields["entry_point"]
    starter = fields.get("starter_code") or fields.get("starter") or ""
    solution = code if defines(code, entry) else starter + code
    cases = json.dumps(fields["tests"])
    tests = _LEETCODE_CHECK.format(cases=cases, entry=entry)
    asserts = "\n".join(c for c in fields["tests"] if isinstance(c, str))
    wanted = tuple(dict.fromkeys((entry, *free_names(asserts))))
    return JudgedProgram(_complete(solution), tests, wanted=wanted)


def _complete(solution: str) -> str:
    compile(solution, "<solution>", "exec")  # a SyntaxError here is the output's own
    return solution


def free_names(tests: str) -> tuple[str, ...]:
    """Names the tests use but neither define nor get from builtins: what the solution must provide."""
    import ast
    import builtins

    try:
        tree = ast.parse(tests)
    except SyntaxError:
        return ()
    used: dict[str, None] = {}
    bound = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                used.setdefault(node.id, None)
            else:
                bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return tuple(n for n in used if n not in bound)


class CodeScorer(Scorer):
    """Runs each output with the problem's tests in the sandbox; `correct` only when every test passed."""

    name: ClassVar[str] = "code"
    primary_metric: ClassVar[str] = "pass@1"

    def __init__(
        self,
        k: Sequence[int] = (1,),
        timeout_s: float = 10.0,
        memory_mb: int = 2048,
        max_processes: int = 64,
        max_output_bytes: int = 1 << 20,
        workers: int | None = None,
        calibrate_timeout: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.k = sorted({int(x) for x in ([k] if isinstance(k, int) else k)})
        if not self.k or min(self.k) < 1:
            raise TypeError("k must be a list of positive integers")
        self.limits = SandboxLimits(timeout_s, memory_mb, max_processes, max_output_bytes)
        self.calibrate_timeout = calibrate_timeout
        self.pool = SandboxPool(workers)

    def score(self, sample: Sample, output: str) -> Score:
        return self.score_batch([(sample, output)])[0]

    def reference_output(self, sample: Sample) -> str:
        fields = sample.fields
        fmt = problem_format(fields)
        ref = {"humaneval": "canonical_solution", "mbpp": "code", "leetcode": "reference"}[fmt]
        return str(fields.get(ref) or sample.reference)

    def score_batch(self, items: Sequence[tuple[Sample, str]]) -> list[Score]:
        """Build every program, run the runnable ones in parallel in the sandbox, judge each result."""
        scores: list[Score | None] = [None] * len(items)
        programs: list[JudgedProgram] = []
        where: list[int] = []
        for i, (sample, output) in enumerate(items):
            try:
                code = extract_code(output)
                if not code.strip():
                    scores[i] = Score(
                        0.0, "unparsed", {"syntax_error": 0.0, "timeout": 0.0}, {"reason": "no code"}
                    )
                    continue
                program = build_program(sample.fields, code)
            except SyntaxError as exc:
                details = {"reason": f"syntax error: {exc.msg} (line {exc.lineno})"}
                scores[i] = Score(0.0, "unparsed", {"syntax_error": 1.0, "timeout": 0.0}, details)
                continue
            except (ValueError, KeyError, TypeError) as exc:
                scores[i] = Score(0.0, "error", details={"error": f"{type(exc).__name__}: {exc}"})
                continue
            programs.append(program)
            where.append(i)
        results = self.pool.run_many(programs, self.limits)
        if self.calibrate_timeout:
            self._rerun_with_calibrated_timeouts(items, programs, where, results)
        for i, result in zip(where, results, strict=True):
            scores[i] = _judge(result)
        return [s if s is not None else Score(0.0, "error") for s in scores]

    def _rerun_with_calibrated_timeouts(
        self,
        items: Sequence[tuple[Sample, str]],
        programs: list[JudgedProgram],
        where: list[int],
        results: list[SandboxResult],
    ) -> None:
        """Give outputs that ran out of `timeout_s` the problem's calibrated time, where it is longer.

        The calibrated timeout is never shorter than `timeout_s`, so only an output that timed out can
        change its verdict: references run (once per process) for those problems alone, which keeps a
        batch of quick outputs as fast as without calibration and gives the same verdicts as with it.
        """
        slow = [j for j, r in enumerate(results) if r.status == "timeout"]
        if not slow:
            return
        timeouts = self._timeouts([items[where[j]][0] for j in slow])
        again = [j for j in slow if timeouts[items[where[j]][0].id] > self.limits.timeout_s]
        limits = [_with_timeout(self.limits, timeouts[items[where[j]][0].id]) for j in again]
        for j, result in zip(again, self.pool.run_many([programs[j] for j in again], limits), strict=True):
            results[j] = result

    def _timeouts(self, samples: Sequence[Sample]) -> dict[str, float]:
        """Per-problem timeouts: max(timeout_s, 4x the reference's runtime here), each reference run once."""
        base = self.limits.timeout_s
        if not self.calibrate_timeout:
            return {s.id: base for s in samples}
        refs: dict[str, JudgedProgram] = {}
        for s in samples:
            try:
                refs[s.id] = build_program(s.fields, self.reference_output(s))
            except (ValueError, KeyError, TypeError, SyntaxError):
                continue
        with _CALIBRATION_LOCK:
            todo = list(dict.fromkeys(p for p in refs.values() if p not in CALIBRATED_RUNTIMES_S))
            generous = _with_timeout(self.limits, max(base, _CALIBRATION_TIMEOUT_S))
            for program, result in zip(todo, self.pool.run_many(todo, generous) if todo else [], strict=True):
                CALIBRATED_RUNTIMES_S[program] = (
                    result.duration_ms / 1000 if result.status == "passed" else 0.0
                )
            return {
                s.id: max(base, 4 * (CALIBRATED_RUNTIMES_S.get(refs[s.id], 0.0) if s.id in refs else 0.0))
                for s in samples
            }

    def aggregate(self, outputs: Sequence[ScoredOutput]) -> dict[str, list[float]]:
        """pass@k per problem for each k up to the outputs per problem, error and timeout rates, isolation.

        `isolation_<level>` (namespaces, uid, rlimits) is the share of a problem's executed outputs that ran
        at that sandbox level. Only levels used appear, so a task scored even partly with weaker isolation
        says so in its metrics.
        """
        by_sample: dict[str, list[ScoredOutput]] = {}
        for o in outputs:
            by_sample.setdefault(o.sample_id, []).append(o)
        if not by_sample:
            return {self.primary_metric: []}
        fewest = min(len(g) for g in by_sample.values())
        ks = sorted({1, *(k for k in self.k if k <= fewest)})
        result: dict[str, list[float]] = {f"pass@{k}": [] for k in ks}
        result["syntax_error_rate"], result["timeout_rate"] = [], []
        for group in by_sample.values():
            n, c = len(group), sum(o.score.status == "correct" for o in group)
            for k in ks:
                result[f"pass@{k}"].append(pass_at_k(n, c, k))
            result["syntax_error_rate"].append(
                sum(o.score.metrics.get("syntax_error", 0.0) for o in group) / n
            )
            result["timeout_rate"].append(sum(o.score.status == "timeout" for o in group) / n)
        _add_isolation_shares(result, list(by_sample.values()))
        return result

    def task_fingerprint(self, outputs: Sequence[ScoredOutput]) -> dict[str, str]:
        """The weakest sandbox any output ran in, so that compare flags a run scored with weaker isolation."""
        used = {
            k.removeprefix("isolation_") for o in outputs for k in o.score.metrics if k in _ISOLATION_METRICS
        }
        return {"sandbox_isolation": max(used, key=LEVELS.index)} if used else {}

    def close(self) -> None:
        """Stop the sandbox's fork servers (they also stop when this process exits)."""
        self.pool.close()


def _with_timeout(limits: SandboxLimits, timeout_s: float) -> SandboxLimits:
    from dataclasses import replace

    return replace(limits, timeout_s=timeout_s)


def _judge(result: SandboxResult) -> Score:
    """Map a sandbox outcome to a score; the isolation level is kept so results can record it."""
    details: dict[str, Any] = {
        "sandbox_status": result.status,
        "isolation": result.isolation,
        "duration_ms": result.duration_ms,
    }
    if result.reason:
        details["reason"] = result.reason
    if result.status != "passed" and result.stderr:
        details["stderr_tail"] = result.stderr[-1000:]
    metrics = {
        "syntax_error": 0.0,
        "timeout": float(result.status == "timeout"),
        f"isolation_{result.isolation}": 1.0,
    }
    status = {"passed": "correct", "timeout": "timeout", "error": "error"}.get(result.status, "wrong")
    return Score(float(status == "correct"), status, metrics, details)  # type: ignore[arg-type]


def _add_isolation_shares(result: dict[str, list[float]], groups: list[list[ScoredOutput]]) -> None:
    """Per problem, the share of its executed outputs run at each isolation level any output used."""
    used = [m for m in _ISOLATION_METRICS if any(m in o.score.metrics for g in groups for o in g)]
    for group in groups:
        ran = [o for o in group if any(m in o.score.metrics for m in used)]
        if not ran:  # nothing of this problem reached the sandbox (no code, syntax errors)
            continue
        for m in used:
            result.setdefault(m, []).append(sum(o.score.metrics.get(m, 0.0) for o in ran) / len(ran))
