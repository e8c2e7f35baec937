"""The math scorer: answer extraction, equivalence, strict vs lenient, hostile outputs and the built-in sets."""

from __future__ import annotations

import json
import re
import signal
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from llmbench.config.suite import load_suite
from llmbench.data.base import DataContext, Sample
from llmbench.data.readers import load_samples
from llmbench.scoring import scorers
from llmbench.scoring.math import MathScorer, MathWorker, extract_answer, parse_number, reference_answer

SUITE = Path(__file__).resolve().parents[2] / "suites" / "math.yaml"


@pytest.fixture(scope="module")
def scorer() -> Iterator[MathScorer]:
    s = MathScorer(timeout_s=20)
    yield s
    s.close()


def sample(reference: object) -> Sample:
    return Sample(id="s", fields={}, reference=reference)


def suite_samples(task: str) -> list[Sample]:
    suite = load_suite(SUITE)
    spec = next(t for t in suite.config.tasks if t.name == task)
    assert spec.dataset is not None
    return load_samples(spec.dataset, DataContext(suite_dir=suite.directory))


@pytest.mark.parametrize(
    ("text", "mode", "expected"),
    [
        ("48 + 24 = 72\n#### 72", "auto", ("72", "hash")),
        ("So $x = \\boxed{\\frac{1}{2}}$.", "auto", ("\\frac{1}{2}", "boxed")),
        ("\\boxed{3} then \\boxed{\\dfrac{\\pi}{4}}", "auto", ("\\dfrac{\\pi}{4}", "boxed")),
        ("Thus, the answer is $1,234.", "auto", ("$1,234", "answer_phrase")),
        ("The final answer is 3.5.", "auto", ("3.5", "answer_phrase")),
        ("The answer is **-7**.", "auto", ("-7", "answer_phrase")),
        ("Work...\n**Answer:** 18 dollars", "auto", ("18 dollars", "answer_label")),
        ("Answer: \\(2\\sqrt{3}\\)", "auto", ("2\\sqrt{3}", "answer_label")),
        ("She has 3 apples, then 4.5 more", "auto", ("4.5", "last_number")),
        ("we get −12 in total", "auto", ("-12", "last_number")),
        ("The answer is ４２.", "auto", ("42", "answer_phrase")),
        ("The answer is ٧", "auto", ("7", "answer_phrase")),
        ("<think>maybe \\boxed{5}</think>The answer is 6.", "auto", ("6", "answer_phrase")),
        ("#### 9\nbut \\boxed{8}", "hash", ("9", "hash")),
        ("#### 9\nbut \\boxed{8}", "boxed", ("8", "boxed")),
        ("#### 9 but 7", "last_number", ("7", "last_number")),
        ("the answer is 5", "boxed", None),
        ("The answer is therefore 42.", "auto", ("42", "answer_phrase")),
        ("The answer is: Janet has 18 dollars left", "auto", ("18", "answer_phrase")),
        (
            "Final Answer: The final answer is $\\frac34$. I hope it is correct.",
            "auto",
            ("\\frac34", "answer_phrase"),
        ),
        ("So the answer is $\\frac{3}{4}$ of the pie.", "auto", ("\\frac{3}{4}", "answer_phrase")),
        ("The answer is 18 apples.", "auto", ("18", "answer_phrase")),
        ("The answer is 18 dollars.", "auto", ("18 dollars", "answer_phrase")),
        ("The answer is 3 million.", "auto", ("3 million", "answer_phrase")),
        ("The answer is clearly 3 million.", "auto", ("3 million", "answer_phrase")),
        ("The answer is 2 pi", "auto", ("2 pi", "answer_phrase")),
        ("The answer is \\sin(x) + 2", "auto", ("\\sin(x) + 2", "answer_phrase")),
        ("The answer is Monday.", "auto", ("Monday", "answer_phrase")),
        ("The answer is 7. Later: the final answer is 8.", "auto", ("8", "answer_phrase")),
        ("#### The total is 72", "auto", ("72", "hash")),
        ("Answer: she needs 5 more boxes", "auto", ("5", "answer_label")),
        ("no numbers at all", "auto", None),
        ("", "auto", None),
    ],
)
def test_extract_answer_finds_the_final_answer(
    text: str, mode: str, expected: tuple[str, str] | None
) -> None:
    assert extract_answer(text, mode) == expected


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ("1,234,567", Fraction(1234567)),
        ("$18", Fraction(18)),
        ("\\$18.50", Fraction(37, 2)),
        ("-0.25", Fraction(-1, 4)),
        ("25%", Fraction(25)),
        ("25\\%", Fraction(25)),
        ("3/4", Fraction(3, 4)),
        ("\\frac{3}{4}", Fraction(3, 4)),
        ("-\\dfrac{1}{2}", Fraction(-1, 2)),
        ("12 km/h", Fraction(12)),
        ("5\\text{ cm}", Fraction(5)),
        ("1{,}000", Fraction(1000)),
        ("x = 4", Fraction(4)),
        ("€7", Fraction(7)),
        ("3 million", Fraction(3_000_000)),
        ("2.5 billion dollars", Fraction(2_500_000_000)),
        ("3\\text{ million}", Fraction(3_000_000)),
        ("60 miles per hour", Fraction(60)),
        ("5 square units", Fraction(5)),
        ("7 lbs.", Fraction(7)),
        ("2 pi", None),
        ("2\\pi", None),
        ("2i", None),
        ("2 m", None),
        ("18 apples", None),
        ("4 x", None),
        ("2\\sqrt{3}", None),
        ("1/0", None),
        ("3 and 4", None),
        ("x+1", None),
    ],
)
def test_parse_number_reads_plain_numbers_only(answer: str, value: Fraction | None) -> None:
    assert parse_number(answer) == value


