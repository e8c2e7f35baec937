"""Prompt fitting: a context cut from filler prose, with planted inserts, sized in the model's own tokens.

Each prompt is fitted to its target length by binary search over the number of filler tokens,
measuring the full prompt as the backend will see it (user template, optional system prompt,
chat template with the generation prompt). The guarantee, checked by the tests:
`target - FIT_TOLERANCE <= prompt tokens + output_budget <= target`.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from typing import Any

from llmbench.errors import ConfigError, DataError

FIT_TOLERANCE = 8  # tokens a fitted prompt may fall short of its target (usually 0-2 are seen)


@dataclass(frozen=True)
class Insert:
    """Text to plant at the sentence boundary nearest `depth`: the share of the filler's tokens before it."""

    depth: float
    text: str
    sep: str = " "


@dataclass(frozen=True)
class Fitted:
    """A context built to size: the text, the prompt's measured tokens, each insert's token depth."""

    context: str
    prompt: str
    prompt_tokens: int
    insert_depths: tuple[float, ...]


class PromptMeter:
    """Counts a user message's tokens exactly as the backend will: system prompt and chat template included."""

    def __init__(self, tokenizer: Any, template: str, system: str | None, chat: bool | None) -> None:
        if "{context}" not in template or "{question}" not in template:
            raise ConfigError("prompt_template must contain {context} and {question}")
        self.tokenizer = tokenizer
        self.template = template
        self.system = system
        has_template = bool(getattr(tokenizer, "chat_template", None))
        self.chat = has_template if chat is None else chat
        if self.chat and not has_template:
            raise ConfigError("chat: true, but the tokenizer has no chat template")

    def user_text(self, context: str, question: str) -> str:
        return self.template.replace("{question}", question).replace("{context}", context)

    def count(self, user: str) -> int:
        tok = self.tokenizer
        if not self.chat:
            return len(tok(user, add_special_tokens=True)["input_ids"])
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages.append({"role": "user", "content": user})
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return len(tok(text, add_special_tokens=False)["input_ids"])


class Filler:
    """Shuffled filler prose with the char end of each token and the sentence boundaries, for cutting to size."""

    def __init__(self, tokenizer: Any, paragraphs: list[str], rng: random.Random, min_tokens: int) -> None:
        # The Rust tokenizer gives char offsets and does not warn about lengths past the model's.
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise DataError("long-context data needs a fast (Rust) tokenizer to cut filler by tokens")
        per_pass = len(backend.encode("\n\n".join(paragraphs), add_special_tokens=False).ids)
        parts: list[str] = []
        for _ in range(min_tokens // max(per_pass, 1) + 2):
            parts.extend(rng.sample(paragraphs, len(paragraphs)))
        self.text = "\n\n".join(parts)
        enc = backend.encode(self.text, add_special_tokens=False)
        self.ends = [end for _, end in enc.offsets]
        t = self.text
        self.boundaries = [0] + [i for i in range(1, len(t)) if t[i - 1] in ".!?" and t[i] in " \n"]
        self.boundary_tokens = [bisect.bisect_right(self.ends, b) for b in self.boundaries]

    def build(self, n_tokens: int, inserts: list[Insert]) -> tuple[str, tuple[float, ...]]:
        """The first `n_tokens` filler tokens with each insert at its nearest sentence boundary."""
        cut = self.ends[n_tokens - 1] if n_tokens > 0 else 0
        usable = bisect.bisect_right(self.boundaries, cut)
        placed: list[tuple[int, int, Insert]] = []
        depths: list[float] = []
        for order, ins in enumerate(inserts):
            j = _nearest(self.boundary_tokens, usable, ins.depth * n_tokens)
            placed.append((self.boundaries[j], order, ins))
            depths.append(self.boundary_tokens[j] / n_tokens if n_tokens else 0.0)
        pieces: list[str] = []
        pos = 0
        for at, _, ins in sorted(placed, key=lambda p: (p[0], p[1])):
            pieces.append(self.text[pos:at])
            if ins.sep == " ":  # a sentence among sentences
                pieces.append(" " + ins.text if at > 0 else ins.text + " ")
            else:  # a block set off on its own: the filler after it restarts its paragraph
                pieces.append((ins.sep if at > 0 else "") + ins.text + ins.sep)
                while at < cut and self.text[at] in " \n":
                    at += 1
            pos = max(pos, at)
        pieces.append(self.text[pos:cut])
        return "".join(pieces), tuple(depths)


def _nearest(sorted_positions: list[int], usable: int, want: float) -> int:
    i = bisect.bisect_left(sorted_positions, want, 0, usable)
    candidates = [j for j in (i - 1, i) if 0 <= j < usable]
    return min(candidates, key=lambda j: abs(sorted_positions[j] - want))


def fit_prompt(
    meter: PromptMeter, filler: Filler, inserts: list[Insert], question: str, target: int, budget: int
) -> Fitted | None:
    """The largest context whose prompt + budget fits `target`; None if even an empty filler does not fit."""

    def measure(n: int) -> tuple[int, str, str, tuple[float, ...]]:
        context, depths = filler.build(n, inserts)
        user = meter.user_text(context, question)
        return meter.count(user), context, user, depths

    limit = target - budget
    base = measure(0)[0]
    if base > limit:
        return None
    top = len(filler.ends)

    def fits(n: int) -> bool:
        return measure(n)[0] <= limit

    # Prompt tokens grow almost one for one with filler tokens: gallop out from that estimate, then bisect.
    guess, step = min(limit - base, top), 8
    if fits(guess):
        lo, hi = guess, top + 1
        while lo + step <= top and fits(lo + step):
            lo, step = lo + step, step * 4
        hi = min(lo + step, top + 1)
    else:
        lo, hi = 0, guess
        while hi - step > 0 and not fits(hi - step):
            hi, step = hi - step, step * 4
        lo = max(hi - step, 0)
    while hi - lo > 1:  # invariant: lo fits, hi does not (or lies past the filler's end)
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    if lo >= top:  # Filler is sized to prevent this
        raise DataError(f"filler too short for a {target}-token prompt")
    tokens, context, user, depths = measure(lo)
    return Fitted(context=context, prompt=user, prompt_tokens=tokens, insert_depths=depths)
