"""Multilingual scoring: is the answer right, and is it written in the language the question asked for?

Language identification uses lingua (deterministic: the same text always gives the same language). One
detector per process, built on first use, covers `DETECTED_LANGUAGES`; Kannada, Malayalam and Nepali,
which lingua lacks, are judged by their script alone.

Rules of `LanguageScorer` (sample fields `question`, `language`, `answers`, optional `mixed`, `reference`):
- answers and output are compared normalised: NFKC, case-folded, accents and punctuation dropped, digits of
  any script as ASCII digits, digit-group separators removed (`1 000`, `1,000` -> `1000`); an answer counts
  when it appears as whole words (`4` is not found in `14`; in Chinese or Japanese text no spaces are needed);
- the language is judged on the output with the matched answer removed, so that a named entity
  (`Buenos Aires` in a French sentence) does not decide the language. What is left gets one of three
  verdicts, match, mismatch or undetermined:
  - no letters at all (a bare number, only the answer) -> match;
  - short (fewer than `SHORT_TEXT_LETTERS` letters, a Chinese/Japanese/Korean character counting two) ->
    mismatch when a letter is outside the scripts of the requested language; else match for a language
    whose script is a strong signal on its own (CJK, Cyrillic, Arabic, Devanagari, Thai ...), but
    undetermined for a Latin-script language: `It is .` left over from an English answer to a French
    question cannot be told from French by its script, and lingua is no more reliable on so few letters;
  - otherwise -> lingua must find the requested language at least `RELATIVE_CONFIDENCE` times as likely
    as its best guess (short sentences are ambiguous: `Nine times six is 54.` scores French 0.37, English
    0.34; a whole sentence in another language scores the requested one near zero); where lingua has no
    opinion the script decides as for short texts;
- `accuracy` (primary) = `correct` AND no language mismatch: a right answer in the wrong language does not
  count; one whose language cannot be told either way counts on its correctness alone (`C'est Rome.` is
  as likely French as `It is Rome.` is English). `correct` is reported for every sample;
  `language_match` (1 match, 0 mismatch) only where the language was determined, and
  `language_undetermined` (0/1) for every answered sample, so an undetermined sample never passes as a
  language match and their share is in plain view. Statuses: correct, wrong, unparsed (empty).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import TYPE_CHECKING, Any, ClassVar

from llmbench.data.base import Sample
from llmbench.errors import DataError, MissingDependencyError
from llmbench.scoring.base import Score, Scorer

if TYPE_CHECKING:
    from lingua import LanguageDetector

DETECTED_LANGUAGES: tuple[str, ...] = (
    "ar", "bg", "bn", "de", "en", "es", "fa", "fi", "fr", "gu", "he", "hi", "id", "it", "ja", "ko",
    "mr", "nl", "pa", "pl", "pt", "ru", "sw", "ta", "te", "th", "tr", "uk", "ur", "vi", "zh",
)  # fmt: skip
SCRIPT_ONLY: dict[str, str] = {"kn": "KANNADA", "ml": "MALAYALAM", "ne": "DEVANAGARI"}
SHORT_TEXT_LETTERS = 6
RELATIVE_CONFIDENCE = 0.6  # the requested language must be at least this share as likely as lingua's best
MAX_DETECT_CHARS = 6000  # longer texts are sampled (head, middle, tail) to keep detection fast

_LATIN = frozenset({"LATIN"})
LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    **{c: _LATIN for c in ("de", "en", "es", "fi", "fr", "id", "it", "nl", "pl", "pt", "sw", "tr", "vi")},
    "zh": frozenset({"CJK", "IDEOGRAPHIC"}),
    "ja": frozenset({"CJK", "IDEOGRAPHIC", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA"}),
    "ko": frozenset({"HANGUL", "CJK"}), "ru": frozenset({"CYRILLIC"}), "uk": frozenset({"CYRILLIC"}),
    "bg": frozenset({"CYRILLIC"}), "ar": frozenset({"ARABIC"}), "fa": frozenset({"ARABIC"}),
    "ur": frozenset({"ARABIC"}), "he": frozenset({"HEBREW"}), "hi": frozenset({"DEVANAGARI"}),
    "mr": frozenset({"DEVANAGARI"}), "bn": frozenset({"BENGALI"}), "gu": frozenset({"GUJARATI"}),
    "pa": frozenset({"GURMUKHI"}), "ta": frozenset({"TAMIL"}), "te": frozenset({"TELUGU"}),
    "th": frozenset({"THAI"}), **{c: frozenset({s}) for c, s in SCRIPT_ONLY.items()},
}  # fmt: skip
_WIDE_SCRIPTS = frozenset({"CJK", "IDEOGRAPHIC", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "HANGUL"})
_UNSPACED_SCRIPTS = _WIDE_SCRIPTS - {"HANGUL"} | {"THAI"}

_lock = threading.Lock()
_detector_instance: LanguageDetector | None = None


def _detector() -> LanguageDetector:
    """The process-wide lingua detector, built on first use (language models load lazily inside lingua)."""
    global _detector_instance
    with _lock:
        if _detector_instance is None:
            try:
                from lingua import IsoCode639_1, LanguageDetectorBuilder
            except ImportError:
                raise MissingDependencyError(
                    "lingua-language-detector", purpose="language identification"
                ) from None
            codes = [getattr(IsoCode639_1, c.upper()) for c in DETECTED_LANGUAGES]
            _detector_instance = LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build()
        return _detector_instance


def language_code(code: Any) -> str:
    """A requested language as a lower-case ISO 639-1 code (`ZH`, `zh-CN` -> `zh`); unknown codes are errors."""
    norm = str(code).strip().lower().replace("_", "-").split("-")[0] if isinstance(code, str) else ""
    if norm not in LANGUAGE_SCRIPTS:
        raise DataError(
            f"unsupported language code {code!r}",
            hint=f"use an ISO 639-1 code among: {', '.join(sorted(LANGUAGE_SCRIPTS))}",
        )
    return norm


def script_of(char: str) -> str | None:
    """The Unicode script of a letter, by its character name (`CJK`, `LATIN`, `CYRILLIC` ...); None otherwise."""
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else None


def _sampled(text: str) -> str:
    if len(text) <= MAX_DETECT_CHARS:
        return text
    third = MAX_DETECT_CHARS // 3
    mid = len(text) // 2
    return " ".join((text[:third], text[mid - third // 2 : mid + third // 2], text[-third:]))


def language_verdict(text: str, code: str) -> tuple[bool | None, str]:
    """Whether `text` is in language `code` (None: undetermined), with the reason; see the module rules."""
    code = language_code(code)
    text = unicodedata.normalize("NFKC", text)
    scripts = [s for s in map(script_of, text) if s]
    if not scripts:
        return True, "no letters"
    expected = LANGUAGE_SCRIPTS[code]
    if code in SCRIPT_ONLY:
        ok = sum(s in expected for s in scripts) * 2 > len(scripts)
        return ok, f"script {'is' if ok else 'is not mainly'} {SCRIPT_ONLY[code]}"
    weight = sum(2 if s in _WIDE_SCRIPTS else 1 for s in scripts)
    if weight < SHORT_TEXT_LETTERS:
        return _by_script(scripts, expected, "short text")
    confidences = _confidences(text)
    if not confidences or confidences[0][1] <= 0.0:
        return _by_script(scripts, expected, "no language detected")
    best, top = confidences[0]
    own = dict(confidences).get(code, 0.0)
    return own >= RELATIVE_CONFIDENCE * top, f"detected {best} ({top:.2f}), {code} {own:.2f}"


def _by_script(scripts: list[str], expected: frozenset[str], why: str) -> tuple[bool | None, str]:
    """The verdict letters' scripts alone allow: Latin letters are shared by too many languages to decide."""
    if not all(s in expected for s in scripts):
        return False, f"{why}, other script"
    if expected == _LATIN:
        return None, f"{why}, Latin script: undetermined"
    return True, f"{why}, letters in the expected script"


