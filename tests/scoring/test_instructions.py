"""The instruction scorer: each checker, strict and loose judging, malformed kwargs, hostile outputs, built-in data."""

from __future__ import annotations

from typing import Any

import pytest

from llmbench.config.suite import load_suite
from llmbench.data.base import DataContext, Sample
from llmbench.data.readers import load_samples
from llmbench.errors import DataError, UserInputError
from llmbench.scoring import scorers
from llmbench.scoring.base import ScoredOutput
from llmbench.scoring.instructions import InstructionScorer, build_checker, checkers, count_sentences

BULLETS3 = "* one\n* two\n* three"
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("keywords:existence", {"keywords": ["Grey", "collar"]}, "A grey cat with a collar.", "A grey cat."),
    ("keywords:frequency", {"keyword": "run", "frequency": 2, "relation": "at least"},
     "I run. You run.", "I run. Running is fun."),
    ("keywords:forbidden_words", {"forbidden_words": ["coffee"]}, "Coffeehouse tea only.", "I like COFFEE."),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": "at least"},
     "Zebras zigzag.", "Zebras run."),
    ("language:response_language", {"language": "fr"},
     "Le chat dort sur le canapé pendant que la pluie tombe.", "The cat sleeps on the sofa while the rain falls."),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"},
     "One. Two, e.g. this.", "One. Two. Three."),
    ("length_constraints:number_words", {"num_words": 5, "relation": "at most"},
     "Don't stop the well-known music.", "One two three four five six."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "First.\n***\nSecond.", "First.\n***\n***\nSecond."),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "today"},
     "Long ago.\n\n**Today**, we drink tea.", "Long ago.\n\nNow today we drink tea."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "[name] at [address]", "[name] at [ ]"),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\n\np. s. bye", "Hi. See the P.S. below."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 3}, "Intro\n" + BULLETS3 + "\n***\n**Bold** end", BULLETS3 + "\n* four"),
    ("detectable_format:constrained_response", {}, "Because... My answer is no.", "My answer is probably no."),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "*one* and **two**", "*one* and ** **"),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     "## SECTION 1\na\n**Section 2**\nb", "Section 1\nsee section 2 below"),
    ("detectable_format:json_format", {}, '```json\n{"a": [1, 2]}\n```', 'Here: {"a": 1}'),
    ("detectable_format:title", {}, "<<Autumn>>\nLeaves fall.", "<< >>\nLeaves fall."),
    ("combination:two_responses", {}, "A.\n******\nB.", "A.\n******\nA."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Name a fruit."}, "name a fruit. Apple.", "Apple. Name a fruit."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Done. Any other questions? ", "Any other questions? Bye."),
    ("startend:quotation", {}, "\u201cHello there.\u201d", '"Hello" there.'),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "less than"},
     "Only ONE loud word.", "TWO LOUD words."),
    ("change_case:english_capital", {}, "THIS IS A SHOUTED ENGLISH SENTENCE.", "THIS IS MOSTLY Shouted."),
    ("change_case:english_lowercase", {}, "this sentence is written in english and in lower case.",
     "ce texte est écrit en français et en minuscules."),
    ("punctuation:no_comma", {}, "No commas here.", "Une virgule\u3001ici."),
]  # fmt: skip


def sample(ids: list[str], kwargs: list[dict[str, Any]] | None, sid: str = "s") -> Sample:
    fields: dict[str, Any] = {"prompt": "p", "instruction_ids": ids, "kwargs": kwargs}
    return Sample(id=sid, fields=fields)


def test_every_registered_checker_has_a_case_and_there_are_at_least_fifteen() -> None:
    assert sorted(c[0] for c in CASES) == checkers.names()
    assert len(checkers.names()) >= 15


@pytest.mark.parametrize(("iid", "kwargs", "follows", "violates"), CASES, ids=[c[0] for c in CASES])
def test_each_checker_accepts_a_following_output_and_rejects_a_violating_one(
    iid: str, kwargs: dict[str, Any], follows: str, violates: str
) -> None:
    check = build_checker(iid, kwargs)
    assert check.check(follows)
    assert not check.check(violates)


