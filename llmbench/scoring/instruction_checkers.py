"""The IFEval-style instruction checkers: one small dataclass per instruction id, found in `checkers` by id.

The rules are in the checkers' docstrings. Keywords match case-insensitively as whole words; words are runs
of letters/digits (`don't` and `well-known` are one word each); sentences end at `.`, `!`, `?` (or their CJK
forms) before a space, or at a line break; relations are `less than`, `at most`, `exactly`, `at least` and
`more than`. The scorer that applies them is `llmbench.scoring.instructions`.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import re
import typing
from collections.abc import Callable
from typing import Any, ClassVar

from llmbench.errors import DataError
from llmbench.registry import Registry
from llmbench.scoring.language import language_code, matches_language

RELATIONS: dict[str, Callable[[int, int], bool]] = {
    "less than": operator.lt, "at most": operator.le, "exactly": operator.eq,
    "at least": operator.ge, "more than": operator.gt,
}  # fmt: skip
_WORD = re.compile(r"\w+(?:['’-]\w+)*")
_SENTENCE_END = re.compile(
    r"(?<!\b(?:mr|ms|dr|vs|st|jr|sr))(?<!\b(?:mrs|etc|e\.g|i\.e))[.!?]+['\")\]]*(?=\s)|[。！？]+|\n+", re.I
)
_BULLET = re.compile(r"^[ \t]*[*\-•][ \t]+\S", re.M)
_HIGHLIGHT = re.compile(r"\*\*[^\n*]*[^\s*][^\n*]*\*\*|\*[^\n*]*[^\s*][^\n*]*\*")
_PLACEHOLDER = re.compile(r"\[[^\[\]\n]*[^\s\[\]][^\[\]\n]*\]")
_TITLE = re.compile(r"<<[^\n<>]*[^\s<>][^\n<>]*>>")
_DIVIDER = re.compile(r"^[ \t]*\*\*\*[ \t]*$", re.M)
_COMMAS = frozenset(",，﹐、،")  # commas of every script: ASCII, full-width, small, ideographic, Arabic
_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```$", re.S)


class Checker:
    """An instruction a program can verify; subclasses are dataclasses whose fields are the kwargs."""

    def check(self, text: str) -> bool:
        raise NotImplementedError


checkers: Registry[type[Checker]] = Registry("instruction")


def checker(instruction_id: str) -> Callable[[type[Checker]], type[Checker]]:
    """Register a checker dataclass under its IFEval instruction id."""

    def add(cls: type[Checker]) -> type[Checker]:
        frozen = dataclasses.dataclass(frozen=True)(cls)
        checkers.add(instruction_id, frozen)
        return frozen

    return add


def _coerce(iid: str, name: str, value: Any, kind: Any) -> Any:
    """A kwarg value in the field's type, or a DataError naming the instruction and the argument."""
    bad = f"instruction '{iid}': argument '{name}'"
    if kind is int:
        integral = isinstance(value, float) and value.is_integer()
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not (isinstance(value, int) or integral) or value < 0:
            raise DataError(f"{bad} must be a non-negative whole number, not {value!r}")
        return int(value)
    if kind == list[str]:
        value = [value] if isinstance(value, str) else value
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            raise DataError(f"{bad} must be a non-empty list of non-empty strings, not {value!r}")
        return list(value)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{bad} must be a non-empty string, not {value!r}")
    if name.endswith("relation") and value.strip().lower() not in RELATIONS:
        raise DataError(f"{bad} must be one of {', '.join(map(repr, RELATIONS))}, not {value!r}")
    return value.strip().lower() if name.endswith("relation") else value


def build_checker(instruction_id: str, kwargs: dict[str, Any] | None) -> Checker:
    """The checker for one instruction, its kwargs validated (null values are treated as absent)."""
    cls = checkers.get(instruction_id)
    given = {k: v for k, v in (kwargs or {}).items() if v is not None}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    takes = f"(takes: {', '.join(fields) or 'nothing'})"
    if unknown := sorted(set(given) - set(fields)):
        raise DataError(
            f"instruction '{instruction_id}' has unknown argument(s) {', '.join(unknown)} {takes}"
        )
    required = [n for n, f in fields.items() if f.default is dataclasses.MISSING]
    if missing := [n for n in required if n not in given]:
        raise DataError(f"instruction '{instruction_id}' is missing argument(s) {', '.join(missing)} {takes}")
    return cls(**{n: _coerce(instruction_id, n, v, hints[n]) for n, v in given.items()})


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def count_sentences(text: str) -> int:
    return sum(1 for part in _SENTENCE_END.split(text) if any(c.isalnum() for c in part))