def _confidences(text: str) -> list[tuple[str, float]]:
    values = _detector().compute_language_confidence_values(_sampled(text))
    return [(v.language.iso_code_639_1.name.lower(), v.value) for v in values]


def matches_language(text: str, code: str) -> bool:
    """Whether `text` is written in language `code` (ISO 639-1); an undetermined verdict is not held against it.

    For instruction checks on whole responses; the multilingual scorer reports undetermined verdicts apart.
    """
    return language_verdict(text, code)[0] is not False


_GROUPED_NUMBER = re.compile(r"(?<![\d.,])\d{1,3}(?:[ ,'\u00a0\u202f\u2009]\d{3})+(?![\d]|[.,]\d)")


def normalise_text(text: str) -> str:
    """For answer matching: NFKC, case-folded, accents, punctuation and digit-group separators dropped."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text)
    text = _GROUPED_NUMBER.sub(lambda m: re.sub(r"\D", "", m.group()), text)
    decomposed = unicodedata.normalize("NFKD", text)
    kept = (
        " " if unicodedata.category(c)[0] in "PSZC" else c for c in decomposed if not unicodedata.combining(c)
    )
    return " ".join(unicodedata.normalize("NFC", "".join(kept)).split())


def _joins(char: str) -> bool:
    """Whether `char` next to an answer's edge would make it part of a longer word or number."""
    return char.isalnum() and script_of(char) not in _UNSPACED_SCRIPTS


