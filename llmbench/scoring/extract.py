"""Text helpers the answer-checking scorers share: cut reasoning, find fenced blocks, balanced spans, \\boxed{}."""

from __future__ import annotations

import re
from collections.abc import Iterator

from llmbench.scoring.reasoning import split_reasoning

DEFAULT_REASONING_MARKERS: tuple[tuple[str, str], ...] = (
    ("<think>", "</think>"),
    ("<thinking>", "</thinking>"),
)

_FENCE = re.compile(
    r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.DOTALL | re.MULTILINE
)
_BOXED = re.compile(r"\\(?:boxed|fbox)\b")
_CLOSER = {"{": "}", "[": "]"}


def strip_reasoning(text: str) -> str:
    """The answer part of an output: `<think>` blocks removed, an unclosed block dropped to the end."""
    return split_reasoning(text, DEFAULT_REASONING_MARKERS).answer


def fenced_blocks(text: str, lang: str | None = None) -> list[str]:
    """Bodies of the Markdown code fences in `text`, in order; with `lang`, only fences tagged so (any case)."""
    blocks = []
    for m in _FENCE.finditer(text):
        if lang is None or m.group(2).lower() == lang.lower():
            blocks.append(m.group(3))
    return blocks


def balanced_spans(text: str, openers: str = "{[") -> Iterator[tuple[int, int]]:
    """(start, end) of each top-level balanced {...} or [...] span, in one pass; quotes inside a span are JSON strings.

    A mismatched closer abandons the span under way and the scan goes on from there, so a hostile
    text costs linear time however it nests.
    """
    stack: list[str] = []
    start = 0
    in_string = escaped = False
    for i, ch in enumerate(text):
        if not stack:
            if ch in openers:
                stack.append(_CLOSER[ch])
                start = i
            continue
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in _CLOSER:
            stack.append(_CLOSER[ch])
        elif ch in "}]":
            if ch != stack.pop():
                stack.clear()
            elif not stack:
                yield start, i + 1


def brace_group(text: str, open_index: int) -> tuple[str, int] | None:
    """The contents of the {...} group opening at `open_index` (nested braces, `\\{` escapes) and its end index."""
    depth = 0
    i = open_index
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_index + 1 : i], i + 1
        i += 1
    return None


def boxed_contents(text: str) -> list[str]:
    """Every `\\boxed{...}` / `\\fbox{...}` body in order (nested braces kept); `\\boxed 5` counts too."""
    found: list[str] = []
    pos = 0
    while (m := _BOXED.search(text, pos)) is not None:
        i = m.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            group = brace_group(text, i)
            if group is None:  # unclosed: the output was cut off inside the box
                break
            found.append(group[0].strip())
            pos = group[1]
        else:
            word = re.match(r"[^\s$]+", text[i:]) if i > m.end() else None
            if word:
                found.append(word.group(0).rstrip(".,;"))
            pos = i + word.end() if word else m.end()
    return found