@pytest.mark.parametrize(
    ("reference", "answer"),
    [
        ("Step one <<2*3=6>>6\n#### 6", "6"),
        ("Total is 1,200.\n#### 1,200", "1,200"),
        ("So $\\frac{a}{b} = \\boxed{\\frac{2}{3}}$.", "\\frac{2}{3}"),
        (42, "42"),
        ("\\left(2, \\frac{\\pi}{3}\\right)", "\\left(2, \\frac{\\pi}{3}\\right)"),
    ],
)
def test_reference_answer_takes_the_final_answer_of_a_solution(reference: object, answer: str) -> None:
    assert reference_answer(reference) == answer


def test_the_math_scorer_is_registered_by_name() -> None:
    assert scorers.get("math") is MathScorer


@pytest.mark.parametrize(
    ("reference", "output"),
    [
        ("#### 1200", "The answer is 1,200."),
        ("#### 18", "She pays $18.00 in total.\n#### $18"),
        ("#### 0.25", "The answer is \\boxed{\\frac{1}{4}}"),
        ("#### 42", "The answer is ٤٢"),
        ("#### -5", "The answer is −5."),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "$\\boxed{\\frac{1}{2}\\sqrt{3}}$"),
        ("\\boxed{8\\sqrt{2}}", "The answer is $\\sqrt{128}$."),
        ("\\boxed{x^2 - x - 6}", "\\boxed{(x+2)(x-3)}"),
        ("\\boxed{25\\pi}", "Answer: $25 \\pi$"),
        ("\\boxed{\\left(2, \\frac{\\pi}{3}\\right)}", "\\boxed{(2,\\pi/3)}"),
        ("\\boxed{\\frac{3}{4}}", "Final Answer: The final answer is $\\frac34$. I hope it is correct."),
        ("#### 42", "The answer is therefore 42."),
        ("#### 18", "The answer is: Janet has 18 dollars left"),
        ("#### 3000000", "The answer is 3 million."),
        ("#### 3,000,000", "The answer is $3\\text{ million}$."),
        ("\\boxed{2\\pi}", "The answer is $2\\pi$."),
    ],
)
def test_equivalent_answers_are_correct(scorer: MathScorer, reference: str, output: str) -> None:
    score = scorer.score(sample(reference), output)
    assert (score.status, score.value, score.metrics["strict"]) == ("correct", 1.0, 1.0), score.details