def _answer_pattern(answer: str, flags: int = 0) -> re.Pattern[str]:
    left = r"(?<!\d)" if answer[0].isdigit() else (r"(?<![^\W_])" if _joins(answer[0]) else "")
    right = r"(?!\d)" if answer[-1].isdigit() else (r"(?![^\W_])" if _joins(answer[-1]) else "")
    return re.compile(left + re.escape(answer) + right, flags)


def find_answer(output: str, answers: list[str]) -> str | None:
    """The first acceptable answer that appears in `output`, both normalised; None when none does."""
    text = normalise_text(output)
    for answer in answers:
        norm = normalise_text(answer)
        if norm and _answer_pattern(norm).search(text):
            return answer
    return None


def without_answer(output: str, answer: str) -> str:
    """`output` with the answer's occurrences removed (case-insensitive), for judging the language around it."""
    text = unicodedata.normalize("NFKC", output)
    wanted = unicodedata.normalize("NFKC", answer).strip()
    if not wanted:
        return text
    return _answer_pattern(wanted, re.IGNORECASE).sub(" ", text)


def _answers(sample: Sample) -> list[str]:
    raw = sample.fields.get("answers", sample.reference)
    values = [raw] if isinstance(raw, (str, int, float)) else raw
    if not isinstance(values, list) or not values or not all(str(v).strip() for v in values):
        raise DataError(f"sample '{sample.id}': 'answers' must be a non-empty list of answers, not {raw!r}")
    return [str(v) for v in values]


class LanguageScorer(Scorer):
    """Right answer, not in a wrong language: `accuracy` needs both; each is reported apart too."""

    name: ClassVar[str] = "multilingual"
    primary_metric: ClassVar[str] = "accuracy"

    def score(self, sample: Sample, output: str) -> Score:
        answers = _answers(sample)
        code = language_code(sample.fields.get("language"))
        details: dict[str, Any] = {"language": code, "mixed": bool(sample.fields.get("mixed", False))}
        if not output.strip():
            zero = {"correct": 0.0, "language_match": 0.0, "language_undetermined": 0.0}
            return Score(0.0, "unparsed", zero, {**details, "reason": "empty output"})
        matched = find_answer(output, answers)
        rest = without_answer(output, matched) if matched is not None else output
        match, reason = language_verdict(rest, code)
        correct = matched is not None
        ok = correct and match is not False
        verdict = "undetermined" if match is None else "match" if match else "mismatch"
        details.update(matched_answer=matched, language_verdict=verdict, language_reason=reason)
        if not correct:
            details["answers"] = answers[:5]
        metrics = {"correct": float(correct), "language_undetermined": float(match is None)}
        if match is not None:
            metrics["language_match"] = float(match)
        return Score(float(ok), "correct" if ok else "wrong", metrics, details)

    def reference_output(self, sample: Sample) -> str:
        ref = sample.fields.get("reference")
        if isinstance(ref, str) and ref.strip():
            return ref
        answers = sample.fields.get("answers", sample.reference)
        return str(answers[0]) if isinstance(answers, list) and answers else str(answers or "")
