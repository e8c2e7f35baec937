"""The multilingual scorer: language identification, answer matching, short answers, hostile outputs, built-in data."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from llmbench.config.suite import load_suite
from llmbench.data.base import DataContext, Sample
from llmbench.data.readers import load_samples
from llmbench.errors import DataError
from llmbench.scoring import scorers
from llmbench.scoring.language import (
    LanguageScorer,
    find_answer,
    language_verdict,
    matches_language,
    normalise_text,
)

SENTENCES = {
    "zh": "今天的天气很好，我们一起去公园散步吧。",
    "en": "The weather is lovely today, so let us walk to the park together.",
    "fr": "Il fait très beau aujourd'hui, allons nous promener au parc ensemble.",
    "es": "Hoy hace muy buen tiempo, vamos a pasear juntos por el parque.",
    "de": "Heute ist das Wetter sehr schön, lass uns zusammen im Park spazieren gehen.",
    "ja": "今日はとても良い天気なので、一緒に公園を散歩しましょう。",
    "ru": "Сегодня прекрасная погода, давайте вместе погуляем в парке.",
    "ar": "الطقس جميل جدا اليوم، هيا نتمشى معا في الحديقة.",
}


def sample(language: str, answers: list[str], sid: str = "q") -> Sample:
    fields: dict[str, Any] = {"question": "?", "language": language, "answers": answers}
    return Sample(id=sid, fields=fields, reference=answers)


@pytest.mark.parametrize("code", sorted(SENTENCES))
def test_each_language_in_play_is_identified_the_same_way_every_time(code: str) -> None:
    verdicts = [language_verdict(SENTENCES[code], code) for _ in range(3)]
    assert verdicts[0][0] is True
    assert verdicts == [verdicts[0]] * 3
    other = "fr" if code == "en" else "en"
    assert language_verdict(SENTENCES[code], other)[0] is False


@pytest.mark.parametrize("text", ["", "42 + 7 = 49", "😀🎉🔥", "   \n\t"])
def test_text_without_letters_is_in_any_language(text: str) -> None:
    assert language_verdict(text, "en") == (True, "no letters")
    assert language_verdict(text, "zh") == (True, "no letters")


def test_a_language_lingua_lacks_is_judged_by_its_script() -> None:
    assert matches_language("ಬೆಂಗಳೂರು ಕರ್ನಾಟಕದ ರಾಜಧಾನಿ ನಗರ", "kn")
    assert not matches_language("Bengaluru is the capital of Karnataka", "kn")


@pytest.mark.parametrize(
    ("output", "answer"),
    [("答案是７。", "7"), ("La réponse est ٧.", "7"), ("TOKYO!", "tokyo"), ("Il y a 1 000 mètres.", "1000"),
     ("It is 1,000 metres.", "1000"), ("La capital es Berlin.", "Berlín"), ("東京です", "東京")],
)  # fmt: skip
def test_answers_match_across_case_width_accents_scripts_of_digits_and_digit_grouping(
    output: str, answer: str
) -> None:
    assert find_answer(output, [answer]) == answer


@pytest.mark.parametrize(("output", "answer"), [("It is 14.", "4"), ("It is 4.5.", "45"), ("Romeo", "Rome")])
def test_an_answer_inside_a_longer_number_or_word_does_not_match(output: str, answer: str) -> None:
    assert find_answer(output, [answer]) is None


def test_normalisation_drops_punctuation_and_folds_case_and_width() -> None:
    assert normalise_text("  ＨＥＬＬＯ, Wörld!  ") == "hello world"


def test_a_right_answer_in_the_wrong_language_is_correct_but_not_accurate() -> None:
    score = LanguageScorer().score(
        sample("fr", ["Rome", "Roma"]), "The capital of Italy is the city of Rome."
    )
    assert (score.value, score.status) == (0.0, "wrong")
    assert (score.metrics["correct"], score.metrics["language_match"]) == (1.0, 0.0)


def test_a_wrong_answer_in_the_right_language_matches_the_language_only() -> None:
    score = LanguageScorer().score(sample("de", ["Madrid"]), "Die Hauptstadt von Spanien ist Barcelona.")
    assert (score.value, score.metrics["correct"], score.metrics["language_match"]) == (0.0, 0.0, 1.0)
    assert score.details["answers"] == ["Madrid"]


def test_a_named_entity_answer_does_not_decide_the_language_of_the_sentence() -> None:
    score = LanguageScorer().score(
        sample("fr", ["Buenos Aires"]), "La capitale de l'Argentine est Buenos Aires."
    )
    assert (score.value, score.status) == (1.0, "correct")


@pytest.mark.parametrize(("language", "output"), [("ja", "12"), ("ru", "Париж"), ("zh", "十二"), ("ar", "٧")])
def test_a_bare_answer_counts_as_the_requested_language(language: str, output: str) -> None:
    score = LanguageScorer().score(sample(language, ["12", "Париж", "十二", "7"]), output)
    assert (score.value, score.metrics["language_match"]) == (1.0, 1.0)


def test_a_short_japanese_answer_with_a_long_vowel_mark_is_in_japanese_script() -> None:
    assert language_verdict("リー", "ja") == (True, "short text, letters in the expected script")
    assert matches_language("マドリード", "ja")


def test_a_short_wrong_answer_in_another_script_does_not_match_the_language() -> None:
    verdict, reason = language_verdict("blue", "zh")
    assert not verdict and "short" in reason


@pytest.mark.parametrize(
    ("language", "answers", "output"),
    [
        ("fr", ["Rome"], "It is Rome."),
        ("fr", ["Rome"], "C'est Rome."),  # French, but four Latin letters cannot show it
        ("de", ["Rom"], "It's Rom!"),
        ("es", ["42"], "Is 42"),
    ],
)
def test_a_short_latin_remainder_is_undetermined_and_never_counts_as_a_match(
    language: str, answers: list[str], output: str
) -> None:
    score = LanguageScorer().score(sample(language, answers), output)
    assert (score.value, score.status) == (1.0, "correct")  # judged on the answer alone
    assert score.metrics == {"correct": 1.0, "language_undetermined": 1.0}  # no language_match either way
    assert score.details["language_verdict"] == "undetermined"


def test_the_short_text_rule_reports_latin_script_as_undetermined() -> None:
    assert language_verdict("It is .", "fr") == (None, "short text, Latin script: undetermined")
    assert matches_language(
        "It is .", "fr"
    )  # instruction checks give whole responses the benefit of the doubt


@pytest.mark.parametrize(
    ("language", "answers", "output"),
    [
        ("ru", ["Париж"], "Это Париж."),
        ("zh", ["北京"], "是北京。"),
        ("ja", ["東京"], "東京です"),
        ("ar", ["القاهرة"], "إنها القاهرة"),
        ("fr", ["Rome"], "Rome."),  # nothing but the answer: no letters left to judge
    ],
)
def test_short_answers_in_a_distinctive_script_are_still_judged_by_script(
    language: str, answers: list[str], output: str
) -> None:
    score = LanguageScorer().score(sample(language, answers), output)
    assert (score.value, score.status) == (1.0, "correct"), score.details
    assert (score.metrics["language_match"], score.metrics["language_undetermined"]) == (1.0, 0.0)


@pytest.mark.parametrize(
    ("language", "output"), [("ru", "It is Париж"), ("zh", "It is 北京"), ("fr", "это Rome")]
)
def test_a_short_remainder_in_another_script_is_a_mismatch(language: str, output: str) -> None:
    score = LanguageScorer().score(sample(language, ["Париж", "北京", "Rome"]), output)
    assert (score.value, score.metrics["language_match"], score.metrics["language_undetermined"]) == (
        0.0,
        0.0,
        0.0,
    )
    assert score.details["language_verdict"] == "mismatch"


def test_hostile_outputs_are_scored_without_crashing() -> None:
    scorer = LanguageScorer()
    s = sample("ar", ["القاهرة", "Cairo"])
    assert scorer.score(s, "").status == "unparsed"
    assert scorer.score(s, "😀" * 1000).metrics["correct"] == 0.0
    rtl = "\u202bعاصمة مصر هي القاهرة\u202c\u200f"
    assert scorer.score(s, rtl).status == "correct"
    huge = "عاصمة مصر هي مدينة القاهرة الجميلة. " * 30_000
    assert scorer.score(s, huge).status == "correct"
    mixed = "Cairo 开罗 Le Caire القاهرة Каир"
    assert scorer.score(s, mixed).metrics["correct"] == 1.0


def test_unsupported_languages_and_missing_answers_are_data_errors() -> None:
    with pytest.raises(DataError, match="unsupported language code"):
        LanguageScorer().score(sample("xx", ["1"]), "1")
    with pytest.raises(DataError, match="answers"):
        LanguageScorer().score(Sample(id="q", fields={"language": "en", "answers": []}), "1")


def builtin_samples() -> list[Sample]:
    suite = load_suite("multilingual")
    return load_samples(suite.config.tasks[0].dataset, DataContext(suite_dir=suite.directory))


def test_the_builtin_set_has_four_questions_per_language_and_mixed_prompts() -> None:
    samples = builtin_samples()
    plain = Counter(s.fields["language"] for s in samples if not s.fields["mixed"])
    assert plain == dict.fromkeys(SENTENCES, 4)
    assert sum(1 for s in samples if s.fields["mixed"]) >= 6


def test_every_builtin_reference_is_detected_as_its_language_and_scores_full_marks() -> None:
    scorer = scorers.get("multilingual")()
    for s in builtin_samples():
        reference = scorer.reference_output(s)
        assert (s.id, language_verdict(reference, s.fields["language"])[0]) == (s.id, True)
        score = scorer.score(s, reference)
        assert (s.id, score.value, score.metrics) == (
            s.id,
            1.0,
            {"correct": 1.0, "language_match": 1.0, "language_undetermined": 0.0},
        )
