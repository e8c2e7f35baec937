"""Prompts of an exact token length for performance sweeps, in the model's own tokenizer.

Two kinds: "random" draws ids from the ordinary vocabulary (no special or added tokens); "text"
cuts a built-in English passage. Every prompt starts with tokens derived from its index, so no two
prompts of a sweep share a prefix and a prefix cache cannot flatter the figures. Backends that take
text (an OpenAI-compatible server) get `make_prompt_text`, which searches for a string that
re-tokenizes to exactly the wanted length.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Literal

PromptKind = Literal["random", "text"]

CORPUS = """\
The harbour town woke slowly on winter mornings. Fishing boats came in before sunrise, their decks \
shining with ice, and the market opened as soon as the first crates reached the quay. Traders argued \
about prices in low voices while gulls circled above the stalls, waiting for anything left unguarded.

A mile inland, the old observatory stood on a hill covered in heather. Its telescope had not been \
used for decades, but the building still held a library of star charts, letters and notebooks. A \
retired teacher kept the keys and opened the doors every Saturday for anyone curious enough to climb \
the path. Children came to look at the brass instruments; adults came to read the notebooks, in \
which three generations of astronomers had recorded comets, eclipses and the weather of every night.

Engineers who build bridges think first about loads and only later about beauty. A bridge must carry \
its own weight, the traffic that crosses it, the wind that pushes against it and the slow movement \
of the ground beneath its piers. Steel expands in summer and contracts in winter, so joints are left \
in the deck to let it breathe. The most elegant designs are often the ones in which every part does \
exactly one job and nothing is wasted.

In the spring the river rose and covered the lower fields. Farmers moved their animals to higher \
ground and waited, as their parents had done, for the water to fall again. When it did, it left \
behind a layer of dark silt that made the soil rich for the rest of the year. Nobody complained \
about the floods for long; they were part of the rhythm of the valley, as certain as the seasons.

Good software is written twice: once to understand the problem and once to solve it well. The first \
version teaches the programmer where the difficulties lie, which data must flow where, and which \
parts will change most often. The second version puts clear boundaries around those parts, names \
things for what they do, and leaves the next reader a map rather than a maze.
"""

_caches: dict[int, tuple[list[int], list[int]]] = {}
_safe_caches: dict[int, list[int]] = {}


def _vocab_and_corpus(tokenizer: Any, vocab_size: int | None = None) -> tuple[list[int], list[int]]:
    """The ordinary vocabulary ids and the corpus's ids for this tokenizer (cached per tokenizer).

    Without a tokenizer (a dummy-weight run of a bare architecture) every id below `vocab_size`
    is ordinary and there is no corpus.
    """
    if tokenizer is None:
        if not vocab_size:
            raise ValueError("prompts without a tokenizer need the architecture's vocab_size")
        return list(range(vocab_size)), []
    key = id(tokenizer)
    if key not in _caches:
        special = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
        vocab = [i for i in range(tokenizer.vocab_size) if i not in special]
        corpus = list(tokenizer.encode(CORPUS, add_special_tokens=False))
        _caches[key] = (vocab, corpus)
    return _caches[key]


def _index_prefix(vocab: Sequence[int], seed: int, index: int) -> list[int]:
    """Two tokens that encode (seed, index) in the vocabulary: distinct for index < len(vocab)**2."""
    v = len(vocab)
    code = (index + seed * 7919) % (v * v)
    return [vocab[code // v], vocab[code % v]]


def make_prompt_ids(
    tokenizer: Any, n_tokens: int, kind: PromptKind, seed: int, index: int, vocab_size: int | None = None
) -> tuple[int, ...]:
    """Exactly `n_tokens` prompt ids; the same arguments always give the same prompt.

    `tokenizer` may be None for "random" prompts when `vocab_size` is given (architecture-only runs).
    """
    if n_tokens < 1:
        raise ValueError(f"a prompt needs at least one token, not {n_tokens}")
    if tokenizer is None and kind != "random":
        raise ValueError(f"'{kind}' prompts need the model's tokenizer; without one use 'random'")
    vocab, corpus = _vocab_and_corpus(tokenizer, vocab_size)
    rng = random.Random(f"{seed}:{index}:{kind}")
    ids = _index_prefix(vocab, seed, index)
    if kind == "random":
        ids += rng.choices(vocab, k=max(0, n_tokens - len(ids)))
    elif kind == "text":
        start = rng.randrange(len(corpus))
        while len(ids) < n_tokens:
            ids += corpus[start:]
            start = 0
    else:
        raise ValueError(f"unknown prompt kind {kind!r}: use 'random' or 'text'")
    return tuple(ids[:n_tokens])


def count_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False))


def _text_safe_vocab(tokenizer: Any) -> list[int]:
    """Ordinary ids that decode on their own to printable ASCII: random text that survives re-encoding."""
    key = id(tokenizer)
    if key not in _safe_caches:
        vocab, _ = _vocab_and_corpus(tokenizer)
        pieces = tokenizer.batch_decode([[i] for i in vocab])
        safe = [
            i for i, p in zip(vocab, pieces, strict=True) if p.strip() and p.isascii() and p.isprintable()
        ]
        _safe_caches[key] = safe if len(safe) >= 64 else vocab
    return _safe_caches[key]


def make_prompt_text(tokenizer: Any, n_tokens: int, seed: int, index: int, kind: PromptKind = "text") -> str:
    """A string that tokenizes (without special tokens) to exactly `n_tokens`.

    Decoding ids and encoding again rarely gives back the same count (pieces merge across
    boundaries), so the number of decoded ids is corrected first; then the longest prefix that is
    still too short grows one character at a time until the count is exact.
    """
    if kind == "random":
        rng = random.Random(f"{seed}:{index}:text")
        safe = _text_safe_vocab(tokenizer)
        ids = _index_prefix(safe, seed, index) + rng.choices(safe, k=n_tokens * 2 + 16)
    else:
        ids = list(make_prompt_ids(tokenizer, n_tokens * 2 + 16, kind, seed, index))
    full = tokenizer.decode(ids, skip_special_tokens=True)
    k, tried = n_tokens, set[int]()
    under = ""  # the longest candidate that is still too short
    while k not in tried and len(tried) < 32:
        tried.add(k)
        text = tokenizer.decode(ids[:k], skip_special_tokens=True)
        count = count_tokens(tokenizer, text)
        if count == n_tokens:
            return text
        if count < n_tokens and len(text) > len(under) and full.startswith(text):
            under = text
        k = min(len(ids), max(1, k + n_tokens - count))
    return _grow_to_count(tokenizer, under, full[len(under) :], n_tokens)


def _grow_to_count(tokenizer: Any, text: str, rest: str, n_tokens: int) -> str:
    """Append characters of `rest` until the count is exact; short pads cover a character that jumps two."""
    for ch in rest:
        count = count_tokens(tokenizer, text + ch)
        if count == n_tokens:
            return text + ch
        if count > n_tokens:
            for pad in (" a", "a", " x", "x", " ", ".", ","):
                if count_tokens(tokenizer, text + pad) == n_tokens:
                    return text + pad
            break
        text += ch
    raise ValueError(f"no text of exactly {n_tokens} tokens found for this tokenizer")
