"""The one prompt builder of perf measurements: a sweep's numbered prompts, and the serving workloads'
prompts behind a shared prefix, built from a trace's blocks, or a chat's next message.

Every part of a prompt comes from `perfprompts` (exact token counts, distinct content per index),
so two prompts share exactly the parts they are meant to share. Token-id prompts are exact;
text prompts (for servers that take text) are built part by part, each part exact, so their total
may differ by a token where two parts meet, and a shared prefix is shared up to that token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from llmbench.data.perfprompts import PromptKind, make_prompt_ids, make_prompt_text
from llmbench.types import GenerationParams, GenerationRequest, Message

Prompt = tuple[int, ...] | str

# Index ranges, so the prompts of different parts never share their first tokens: unique parts use
# small indices; prefixes and trace blocks use theirs far above any count of requests.
PREFIX_BASE = 1 << 32
BLOCK_BASE = 1 << 33
HASH_ID_BITS = 63  # a trace's hash ids are below 2**63 (the trace reader refuses larger)


def block_index(replay: int, hash_id: int) -> int:
    """The prompt index of hash id `hash_id`'s block in replay `replay`: one of its own per pair.

    The replay takes the bits above every hash id, so no two (replay, hash id) pairs meet.
    """
    if not (0 <= hash_id < 1 << HASH_ID_BITS and replay >= 0):
        raise ValueError(f"hash id {hash_id} or replay {replay} out of range")
    return BLOCK_BASE + (replay << HASH_ID_BITS) + hash_id


def part_index(*parts: object) -> int:
    """A stable index below 2**31 for a named part of a prompt (a point's prefix group, a chat's turn)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


@dataclass
class PromptBuilder:
    """Builds the prompts of one perf sweep, saturation search or workload in the model's tokenizer, as ids
    or as text. Without a tokenizer (a dummy-weight architecture) prompts are random ids below `vocab_size`."""

    tokenizer: Any
    kind: PromptKind
    seed: int
    needs_text: bool
    vocab_size: int | None = None
    next_index: int = 0  # the index the next of `requests`' prompts gets
    # the blocks of the replay being built (keys are its own, so no other replay could reuse them)
    _blocks: dict[tuple[int, int], Prompt] = field(default_factory=dict)
    _blocks_replay: int | None = None

    def unique(self, n_tokens: int, index: int) -> Prompt:
        """A prompt of `n_tokens` that shares no prefix with any other index."""
        if self.needs_text:
            return make_prompt_text(self.tokenizer, n_tokens, self.seed, index, kind=self.kind)
        return make_prompt_ids(self.tokenizer, n_tokens, self.kind, self.seed, index, self.vocab_size)

    def requests(self, n: int, n_in: int, n_out: int, tag: str) -> list[GenerationRequest]:
        """`n` requests `perf-{tag}-{i}` whose prompts take the next indices in turn: no two share a prefix."""
        out = []
        for i in range(n):
            index, self.next_index = self.next_index, self.next_index + 1
            out.append(perf_request(f"perf-{tag}-{i}", self.unique(n_in, index), n_out))
        return out

    def skip(self, n: int) -> None:
        """Pass over `n` indices of `requests` (a resumed point's), keeping the prompts after them the same."""
        self.next_index += n

    def warmup(self, n: int, point_no: int, n_in: int, n_out: int) -> list[GenerationRequest]:
        """`n` warm-up requests of a workload point, each prompt its own: they warm no block the point measures."""
        return [
            perf_request(
                f"perf-{point_no}-warmup-{i}",
                self.unique(n_in, part_index(self.seed, point_no, "warmup", i)),
                n_out,
            )
            for i in range(n)
        ]

    def with_prefix(self, group: int, prefix_tokens: int, n_tokens: int, index: int) -> Prompt:
        """`group`'s prefix of `prefix_tokens`, then a suffix of this request's own: `n_tokens` in all."""
        prefix = self.unique(prefix_tokens, PREFIX_BASE + group)
        return _join(prefix, self.unique(n_tokens - prefix_tokens, index))

    def from_blocks(
        self, hash_ids: tuple[int, ...], block_tokens: int, n_tokens: int, index: int, replay: int = 0
    ) -> Prompt:
        """A prompt whose k-th block is the content of hash id k (same id, same block); cut or filled to `n_tokens`.

        Each `replay` (a whole number; one per point and repeat of a trace) gives the same hash ids
        content of its own, shared with no other replay. Blocks are kept for the current replay only.
        """
        if replay != self._blocks_replay:
            self._blocks.clear()
            self._blocks_replay = replay
        parts: list[Prompt] = []
        left = n_tokens
        for h in hash_ids:
            if left <= 0:
                break
            take = min(block_tokens, left)
            parts.append(self._block(block_index(replay, h), block_tokens, take))
            left -= take
        if left > 0:  # the trace's blocks cover less than its input length: the rest is the request's own
            parts.append(self.unique(left, index))
        prompt = parts[0]
        for part in parts[1:]:
            prompt = _join(prompt, part)
        return prompt

    def _block(self, key: int, block_tokens: int, take: int) -> Prompt:
        whole = self._blocks.get((key, block_tokens))
        if whole is None:
            whole = self._blocks[(key, block_tokens)] = self.unique(block_tokens, key)
        if take == block_tokens:
            return whole
        if isinstance(whole, tuple):
            return whole[:take]
        return self.unique(take, key)  # the same draws, cut earlier: the block's text up to `take` tokens

    def user_message(self, n_tokens: int, index: int) -> str:
        """A chat message of `n_tokens` tokens (before the chat template adds its own)."""
        return make_prompt_text(self.tokenizer, n_tokens, self.seed, index, kind=self.kind)


def _join(head: Prompt, tail: Prompt) -> Prompt:
    if isinstance(head, tuple) and isinstance(tail, tuple):
        return head + tail
    return str(head) + str(tail)


def perf_request(
    request_id: str, prompt: Prompt | tuple[Message, ...], n_out: int, cache_salt: str | None = None
) -> GenerationRequest:
    """A perf request: exactly `n_out` tokens (end of sequence ignored), greedy."""
    params = GenerationParams(max_new_tokens=n_out, ignore_eos=True, temperature=0.0)
    if isinstance(prompt, str):
        return GenerationRequest(request_id, params, prompt=prompt, cache_salt=cache_salt)
    if prompt and isinstance(prompt[0], dict):
        return GenerationRequest(request_id, params, messages=prompt, cache_salt=cache_salt)  # type: ignore[arg-type]
    return GenerationRequest(request_id, params, prompt_token_ids=prompt, cache_salt=cache_salt)  # type: ignore[arg-type]


@dataclass
class Conversation:
    """One chat of a multi-turn workload: its messages so far, the model's answers included."""

    messages: list[Message] = field(default_factory=list)

    def ask(self, text: str) -> tuple[Message, ...]:
        """The prompt of the next turn: the whole chat so far and the new user message."""
        return (*self.messages, {"role": "user", "content": text})

    def answered(self, question: str, answer: str) -> None:
        self.messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