@pytest.mark.parametrize(
    ("reference", "output"),
    [
        ("#### 1200", "The answer is 1,201."),
        ("#### 12", "The answer is 21"),
        ("\\boxed{\\frac{17}{12}}", "\\boxed{\\frac{12}{17}}"),
        ("\\boxed{2 + \\sqrt{3}}", "\\boxed{2 - \\sqrt{3}}"),
        ("\\boxed{x^2 - x - 6}", "\\boxed{x^2 + x - 6}"),
        ("#### 2", "The answer is 2 pi"),
        ("#### 2", "The answer is $2\\pi$."),
        ("#### 2", "The answer is 2i"),
        ("#### 3", "The answer is 3 million"),
        ("#### 43", "The answer is therefore 42."),
        ("\\boxed{\\frac{3}{4}}", "Final Answer: The final answer is $\\frac43$. I hope it is correct."),
    ],
)
def test_different_answers_are_wrong(scorer: MathScorer, reference: str, output: str) -> None:
    score = scorer.score(sample(reference), output)
    assert (score.status, score.value, score.metrics["lenient"]) == ("wrong", 0.0, 0.0)


def test_strict_needs_a_marker_while_lenient_accepts_the_last_number(scorer: MathScorer) -> None:
    score = scorer.score(sample("#### 30"), "Tom is 3 * 10 = 30 years old")
    assert score.status == "correct"
    assert (score.value, score.metrics["lenient"], score.metrics["strict"]) == (1.0, 1.0, 0.0)
    assert score.details["method"] == "last_number"


@pytest.mark.parametrize("output", ["", "   ", "I do not know.", "<think>it is 5", "\\boxed{"])
def test_outputs_without_an_answer_are_unparsed(scorer: MathScorer, output: str) -> None:
    score = scorer.score(sample("#### 5"), output)
    assert (score.status, score.value, score.metrics["no_answer"]) == ("unparsed", 0.0, 1.0)


def test_a_huge_output_is_scored_by_its_final_answer(scorer: MathScorer) -> None:
    output = "Let me think. " * 80_000 + "1 2 3 " * 20_000 + "\nThe answer is 17."
    assert scorer.score(sample("#### 17"), output).status == "correct"


@pytest.mark.parametrize(
    "output",
    [
        "the answer is " * 100_000 + "17",
        "The answer is \\(" * 100_000 + " so 17",
        "The answer is clearly " + "\\boxed{" * 100_000 + "17",
        "The answer is clearly " + "$ " * 100_000 + "17",
    ],
)
def test_hostile_repetitions_of_markers_are_scored_in_linear_time(scorer: MathScorer, output: str) -> None:
    # No clock here: at 100k repetitions a quadratic extractor runs for hours, which the suite's hang
    # guard (pytest-timeout) catches; benchmarks/ are where speed is measured.
    score = scorer.score(sample("#### 17"), output)
    assert (score.status, score.details["extracted"]) == ("correct", "17")


def test_an_overlong_answer_is_wrong_without_reaching_sympy(scorer: MathScorer) -> None:
    score = scorer.score(sample("\\boxed{1}"), "\\boxed{" + "x+" * 5000 + "1}")
    assert score.status == "wrong"
    assert "longer than" in score.details["equivalence"]


