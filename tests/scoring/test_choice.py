"""Multiple choice: question layouts, option picks (raw and length-normalised), circular, strict letters."""

from __future__ import annotations

import math

import pytest

from llmbench.data.base import Sample
from llmbench.data.choice_questions import as_question, question_sample
from llmbench.errors import DataError
from llmbench.scoring.choice import ChoiceScorer, Rotation


def rotation(
    logprobs: list[float], answer: int, chars: list[int], tokens: list[int] | None = None
) -> Rotation:
    tokens = tokens or [1] * len(logprobs)
    return Rotation(answer, logprobs, tokens, chars, [f"o{i}" for i in range(len(logprobs))])


@pytest.mark.parametrize(
    "fields",
    [
        {"question": "Q?", "choices": ["w", "r", "x", "y"], "answer": 1, "subject": "s"},  # MMLU
        {"question": "Q?", "A": "w", "B": "r", "C": "x", "D": "y", "answer": "B", "subject": "s"},  # C-Eval
        {"Question": "Q?", "A": "w", "B": "r", "C": "x", "D": "y", "Answer": "B", "subject": "s"},  # CMMLU
        {
            "question": "Q?",
            "choices": {"text": ["w", "r", "x", "y"], "label": ["1", "2", "3", "4"]},
            "answerKey": "2",
            "subject": "s",
        },  # ARC
    ],
)
def test_every_public_layout_reads_as_one_question(fields: dict[str, object]) -> None:
    q = as_question(fields, "t")
    assert (q.text, q.options, q.answer, q.subject) == ("Q?", ("w", "r", "x", "y"), 1, "s")


def test_an_answer_naming_no_option_is_a_data_error() -> None:
    with pytest.raises(DataError, match="names none"):
        as_question({"question": "Q?", "choices": ["a", "b"], "answer": 5}, "t")


def test_rotation_moves_the_answer_with_its_text() -> None:
    q = as_question({"question": "Q?", "choices": ["a", "b", "c"], "answer": 1}, "t")
    for shift in range(3):
        r = q.rotated(shift)
        assert r.options[r.answer] == "b"


def test_length_normalisation_changes_the_pick_where_it_should() -> None:
    # The right option is long: more characters, so a lower summed log-probability, but more likely per character.
    r = rotation([-3.0, -12.0], answer=1, chars=[2, 40], tokens=[1, 10])
    assert ChoiceScorer().score_rotations([r]).metrics == pytest.approx(
        {"acc": 0.0, "acc_norm_char": 1.0, "acc_norm_token": 1.0, "prob_correct": 1 / (1 + math.exp(9))}
    )
    assert ChoiceScorer(pick="char").score_rotations([r]).status == "correct"
    assert ChoiceScorer(pick="raw").score_rotations([r]).status == "wrong"


def test_circular_counts_a_question_only_if_right_in_every_rotation() -> None:
    right = rotation([-1.0, -5.0], answer=0, chars=[1, 1])
    wrong = rotation([-1.0, -5.0], answer=1, chars=[1, 1])
    score = ChoiceScorer().score_rotations([right, wrong])
    assert score.value == 0.0 and score.details["rotations_right"] == 1
    assert ChoiceScorer().score_rotations([right, right]).value == 1.0


def sample() -> Sample:
    return question_sample(Sample("1", {"question": "Q?", "choices": ["a", "b", "c"], "answer": 2}), "t")


@pytest.mark.parametrize(
    "output", ["C", " (C) ", "C.", "Answer: C", "The answer is C", "答案：C", "答案是 C"]
)
def test_a_lone_letter_is_read_back(output: str) -> None:
    assert ChoiceScorer().score(sample(), output).status == "correct"


@pytest.mark.parametrize("output", ["", "C or B", "I think C", "Cats", "D", "c is right"])
def test_anything_but_a_lone_option_letter_is_unparsed(output: str) -> None:
    assert ChoiceScorer().score(sample(), output).status == "unparsed"


def test_a_wrong_letter_is_wrong_and_the_reference_is_right() -> None:
    scorer = ChoiceScorer()
    assert scorer.score(sample(), "A").status == "wrong"
    assert scorer.score(sample(), scorer.reference_output(sample())).status == "correct"


def test_an_unknown_pick_is_refused() -> None:
    with pytest.raises(TypeError, match="pick"):
        ChoiceScorer(pick="best")


def test_a_question_asked_in_several_rotations_counts_only_if_right_in_all() -> None:
    from llmbench.scoring.base import Score, ScoredOutput

    def out(qid: str, k: int, right: bool) -> ScoredOutput:
        value = float(right)
        return ScoredOutput(qid, k, Score(value, "correct" if right else "wrong", {"acc": value}))

    outputs = [out("q1", 0, True), out("q1", 1, False), out("q2", 0, True), out("q2", 1, True)]
    per_question = ChoiceScorer().aggregate(outputs)
    assert per_question["accuracy"] == [0.0, 1.0] and per_question["acc"] == [0.0, 1.0]
