"""Math answers as text: find the final answer in an output, read the reference's, parse plain numbers.

Extraction (`auto`) tries, in order: the last `\\boxed{}`, the last `#### N` (GSM8K), the last and innermost
"the (final) answer is ...", the last "Answer: ..." line. A marker's capture is cut at its first sentence
end; when what is left reads as prose rather than mathematics ("therefore 42", "Janet has 18 dollars
left", "The final answer is $\\frac34$" after "Final Answer:"), the answer is the last `\\boxed{}`, else the
last inline-math segment, else the last number inside the capture (a prose capture with none of these is
kept as it is). With no marker, the last number in the text is a lenient fallback.

Plain numbers are read exactly (thousands separators, currency signs, percent, fractions, a scale word
such as `million`) with a unit only from `UNIT_WORDS`; anything else (`2 pi`, `2i`, `5 apples`) is not a
plain number, so the scorer leaves it to math_verify instead of dropping the trailing word.
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction
from typing import Any

from llmbench.errors import DataError
from llmbench.scoring.extract import boxed_contents, strip_reasoning

EXTRACT_MODES = ("auto", "boxed", "hash", "last_number")
SCALE_WORDS: dict[str, int] = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
UNIT_WORDS: tuple[str, ...] = (
    # money
    "dollars?", "cents?", "euros?", "pounds?", "yen", "rupees?", "usd", "eur", "gbp",
    # length, mass, volume
    "mm", "cm", "km", "(?:milli|centi|kilo)?met(?:er|re)s?", "inch(?:es)?", "foot", "feet", "ft",
    "yards?", "yd", "miles?", "mi", "mg", "kg", "(?:kilo)?grams?", "lbs?", "ounces?", "oz", "tons?",
    "tonnes?", "ml", "lit(?:er|re)s?", "gallons?", "cups?",
    # time, speed, angle, counts of area
    "seconds?", "secs?", "minutes?", "mins?", "hours?", "hrs?", "days?", "weeks?", "months?", "years?",
    "mph", "kph", "degrees?", "units?",
)  # fmt: skip
"""Trailing words a plain number may carry: unambiguous units only, never a lone letter (`2i`, `2m`)."""

_MATH_WORDS = frozenset({
    "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "log", "ln", "lg", "exp", "sqrt", "pi", "infty", "inf", "mod", "gcd", "lcm", "max", "min", "det",
    "and", "or", "percent", "per", "square", "sq", "cubic",
})  # fmt: skip
_HASH = re.compile(r"####\s*([^\n]+)")
_PHRASE = re.compile(r"(?:final answer|the answer)\s*(?:is\b|=|:)\s*:?\s*", re.IGNORECASE)
_LABEL = re.compile(r"^[\s*#_]*(?:final\s+)?answer[\s*_]*[:：][\s*_]*([^\n]+)", re.IGNORECASE | re.MULTILINE)
_NUMBER = re.compile(r"(?<![\d.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?")
_SCALED_NUMBER = re.compile(
    _NUMBER.pattern + r"(?:\s*%|\s*(?:" + "|".join(SCALE_WORDS) + r")\b)?", re.IGNORECASE
)
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
_INLINE_MATH = re.compile(r"(?<!\\)\$([^$]{1,500})(?<!\\)\$|\\\((.{1,500}?)\\\)")  # bounded: linear time
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[^\W\d_]{2,}")
_UNIT_TEXT = re.compile(r"\\(?:text|mbox|mathrm|textrm|textbf|mathbf)\s*\{([^{}]*)\}")
_UNIT_NAME = "(?:" + "|".join(UNIT_WORDS) + ")"
_UNIT = (
    r"(?:(?:square|sq\.?|cubic)\s*)?" + _UNIT_NAME + r"(?:\^\{?[23]\}?)?"
    r"(?:\s*(?:/|per)\s*(?:" + _UNIT_NAME + r"|h|s|m))?"
)
_PLAIN_NUMBER = re.compile(
    r"^(-?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?:/(\d+))?\s*"
    r"(?i:(%|percent|per\s*cent)|(" + "|".join(SCALE_WORDS) + r"))?"
    r"(?i:\s*" + _UNIT + r")?$"
)
_UNIT_WORD = re.compile(r"^(?:" + _UNIT + r")$", re.IGNORECASE)
_FRAC = re.compile(r"^(-?)\\[dt]?frac\s*\{(-?\d+)\}\s*\{(\d+)\}$")
_CURRENCY = "$€£¥₹"


def ascii_digits(text: str) -> str:
    """NFKC-normalised text with every decimal digit (Arabic-Indic, Devanagari...) as ASCII and − as -."""
    text = unicodedata.normalize("NFKC", text).replace("\u2212", "-")
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() and not c.isascii() else c for c in text)


def clean_answer(answer: str) -> str:
    """Drop markup around an extracted answer: a box, `$`, `\\(`, bold, a closing full stop."""
    answer = answer.strip()
    if answer.lstrip(" $*\\([").startswith(("boxed", "fbox")) and (boxes := boxed_contents(answer)):
        answer = boxes[0]
    answer = _SENTENCE_END.split(answer, maxsplit=1)[0]
    for wrap in ("**", "\\(", "\\)", "\\[", "\\]", "`"):
        answer = answer.replace(wrap, "")
    if answer.count("$") - answer.count("\\$") >= 2:  # $...$ math delimiters, not a currency sign
        answer = re.sub(r"(?<!\\)\$", "", answer)
    return answer.strip().rstrip(".,;:").strip()


def reads_as_prose(answer: str) -> bool:
    """Whether an answer holds a word that is neither mathematics nor a known unit (`therefore 42`)."""
    text = _LATEX_COMMAND.sub(" ", answer)
    return any(
        w.casefold() not in _MATH_WORDS and w.casefold() not in SCALE_WORDS and not _UNIT_WORD.match(w)
        for w in _WORD.findall(text)
    )


def resolve_capture(capture: str) -> str:
    """The answer a marker's capture holds: the capture itself, or the mathematics inside its prose."""
    answer = clean_answer(capture)
    if not reads_as_prose(answer):
        return answer
    head = _SENTENCE_END.split(capture.strip(), maxsplit=1)[0]
    if boxes := boxed_contents(head):
        return clean_answer(boxes[-1])
    segments = [m.group(1) or m.group(2) for m in _INLINE_MATH.finditer(head)]
    segments = [s for s in segments if s.strip() and not reads_as_prose(s)]
    if segments:
        return clean_answer(segments[-1])
    if numbers := _SCALED_NUMBER.findall(answer):
        return str(numbers[-1])
    return answer


