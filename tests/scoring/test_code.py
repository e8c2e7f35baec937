"""The code scorer: extraction, the three problem formats, pass@k, and all of HumanEval's references."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import combinations
from math import comb
from pathlib import Path

import pytest

from llmbench.data.base import DataContext, Sample
from llmbench.data.humaneval import humaneval
from llmbench.scoring.base import Score, ScoredOutput
from llmbench.scoring.code import CodeScorer, build_program, extract_code, pass_at_k

DATA = Path(__file__).resolve().parents[2] / "suites" / "data" / "coding"


@pytest.fixture(scope="module")
def scorer() -> Iterator[CodeScorer]:
    s = CodeScorer(timeout_s=300, workers=2)  # a limit only a hang reaches; timeouts have their own scorer
    yield s
    s.close()


def load(name: str, id_field: str) -> list[Sample]:
    records = [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]
    return [Sample(id=str(r[id_field]), fields=r) for r in records]


HE = Sample(
    id="HumanEval/x",
    fields={
        "task_id": "HumanEval/x",
        "prompt": 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum of xs."""\n',
        "canonical_solution": "    return sum(xs)\n",
        "test": "def check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0\n",
        "entry_point": "total",
    },
    reference="    return sum(xs)\n",
)


def test_pass_at_k_matches_exact_combinatorics() -> None:
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                outcomes = [1] * c + [0] * (n - c)
                subsets = list(combinations(range(n), k))
                exact = sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(exact)
                assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_pass_at_k_is_stable_for_large_n() -> None:
    assert pass_at_k(2000, 1, 1) == pytest.approx(1 / 2000)
    assert 0.0 < pass_at_k(5000, 3, 100) < 1.0
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_extract_code_takes_the_first_python_block_after_reasoning() -> None:
    text = "<think>```python\nbad()\n```</think>Here:\n```text\nnotes\n```\n```python\ndef f():\n    return 1\n```\n```python\nother()\n```"
    assert extract_code(text) == "def f():\n    return 1"
    assert extract_code("```\nx = 1\n```") == "x = 1"
    assert extract_code("\n    return 1\n") == "    return 1"


def test_completion_is_continued_from_the_prompt_and_a_full_function_replaces_it() -> None:
    body = build_program(HE.fields, "    return sum(xs)")
    full = build_program(HE.fields, "def total(xs):\n    return sum(xs)")
    assert body.solution.startswith(HE.fields["prompt"] + "    return sum(xs)") and body.entry == "total"
    assert "from typing import List" in full.solution and full.solution.count("def total") == 2
    assert "check(candidate)" in body.tests and "check" not in body.solution  # judged in another process


@pytest.mark.parametrize(
    ("output", "status", "syntax_error"),
    [
        ("    return sum(xs)\n", "correct", 0.0),
        ("```python\ndef total(xs):\n    return sum(x for x in xs)\n```", "correct", 0.0),
        ("<think>easy</think>\n```python\ndef total(xs):\n    return sum(xs)\n```", "correct", 0.0),
        ("    return 0\n", "wrong", 0.0),
        ("```python\ndef total(xs) return 1\n```", "unparsed", 1.0),
        ("", "unparsed", 0.0),
    ],
)
def test_humaneval_outputs_are_judged(
    scorer: CodeScorer, output: str, status: str, syntax_error: float
) -> None:
    score = scorer.score(HE, output)
    assert score.status == status, score.details
    assert score.value == float(status == "correct") and score.metrics["syntax_error"] == syntax_error
    if status in ("correct", "wrong", "timeout"):
        level = score.details["isolation"]
        assert level in ("namespaces", "uid", "rlimits")
        assert score.metrics[f"isolation_{level}"] == 1.0


def test_timeout_is_counted_separately(scorer: CodeScorer) -> None:
    quick = CodeScorer(timeout_s=0.5, calibrate_timeout=False, workers=1)
    try:
        score = quick.score(HE, "    while True:\n        pass\n")
    finally:
        quick.close()
    assert (score.status, score.metrics["timeout"]) == ("timeout", 1.0)
    level = score.details["isolation"]
    assert level in ("namespaces", "uid", "rlimits") and score.metrics[f"isolation_{level}"] == 1.0


def test_mbpp_references_pass_and_wrong_or_broken_code_does_not(scorer: CodeScorer) -> None:
    samples = load("mbpp_mini.jsonl", "task_id")
    assert len(samples) >= 10
    scores = scorer.score_batch([(s, scorer.reference_output(s)) for s in samples])
    assert [s.status for s in scores] == ["correct"] * len(samples)
    first = samples[0]
    wrong = scorer.score(first, "def sum_even_squares(nums):\n    return 0")
    broken = scorer.score(first, "def sum_even_squares(nums)\n    return 0")
    assert (wrong.status, broken.status) == ("wrong", "unparsed")


