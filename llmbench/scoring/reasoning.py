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