def _keyword(word: str) -> re.Pattern[str]:
    left = r"(?<!\w)" if word[:1].isalnum() or word[:1] == "_" else ""
    right = r"(?!\w)" if word[-1:].isalnum() or word[-1:] == "_" else ""
    return re.compile(left + re.escape(word.strip()) + right, re.IGNORECASE)


@checker("keywords:existence")
class KeywordsExist(Checker):
    """Every keyword appears at least once."""

    keywords: list[str]

    def check(self, text: str) -> bool:
        return all(_keyword(k.strip()).search(text) for k in self.keywords)


@checker("keywords:frequency")
class KeywordFrequency(Checker):
    """The keyword appears a number of times in the given relation to `frequency`."""

    keyword: str
    frequency: int
    relation: str

    def check(self, text: str) -> bool:
        return RELATIONS[self.relation](len(_keyword(self.keyword.strip()).findall(text)), self.frequency)


@checker("keywords:forbidden_words")
class ForbiddenWords(Checker):
    """None of the words appears."""

    forbidden_words: list[str]

    def check(self, text: str) -> bool:
        return not any(_keyword(w.strip()).search(text) for w in self.forbidden_words)


@checker("keywords:letter_frequency")
class LetterFrequency(Checker):
    """A letter (either case) appears a number of times in the given relation to `let_frequency`."""

    letter: str
    let_frequency: int
    let_relation: str

    def __post_init__(self) -> None:
        if len(self.letter.strip()) != 1 or not self.letter.strip().isalpha():
            raise DataError(
                f"instruction 'keywords:letter_frequency': 'letter' must be one letter, not {self.letter!r}"
            )

    def check(self, text: str) -> bool:
        return RELATIONS[self.let_relation](
            text.casefold().count(self.letter.strip().casefold()), self.let_frequency
        )


@checker("language:response_language")
class ResponseLanguage(Checker):
    """The response has letters and is in the language (ISO 639-1), as lingua identifies it."""

    language: str

    def __post_init__(self) -> None:
        language_code(self.language)

    def check(self, text: str) -> bool:
        return any(c.isalpha() for c in text) and matches_language(text, self.language)


@checker("length_constraints:number_sentences")
class NumberSentences(Checker):
    """The number of sentences is in the given relation to `num_sentences`."""

    num_sentences: int
    relation: str

    def check(self, text: str) -> bool:
        return RELATIONS[self.relation](count_sentences(text), self.num_sentences)


@checker("length_constraints:number_words")
class NumberWords(Checker):
    """The number of words is in the given relation to `num_words`."""

    num_words: int
    relation: str

    def check(self, text: str) -> bool:
        return RELATIONS[self.relation](len(words(text)), self.num_words)


@checker("length_constraints:number_paragraphs")
class NumberParagraphs(Checker):
    """Exactly `num_paragraphs` non-empty paragraphs, separated by lines holding only `***`."""

    num_paragraphs: int

    def check(self, text: str) -> bool:
        parts = [p.strip() for p in _DIVIDER.split(text)]
        return all(parts) and len(parts) == self.num_paragraphs


@checker("length_constraints:nth_paragraph_first_word")
class NthParagraphFirstWord(Checker):
    """Exactly `num_paragraphs` paragraphs (blank-line separated); the nth starts with `first_word`."""

    num_paragraphs: int
    nth_paragraph: int
    first_word: str

    def check(self, text: str) -> bool:
        parts = [p for p in (p.strip() for p in re.split(r"\n[ \t]*\n", text)) if p]
        if len(parts) != self.num_paragraphs or not 1 <= self.nth_paragraph <= len(parts):
            return False
        first = words(parts[self.nth_paragraph - 1])
        return bool(first) and first[0].casefold() == self.first_word.strip().casefold()


@checker("detectable_content:number_placeholders")
class Placeholders(Checker):
    """At least `num_placeholders` placeholders in square brackets, like [address]."""

    num_placeholders: int

    def check(self, text: str) -> bool:
        return len(_PLACEHOLDER.findall(text)) >= self.num_placeholders


@checker("detectable_content:postscript")
class Postscript(Checker):
    """A line starts with the postscript marker (`P.S.`, `P.P.S` ...; case and spaces after dots are free)."""

    postscript_marker: str

    def check(self, text: str) -> bool:
        marker = r"\.\s*".join(re.escape(p.strip()) for p in self.postscript_marker.strip().split("."))
        return re.search(r"^\s*" + marker, text, re.I | re.M) is not None