def test_leetcode_references_pass_and_wrong_code_does_not(scorer: CodeScorer) -> None:
    samples = load("leetcode_mini.jsonl", "id")
    assert len(samples) >= 8
    scores = scorer.score_batch([(s, scorer.reference_output(s)) for s in samples])
    assert [s.status for s in scores] == ["correct"] * len(samples), [s.details for s in scores]
    two_sum = samples[0]
    assert (
        scorer.score(two_sum, "```python\ndef pair_to_target(nums, target):\n    return [0, 1]\n```").status
        == "wrong"
    )
    assert scorer.score(two_sum, "I cannot solve this.").status == "unparsed"


def test_every_humaneval_canonical_solution_passes(scorer: CodeScorer) -> None:
    samples = humaneval({}, DataContext(suite_dir=DATA))
    assert len(samples) == 164 and samples[0].id == "HumanEval/0"
    scores = scorer.score_batch([(s, scorer.reference_output(s)) for s in samples])
    failed = [(s.id, sc.details) for s, sc in zip(samples, scores, strict=True) if sc.status != "correct"]
    assert failed == []


def test_aggregate_gives_pass_at_k_up_to_the_outputs_per_problem() -> None:
    scorer = CodeScorer(k=[1, 2, 5])

    def out(sid: str, i: int, ok: bool, syntax: float = 0.0) -> ScoredOutput:
        status = "correct" if ok else ("unparsed" if syntax else "wrong")
        return ScoredOutput(sid, i, Score(float(ok), status, {"syntax_error": syntax, "timeout": 0.0}))  # type: ignore[arg-type]

    outputs = [
        out("a", 0, True),
        out("a", 1, False),
        out("a", 2, False),
        out("b", 0, False, 1.0),
        out("b", 1, False),
        out("b", 2, False),
    ]
    agg = scorer.aggregate(outputs)
    assert set(agg) == {"pass@1", "pass@2", "syntax_error_rate", "timeout_rate"}  # 5 > 3 outputs per problem
    assert agg["pass@1"] == pytest.approx([1 / 3, 0.0]) and agg["pass@2"] == pytest.approx([2 / 3, 0.0])
    assert agg["syntax_error_rate"] == pytest.approx([0.0, 1 / 3])
    scorer.close()


def test_aggregate_names_every_isolation_level_the_task_ran_at() -> None:
    """A task run (or resumed) partly with weaker isolation says so in its metrics, with the share."""
    scorer = CodeScorer()

    def out(sid: str, i: int, level: str | None) -> ScoredOutput:
        metrics = {"syntax_error": float(level is None), "timeout": 0.0}
        if level:
            metrics[f"isolation_{level}"] = 1.0
        return ScoredOutput(sid, i, Score(0.0, "wrong" if level else "unparsed", metrics))

    outputs = [
        out("a", 0, "namespaces"),
        out("a", 1, "rlimits"),
        out("b", 0, "namespaces"),
        out("b", 1, None),
    ]
    outputs += [out("c", 0, None)]  # never ran: counts for neither level
    agg = scorer.aggregate(outputs)
    assert agg["isolation_namespaces"] == pytest.approx([0.5, 1.0])
    assert agg["isolation_rlimits"] == pytest.approx([0.5, 0.0])
    assert "isolation_uid" not in agg
    assert "isolation_namespaces" not in scorer.aggregate([out("c", 0, None)])
    scorer.close()


def test_unknown_options_are_refused() -> None:
    with pytest.raises(TypeError):
        CodeScorer(timeout=3)
    with pytest.raises(TypeError):
        CodeScorer(k=[0])


def test_calibrated_timeout_is_at_least_four_times_the_reference(scorer: CodeScorer) -> None:
    slow = Sample(
        id="slow",
        fields={
            "test_list": ["assert f() == 1"],
            "code": "import time\ndef f():\n    time.sleep(0.3)\n    return 1",
        },
    )
    quick = CodeScorer(timeout_s=0.2, workers=1)
    try:
        assert quick._timeouts([slow])["slow"] >= 4 * 0.3
        assert (
            quick.score(slow, quick.reference_output(slow)).status == "correct"
        )  # 0.2 s alone would time out
    finally:
        quick.close()


def test_quick_outputs_never_run_the_reference_and_a_loop_still_times_out() -> None:
    """Calibration is paid only for outputs that ran out of time_s; verdicts are those of calibrating first."""
    from llmbench.scoring.code import CALIBRATED_RUNTIMES_S, build_program

    # 2 s for an output that returns at once: a busy host does not reach it; the reference's 3 s does.
    reference = "import time\ndef g():\n    time.sleep(3)\n    return 2"
    problem = Sample(id="lazy", fields={"test_list": ["assert g() == 2"], "code": reference})
    ref_program = build_program(problem.fields, reference)
    scorer = CodeScorer(timeout_s=2, workers=1)
    try:
        assert scorer.score(problem, "def g():\n    return 2").status == "correct"
        assert ref_program not in CALIBRATED_RUNTIMES_S  # nothing timed out: the reference never ran
        looping = scorer.score(problem, "def g():\n    while True:\n        pass")
        assert looping.status == "timeout" and ref_program in CALIBRATED_RUNTIMES_S
        assert looping.details["duration_ms"] >= 4 * 3 * 1000 * 0.9  # judged with the calibrated time
    finally:
        scorer.close()