def test_a_hanging_expression_becomes_an_error_and_the_pool_recovers() -> None:
    # The limit must outlast an honest check on a busy host (1 s did not); the hanging one still reaches it.
    s = MathScorer(timeout_s=20, workers=1)
    try:
        scores = s.score_batch(
            [
                (sample("\\boxed{2}"), "\\boxed{9^{9^{9^{9}}}}"),  # sympy evaluates the tower: never returns
                (sample("\\boxed{x+1}"), "\\boxed{1+x}"),
            ]
        )
        assert scores[0].status == "error"
        assert "timed out after 20 s" in scores[0].details["error"]
        assert scores[1].status == "correct"
        assert s.score(sample("\\boxed{\\frac{1}{2}}"), "\\boxed{\\frac{2}{4}}").status == "correct"
    finally:
        s.close()


def test_a_hung_verifier_left_behind_terminates_itself() -> None:
    worker = MathWorker()  # as if the scoring process had died and nobody will kill the worker
    worker.wait_ready()
    worker.stdin.write(json.dumps([0, "2", "9^{9^{9^{9}}}", 1.0]) + "\n")  # backstop alarm after 1 s
    worker.stdin.flush()
    assert worker.proc.wait(timeout=1800) == -signal.SIGALRM
    worker.kill()


def test_score_batch_keeps_order_and_mixes_fast_and_pooled_items(scorer: MathScorer) -> None:
    items = [
        (sample("#### 3"), "The answer is 3"),
        (sample("\\boxed{\\sqrt{2}}"), "\\boxed{2^{1/2}}"),
        (sample("#### 4"), "nothing"),
        (sample("\\boxed{\\pi}"), "\\boxed{3}"),
        (sample(None), "The answer is 1"),
    ]
    statuses = [s.status for s in scorer.score_batch(items)]
    assert statuses == ["correct", "correct", "unparsed", "wrong", "error"]


def test_scoring_works_from_worker_threads(scorer: MathScorer) -> None:
    results: list[str] = []

    def work() -> None:
        results.append(scorer.score(sample("\\boxed{\\frac{1}{3}}"), "\\boxed{\\dfrac{2}{6}}").status)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["correct"] * 3


@pytest.mark.parametrize(
    "options",
    [{"extract": "regex"}, {"timeout_s": 0}, {"timeout_s": "5"}, {"workers": 0}, {"workers": True}, {"k": 1}],
)
def test_bad_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(TypeError):
        MathScorer(**options)  # type: ignore[arg-type]


def test_last_number_mode_reports_no_strict_metric(scorer: MathScorer) -> None:
    s = MathScorer(extract="last_number")
    score = s.score(sample("#### 7"), "#### 7 apples")
    assert score.status == "correct" and "strict" not in score.metrics
    s.close()


@pytest.mark.parametrize("task", ["gsm8k", "math"])
def test_reference_output_scores_full_marks_on_every_built_in_record(scorer: MathScorer, task: str) -> None:
    samples = suite_samples(task)
    scores = scorer.score_batch([(s, scorer.reference_output(s)) for s in samples])
    assert [(s.id, sc.status) for s, sc in zip(samples, scores, strict=True)] == [
        (s.id, "correct") for s in samples
    ]
    assert all(sc.metrics["strict"] == 1.0 for sc in scores)


def test_gsm8k_mini_worked_solutions_are_arithmetically_right() -> None:
    samples = suite_samples("gsm8k")
    assert len(samples) >= 20
    for s in samples:
        steps = re.findall(r"<<([^=<>]+)=([^<>]+)>>", s.reference)
        assert steps, s.id
        for expr, result in steps:
            assert re.fullmatch(r"[\d.+\-*/() ]+", expr), expr
            assert abs(eval(expr) - float(result)) < 1e-9, (s.id, expr, result)  # only digits and operators
        assert parse_number(reference_answer(s.reference)) == Fraction(steps[-1][1]), s.id


def test_math_mini_records_are_complete_and_boxed() -> None:
    samples = suite_samples("math")
    assert len(samples) >= 15
    for s in samples:
        assert set(s.fields) == {"problem", "solution", "level", "type"}
        assert re.fullmatch(r"Level [1-5]", s.fields["level"])
        assert len(re.findall(r"\\boxed\{", s.fields["solution"])) == 1, s.id