@pytest.mark.parametrize(
    ("iid", "kwargs", "message"),
    [
        ("length_constraints:number_words", {"num_words": "many", "relation": "at least"}, "num_words"),
        ("length_constraints:number_words", {"num_words": -1, "relation": "at least"}, "non-negative"),
        ("length_constraints:number_words", {"num_words": 5, "relation": "roughly"}, "relation"),
        ("length_constraints:number_words", {"num_words": 5}, "missing argument(s) relation"),
        ("punctuation:no_comma", {"num_words": 5}, "unknown argument(s) num_words"),
        ("keywords:existence", {"keywords": []}, "non-empty list"),
        (
            "keywords:letter_frequency",
            {"letter": "ab", "let_frequency": 1, "let_relation": "at least"},
            "one letter",
        ),
        ("language:response_language", {"language": "klingon"}, "unsupported language code"),
    ],
)
def test_malformed_kwargs_raise_a_data_error_naming_the_argument(
    iid: str, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_checker(iid, kwargs)


def test_an_unknown_instruction_id_suggests_the_closest_one() -> None:
    with pytest.raises(UserInputError, match="did you mean 'punctuation:no_comma'"):
        build_checker("punctuation:no_commas", {})


def test_a_record_whose_kwargs_do_not_pair_with_its_ids_is_an_error_score_with_the_reason() -> None:
    scorer = InstructionScorer()
    [score] = scorer.score_batch([(sample(["punctuation:no_comma", "detectable_format:title"], [{}]), "x")])
    assert score.status == "error" and "one per instruction" in score.details["error"]


def test_hugging_face_style_kwargs_with_null_keys_load_unchanged() -> None:
    nulls = {"num_words": None, "relation": None, "keywords": None, "language": None, "num_bullets": None}
    kwargs = [{**nulls, "num_words": 3.0, "relation": "less than"}, dict(nulls)]
    score = InstructionScorer().score(
        sample(["length_constraints:number_words", "punctuation:no_comma"], kwargs), "Two words"
    )
    assert (score.value, score.status) == (1.0, "correct")


def test_a_failed_instruction_is_named_and_the_share_followed_is_reported() -> None:
    s = sample(["punctuation:no_comma", "detectable_format:title"], [{}, {}])
    score = InstructionScorer().score(s, "<<Title>>\nOne, two.")
    assert (score.value, score.status) == (0.0, "wrong")
    assert score.details["failed_strict"] == ["punctuation:no_comma"]
    assert score.metrics["instruction_strict"] == 0.5


def test_loose_judging_forgives_an_intro_line_and_markdown_asterisks_but_strict_does_not() -> None:
    s = sample(["detectable_format:json_format", "startend:end_checker"], [{}, {"end_phrase": "Bye."}])
    output = 'Sure, here it is:\n{"end": "Bye."}\n**Bye.**'
    score = InstructionScorer().score(s, output)
    assert score.details["failed_strict"] == ["detectable_format:json_format", "startend:end_checker"]
    assert (score.value, score.metrics["prompt_loose"], score.metrics["instruction_loose"]) == (0.0, 1.0, 1.0)
    assert score.details["failed_loose"] == []


def test_instruction_level_accuracy_counts_every_instruction_once_across_samples() -> None:
    scorer = InstructionScorer()
    one = scorer.score(sample(["punctuation:no_comma"], [{}]), "fine")
    three = scorer.score(sample(["punctuation:no_comma"] * 3, [{}] * 3), "a, b")
    three.metrics["instruction_strict"] = 1 / 3  # one of three followed
    outs = [ScoredOutput("a", 0, one), ScoredOutput("b", 0, three)]
    agg = scorer.aggregate(outs)
    assert agg["instruction_strict"] == [1.0, 1.0, 0.0, 0.0]
    assert agg["prompt_strict"] == [1.0, 0.0] and "instructions" not in agg


def test_an_empty_output_is_unparsed_and_follows_nothing() -> None:
    score = InstructionScorer().score(sample(["punctuation:no_comma"], [{}]), "  \n ")
    assert (score.value, score.status, score.metrics["prompt_loose"], score.metrics["instruction_loose"]) == (
        0.0, "unparsed", 0.0, 0.0,
    )  # fmt: skip


def test_hostile_outputs_are_judged_without_crashing() -> None:
    huge = "word " * 200_000
    assert not build_checker(
        "length_constraints:number_words", {"num_words": 100, "relation": "less than"}
    ).check(huge)
    assert build_checker("punctuation:no_comma", {}).check(huge)
    assert not build_checker("language:response_language", {"language": "en"}).check("😀🎉🔥" * 50)
    assert not build_checker("detectable_format:json_format", {}).check("[" * 100_000)
    arabic = "\u200fالقطة تنام على الأريكة بينما يهطل المطر في الخارج."
    assert build_checker("language:response_language", {"language": "ar"}).check(arabic)
    assert not build_checker("change_case:english_lowercase", {}).check(arabic)
    mixed = "The cat 猫 die Katze кошка القطة sleeps."
    assert build_checker("keywords:existence", {"keywords": ["猫", "кошка"]}).check(mixed)
    assert not build_checker("keywords:existence", {"keywords": ["кош"]}).check(mixed)
    shouted = "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG AND RUNS AWAY. " * 20_000
    score = InstructionScorer().score(sample(["change_case:english_capital"], [{}]), shouted)
    assert score.status == "correct"


def test_sentences_end_at_terminal_punctuation_and_line_breaks_but_not_abbreviations() -> None:
    assert count_sentences("Dr. Smith came, e.g. at 3.5 pm. He left!\nThen rain") == 3
    assert count_sentences("猫が寝ている。犬も寝ている。") == 2


def builtin_samples() -> list[Sample]:
    suite = load_suite("instruction")
    task = suite.config.tasks[0]
    return load_samples(task.dataset, DataContext(suite_dir=suite.directory))


def test_the_builtin_set_covers_every_checker() -> None:
    samples = builtin_samples()
    assert len(samples) >= 20
    assert {i for s in samples for i in s.fields["instruction_ids"]} == set(checkers.names())


def test_reference_outputs_follow_every_instruction_of_every_builtin_record() -> None:
    scorer = scorers.get("instructions")()
    for s in builtin_samples():
        score = scorer.score(s, scorer.reference_output(s))
        assert (s.id, score.value, score.details["failed_loose"]) == (s.id, 1.0, [])
        assert score.metrics["instruction_strict"] == score.metrics["prompt_loose"] == 1.0


def test_a_record_without_a_reference_gets_an_empty_reference_output() -> None:
    assert InstructionScorer().reference_output(sample(["punctuation:no_comma"], [{}])) == ""
