"""Shared extraction helpers: reasoning blocks, fenced blocks, balanced spans and \\boxed{} bodies."""

from __future__ import annotations

import pytest

from llmbench.scoring.extract import (
    balanced_spans,
    boxed_contents,
    brace_group,
    fenced_blocks,
    strip_reasoning,
)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("<think>maybe 3</think>The answer is 4.", "The answer is 4."),
        ("<think>never closed, 3 or 4", ""),
        ("plan first</think>final: 7", "final: 7"),  # template opened the block in the prompt
        ("<thinking>a</thinking>b<think>c</think>d", "bd"),
        ("no reasoning here", "no reasoning here"),
    ],
)
def test_strip_reasoning_keeps_only_the_answer_part(text: str, answer: str) -> None:
    assert strip_reasoning(text) == answer


@pytest.mark.parametrize(
    ("text", "lang", "blocks"),
    [
        ('Here:\n```json\n{"a": 1}\n```\ndone', "json", ['{"a": 1}\n']),
        ("```JSON\n[1]\n```\n```python\nx = 1\n```", "json", ["[1]\n"]),
        ("```python\nx = 1\n```\n~~~\ny\n~~~", None, ["x = 1\n", "y\n"]),
        ("````md\n```inner```\n````", None, ["```inner```\n"]),
        ("```json\n{unclosed", "json", []),
        ("no fences", None, []),
    ],
)
def test_fenced_blocks_are_found_by_language(text: str, lang: str | None, blocks: list[str]) -> None:
    assert fenced_blocks(text, lang) == blocks


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ('x {"a": [1, 2]} y [3]', ['{"a": [1, 2]}', "[3]"]),
        ('{"s": "a } inside ] a string \\" still"}', ['{"s": "a } inside ] a string \\" still"}']),
        ("{ ] } [ok]", ["[ok]"]),  # a mismatched closer abandons the span
        ("{{{{ never closed", []),
        ("plain text", []),
    ],
)
def test_balanced_spans_respect_nesting_and_strings(text: str, spans: list[str]) -> None:
    assert [text[a:b] for a, b in balanced_spans(text)] == spans


def test_balanced_spans_stay_linear_on_hostile_nesting() -> None:
    text = "{[" * 200_000 + "}" + "]" * 10
    assert list(balanced_spans(text)) == []


@pytest.mark.parametrize(
    ("text", "boxes"),
    [
        (r"so \boxed{42}.", ["42"]),
        (r"\boxed{\frac{1}{\sqrt{2}}} and \boxed{x^{2}}", [r"\frac{1}{\sqrt{2}}", "x^{2}"]),
        (r"\fbox{7}", ["7"]),
        (r"\boxed 5.", ["5"]),
        (r"\boxed{\{1, 2\}}", [r"\{1, 2\}"]),
        (r"cut off \boxed{\frac{1}{", []),
        (r"\boxedx{1}", []),
    ],
)
def test_boxed_contents_handles_nested_braces(text: str, boxes: list[str]) -> None:
    assert boxed_contents(text) == boxes


def test_brace_group_returns_the_body_and_the_end() -> None:
    assert brace_group("a{b{c}d}e", 1) == ("b{c}d", 8)
    assert brace_group("{open", 0) is None