@checker("detectable_format:number_bullet_lists")
class BulletList(Checker):
    """Exactly `num_bullets` markdown bullet points (lines starting with `*`, `-` or `•` and a space)."""

    num_bullets: int

    def check(self, text: str) -> bool:
        return len(_BULLET.findall(text)) == self.num_bullets


@checker("detectable_format:constrained_response")
class ConstrainedResponse(Checker):
    """The response gives one of the three offered answers: My answer is yes./no./maybe."""

    OPTIONS: ClassVar[tuple[str, ...]] = ("My answer is yes.", "My answer is no.", "My answer is maybe.")

    def check(self, text: str) -> bool:
        return any(option in text for option in self.OPTIONS)


@checker("detectable_format:number_highlighted_sections")
class HighlightedSections(Checker):
    """At least `num_highlights` non-empty sections highlighted with markdown, *like this* or **this**."""

    num_highlights: int

    def check(self, text: str) -> bool:
        return len(_HIGHLIGHT.findall(text)) >= self.num_highlights


@checker("detectable_format:multiple_sections")
class MultipleSections(Checker):
    """At least `num_sections` lines start with the splitter and a number (`SECTION 1`; markdown allowed)."""

    section_spliter: str
    num_sections: int

    def check(self, text: str) -> bool:
        pattern = r"^[ \t#*]*" + re.escape(self.section_spliter.strip()) + r"\s*\d+"
        return len(re.findall(pattern, text, re.I | re.M)) >= self.num_sections


@checker("detectable_format:json_format")
class JsonFormat(Checker):
    """The whole response is JSON (a markdown code fence around it is allowed)."""

    def check(self, text: str) -> bool:
        body = text.strip()
        if fenced := _FENCE.match(body):
            body = fenced.group(1)
        try:
            json.loads(body)
        except (ValueError, RecursionError):
            return False
        return True


@checker("detectable_format:title")
class Title(Checker):
    """A non-empty title in double angular brackets, like <<title>>."""

    def check(self, text: str) -> bool:
        return _TITLE.search(text) is not None


@checker("combination:two_responses")
class TwoResponses(Checker):
    """Two different non-empty responses separated by exactly six asterisks `******`."""

    def check(self, text: str) -> bool:
        parts = [p.strip() for p in re.split(r"(?<!\*)\*{6}(?!\*)", text)]
        return len(parts) == 2 and all(parts) and parts[0] != parts[1]


@checker("combination:repeat_prompt")
class RepeatPrompt(Checker):
    """The response starts by repeating the request word for word (case aside)."""

    prompt_to_repeat: str

    def check(self, text: str) -> bool:
        return text.strip().casefold().startswith(self.prompt_to_repeat.strip().casefold())


@checker("startend:end_checker")
class EndPhrase(Checker):
    """The response ends with the exact phrase (case aside), nothing after it."""

    end_phrase: str

    def check(self, text: str) -> bool:
        return text.strip().casefold().endswith(self.end_phrase.strip().casefold())


@checker("startend:quotation")
class Quotation(Checker):
    """The whole response is wrapped in double quotation marks (straight or curly)."""

    def check(self, text: str) -> bool:
        body = text.strip()
        return len(body) >= 2 and (body[0], body[-1]) in (('"', '"'), ("\u201c", "\u201d"))


@checker("change_case:capital_word_frequency")
class CapitalWords(Checker):
    """The number of all-capital words is in the given relation to `capital_frequency`."""

    capital_frequency: int
    capital_relation: str

    def check(self, text: str) -> bool:
        return RELATIONS[self.capital_relation](sum(w.isupper() for w in words(text)), self.capital_frequency)


@checker("change_case:english_capital")
class EnglishCapital(Checker):
    """The response is in English and in capital letters only."""

    def check(self, text: str) -> bool:
        return text.isupper() and matches_language(text, "en")


@checker("change_case:english_lowercase")
class EnglishLowercase(Checker):
    """The response is in English and in lower-case letters only."""

    def check(self, text: str) -> bool:
        return text.islower() and matches_language(text, "en")


@checker("punctuation:no_comma")
class NoComma(Checker):
    """No comma at all, in any script (`,` `，` `、` `،` ...)."""

    def check(self, text: str) -> bool:
        return not any(c in _COMMAS for c in text)