def _last_phrase(text: str) -> str | None:
    """The capture of the last (so innermost) "the answer is" phrase with text after it on its line."""
    for m in reversed(list(_PHRASE.finditer(text))):
        end = text.find("\n", m.end())
        if capture := text[m.end() : end if end >= 0 else len(text)].strip():
            return capture
    return None


def extract_answer(text: str, mode: str = "auto") -> tuple[str, str] | None:
    """(answer, method) from a model output, or None; `method` says which marker found it."""
    text = ascii_digits(strip_reasoning(text))
    if mode in ("auto", "boxed") and (boxes := boxed_contents(text)):
        return clean_answer(boxes[-1]), "boxed"
    if mode in ("auto", "hash") and (hashes := _HASH.findall(text)):
        return resolve_capture(hashes[-1]), "hash"
    if mode == "auto":
        phrase, labels = _last_phrase(text), _LABEL.findall(text)
        for method, capture in (("answer_phrase", phrase), ("answer_label", labels[-1] if labels else None)):
            if capture and (answer := resolve_capture(capture)):
                return answer, method
    if mode in ("auto", "last_number") and (numbers := _NUMBER.findall(text)):
        return numbers[-1], "last_number"
    return None


def reference_answer(reference: Any) -> str:
    """The final answer in a sample's reference: after the last `####`, the last `\\boxed{}`, or the value."""
    if reference is None or isinstance(reference, bool):
        raise DataError(f"a math sample needs a reference answer, not {reference!r}")
    text = ascii_digits(str(reference))
    if "####" in text:
        return clean_answer(text.rsplit("####", 1)[1])
    if boxes := boxed_contents(text):
        return clean_answer(boxes[-1])
    return clean_answer(text)


def parse_number(answer: str) -> Fraction | None:
    """The exact value of a plain-number answer (`-1,234.5`, `$18 dollars`, `25%`, `3 million`, `\\frac{1}{2}`).

    None for anything else, including a number followed by a word that is not a known unit.
    """
    text = _UNIT_TEXT.sub(r" \1", answer).replace("{,}", ",").replace("\\%", "%").replace("\\!", "")
    text = re.sub(r"\\[,;: ]|[\u00a0\u202f\u2009]", "", text).strip()
    text = re.sub(r"^[a-zA-Z]\s*=\s*", "", text).strip(_CURRENCY + " ").replace("\\$", "").strip()
    text = text.replace("-$", "-").replace("$", "").rstrip(". ")
    if m := _FRAC.match(text):
        return (
            Fraction(int(m.group(2)), int(m.group(3))) * (-1 if m.group(1) else 1)
            if int(m.group(3))
            else None
        )
    m = _PLAIN_NUMBER.match(text)
    if m is None:
        return None
    value = Fraction(f"{m.group(2).replace(',', '')}.{m.group(3) or '0'}")
    if m.group(4):
        if int(m.group(4)) == 0 or m.group(3):
            return None
        value /= int(m.group(4))
    if m.group(6):
        value *= SCALE_WORDS[m.group(6).lower()]
    return -value if m.group(1) else value
