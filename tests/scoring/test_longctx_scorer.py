"""The needle scorer: recall of planted values, partial credit, hostile outputs, reasoning blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench.data.base import Sample
from llmbench.scoring.base import ScoredOutput
from llmbench.scoring.longctx import NeedleScorer


def single(value: str = "2205227") -> Sample:
    return Sample(
        id="needle-L4096-D0.50-i0", fields={}, reference=value, metadata={"length": 4096, "depth": 0.5}
    )


def multi(values: list[str]) -> Sample:
    return Sample(id="needle-multi", fields={}, reference=values, metadata={"n_needles": len(values)})


@pytest.mark.parametrize(
    "output",
    ["2205227", "The special magic number for Lisbon is 2205227.", "**2,205,227**", "2205227\n2205227"],
)
def test_the_needle_value_in_any_usual_form_is_correct(output: str) -> None:
    score = NeedleScorer().score(single(), output)
    assert (score.status, score.value, score.metrics["recall"]) == ("correct", 1.0, 1.0)


@pytest.mark.parametrize("output", ["2205228", "The number is 1234567.", "22052270", "92205227"])
def test_another_number_or_a_longer_one_containing_it_is_wrong(output: str) -> None:
    score = NeedleScorer().score(single(), output)
    assert (score.status, score.value, score.metrics["recall"]) == ("wrong", 0.0, 0.0)
    assert score.details["missing"] == ["2205227"]


@pytest.mark.parametrize("output", ["", "   \n", "<think>it is 2205227</think>", "<think>2205227 maybe"])
def test_empty_answers_are_unparsed(output: str) -> None:
    score = NeedleScorer().score(single(), output)
    assert (score.status, score.value) == ("unparsed", 0.0)


def test_an_answer_without_any_number_is_unparsed() -> None:
    score = NeedleScorer().score(single(), "I could not find the special magic number in the text.")
    assert score.status == "unparsed" and score.details["reason"] == "no number in the answer"


def test_reasoning_is_removed_before_scoring() -> None:
    score = NeedleScorer().score(single(), "<think>1111111? 3333333? no.</think>The number is 2205227.")
    assert score.status == "correct"
    wrong = NeedleScorer().score(single(), "<think>It must be 2205227.</think>The number is 9999999.")
    assert wrong.status == "wrong"


def test_multi_needle_partial_recovery_scores_recall_but_not_accuracy() -> None:
    values = ["4015909", "3637832", "4046511"]
    score = NeedleScorer().score(multi(values), "Nairobi: 4015909, Hanoi: 3637832, Kathmandu: 1000000")
    assert (score.status, score.value) == ("wrong", 0.0)
    assert score.metrics["recall"] == pytest.approx(2 / 3)
    assert score.details["found"] == ["4015909", "3637832"] and score.details["missing"] == ["4046511"]
    full = NeedleScorer().score(multi(values), "4046511; 3637832; 4015909")
    assert (full.status, full.value, full.metrics["recall"]) == ("correct", 1.0, 1.0)


def test_listing_many_candidate_numbers_never_scores_correct() -> None:
    spam = " ".join(str(n) for n in range(2205200, 2205260))  # holds the right value among 60
    score = NeedleScorer().score(single(), spam)
    assert (score.status, score.value, score.metrics["recall"]) == ("wrong", 0.0, 0.0)
    assert "candidate numbers" in score.details["reason"]


def test_up_to_two_extra_numbers_are_tolerated_and_the_limit_is_an_option() -> None:
    three = "It is 2205227 (not 2205228 or 2205229)."
    assert NeedleScorer().score(single(), three).status == "correct"
    four = "It is 2205227 (not 2205228, 2205229 or 2205230)."
    assert NeedleScorer().score(single(), four).status == "wrong"
    assert NeedleScorer(max_extra_numbers=0).score(single(), three).status == "wrong"
    short_numbers = (
        "Found 2205227 at 50% depth of 4096 tokens, 12 paragraphs in."  # other widths do not count
    )
    assert NeedleScorer(max_extra_numbers=0).score(single(), short_numbers).status == "correct"


def test_multi_needle_allowance_grows_with_the_number_of_values() -> None:
    values = ["4015909", "3637832", "4046511"]
    five = "4015909 3637832 4046511 1111111 2222222"
    assert NeedleScorer().score(multi(values), five).status == "correct"
    assert NeedleScorer().score(multi(values), five + " 3333333").status == "wrong"


def test_a_huge_output_is_scored_on_its_content() -> None:
    filler = "The lighthouse keeper climbs the stairs every evening. " * 20_000  # about 1 MB
    assert NeedleScorer().score(single(), filler + "The number is 2205227.").status == "correct"
    assert NeedleScorer().score(single(), filler).status == "unparsed"


@pytest.mark.parametrize(
    ("answer", "output", "status"),
    [
        ("Marigold Bell", "It was the schooner Marigold Bell.", "correct"),
        ("Marigold Bell", "the marigold-bell", "correct"),
        ("Marigold Bell", "The Marigold.", "wrong"),
        ("Astley", "In Theodora Astley's workshop.", "correct"),
        ("Astley", "In the Astleyford workshop.", "wrong"),
        ("58", "There were 58 technicians, up from 31.", "correct"),
        ("58", "There were 31 technicians.", "wrong"),
        ("58", "Many technicians.", "unparsed"),
    ],
)
def test_document_answers_match_whole_words_or_whole_numbers(answer: str, output: str, status: str) -> None:
    assert NeedleScorer().score(single(answer), output).status == status


@pytest.mark.parametrize("reference", ["2205227", ["4015909", "3637832", "4046511"], "Marigold Bell", "23"])
def test_reference_output_scores_full_marks(reference: str | list[str]) -> None:
    scorer = NeedleScorer()
    sample = Sample(id="s", fields={}, reference=reference)
    score = scorer.score(sample, scorer.reference_output(sample))
    assert (score.status, score.value, score.metrics["recall"]) == ("correct", 1.0, 1.0)


def test_a_sample_without_reference_becomes_an_error_score() -> None:
    (score,) = NeedleScorer().score_batch([(Sample(id="s", fields={}), "2205227")])
    assert score.status == "error" and "no reference" in score.details["error"]


def test_unknown_or_invalid_options_are_refused() -> None:
    with pytest.raises(TypeError, match="unknown option"):
        NeedleScorer(max_numbers=3)
    with pytest.raises(TypeError, match="max_extra_numbers"):
        NeedleScorer(max_extra_numbers=-1)


def test_aggregate_reports_accuracy_and_recall_per_sample() -> None:
    scorer = NeedleScorer()
    values = ["4015909", "3637832"]
    outputs = [
        ScoredOutput("a", 0, scorer.score(multi(values), "4015909 and 3637832")),
        ScoredOutput("b", 1, scorer.score(multi(values), "4015909 only")),
    ]
    assert scorer.aggregate(outputs) == {"accuracy": [1.0, 0.0], "recall": [1.0, 0.5]}


def test_generated_needle_samples_score_their_reference_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoTokenizer

    from llmbench.data.base import DataContext
    from llmbench.data.longctx_prompts import needle
    from llmbench.testing.tinymodel import ensure_tiny_model

    tok = AutoTokenizer.from_pretrained(ensure_tiny_model())
    monkeypatch.setenv("LLMBENCH_CACHE", str(tmp_path))  # after the model: only the data cache moves
    suites = Path(__file__).resolve().parents[2] / "suites"
    samples = needle({"lengths": [1024], "needles_per_prompt": 2}, DataContext(suites, tokenizer=tok))
    scorer = NeedleScorer()
    for s in samples:
        assert scorer.score(s, scorer.reference_output(s)).status == "correct"
        assert scorer.score(s, s.fields["question"]).status == "unparsed"
