"""Reasoning blocks (`<think>...</think>` and configurable markers) are cut before scoring, and kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SplitOutput:
    answer: str
    reasoning: str
    unclosed: bool  # a block was opened and never closed: the model ran out of tokens while thinking


def split_reasoning(text: str, markers: Sequence[tuple[str, str]]) -> SplitOutput:
    """Remove every reasoning block; an unclosed block swallows the rest of the output."""
    answer, reasoning, unclosed = text, [], False
    for open_tag, close_tag in markers:
        out: list[str] = []
        rest = answer
        while (start := rest.find(open_tag)) >= 0:
            out.append(rest[:start])
            end = rest.find(close_tag, start + len(open_tag))
            if end < 0:
                reasoning.append(rest[start + len(open_tag) :])
                rest, unclosed = "", True
                break
            reasoning.append(rest[start + len(open_tag) : end])
            rest = rest[end + len(close_tag) :]
        else:
            # a lone closing tag: models whose template opens the block in the prompt (e.g. Qwen3)
            if close_tag in rest and not out:
                head, _, rest = rest.partition(close_tag)
                reasoning.append(head)
        out.append(rest)
        answer = "".join(out)
    if reasoning:  # trim what the cut left around the answer, but keep a code answer's indentation
        answer = answer.lstrip("\n").rstrip()
    return SplitOutput(answer, "\n".join(reasoning).strip(), unclosed)


Markers = Sequence[tuple[str, str]]


def opened_by_prompt(prompt: str | None, markers: Markers) -> str | None:
    """The closing tag of a block the prompt itself opens (a chat template that ends in `<think>`), if any."""
    if not prompt:
        return None
    tail = prompt.rstrip()
    for open_tag, close_tag in markers:
        if open_tag and tail.endswith(open_tag):
            return close_tag
    return None


def answer_start(text: str, markers: Markers, opened: str | None = None) -> int | None:
    """Where the answer begins in an output: 0 without reasoning, else just after the reasoning block(s) it
    starts with (`opened`: the closing tag of a block the prompt opened); None while a block is still open.

    A closing tag with no opening one before it ends a block the prompt opened where the prompt is not known
    (a server's chat template): the answer then starts after it, seen only once it has come."""
    pos, close = 0, opened
    while True:
        if close is not None:
            end = text.find(close, pos)
            if end < 0:
                return None
            pos = end + len(close)
        lead = len(text) - len(text[pos:].lstrip())
        pair = next(((o, c) for o, c in markers if o and text.startswith(o, lead)), None)
        if pair is None:
            break
        pos, close = lead + len(pair[0]), pair[1]
    if pos == 0:
        for open_tag, close_tag in markers:
            end = text.find(close_tag) if close_tag else -1
            if end >= 0 and (not open_tag or open_tag not in text[:end]):
                return end + len(close_tag)
    return pos


def stop_in_answer(text: str, stop: Sequence[str], markers: Markers, opened: str | None = None) -> int | None:
    """Where the earliest stop string begins in the answer part of `text`; None: none there (or no answer yet)."""
    start = answer_start(text, markers, opened) if markers else 0
    if start is None:
        return None
    return min((i for s in stop if s and (i := text.find(s, start)) >= 0), default=None)


def cut_at_stop(
    text: str, stop: Sequence[str], markers: Markers, opened: str | None = None
) -> tuple[str, bool]:
    """`text` cut at the earliest stop string in its answer (never inside reasoning); and whether one was."""
    cut = stop_in_answer(text, stop, markers, opened) if stop else None
    return (text, False) if cut is None else (text[:cut], True)


def split_output(text: str, markers: Markers, prompt: str | None = None) -> SplitOutput:
    """`split_reasoning`, with a block the prompt opened counted as the output's first."""
    opened = opened_by_prompt(prompt, markers)
    if opened is not None:
        open_tag = next(o for o, c in markers if c == opened)
        return split_reasoning(open_tag + text, markers)
    return split_reasoning(text, markers)
