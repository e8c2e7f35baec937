"""The backend interface: a batch of generation requests in, completions with their timings out.

A backend never scores. It applies the chat template (or the server does), generates, and
reports per request what a user of `vllm bench` would expect: time to first token measured at
the token, end-to-end latency, inter-token latencies, and token counts.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from llmbench.hashing import stable_hash, token_ids_hash
from llmbench.registry import Registry
from llmbench.results.blocks import BackendFacts
from llmbench.scoring.reasoning import Markers, answer_start, cut_at_stop
from llmbench.types import (
    Completion,
    FinishReason,
    GenerationParams,
    GenerationRequest,
    Loglikelihood,
    LoglikelihoodRequest,
    Message,
)

# What `load()` returns: a typed model, written as the results file's `backend` block as it is.
BackendInfo = BackendFacts


@runtime_checkable
class Backend(Protocol):
    """A loaded model that turns requests into completions."""

    name: ClassVar[str]
    # Backends that never touch a local GPU set `uses_gpu = False`; `needs_gpu = True` where they cannot run
    # without one (unless one of their `cpu_builds` distributions is installed), `requires` names the
    # modules they import, `seeded_sampling_repeats = True` where a sampled request with a seed gives the same
    # tokens again, whatever else is batched with it (the generation cache keeps those); all read with
    # getattr: optional.

    def load(self) -> BackendInfo:
        """Load weights and tokenizer; returns what was loaded and how long it took."""
        ...

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        concurrency: int | None = None,
        arrival_offsets_s: Sequence[float] | None = None,
    ) -> Iterator[Completion]:
        """Generate every request, yielding completions as they finish (any order).

        `concurrency` caps the requests in flight (the batch size for in-process batching);
        None lets the backend batch as it likes (quality runs). `arrival_offsets_s`, one per
        request, submits each request that many seconds after the call (request-rate mode), with
        no cap on requests in flight unless `concurrency` is given (see `pacing` for the clocks).
        """
        ...

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer, or None where the backend has none (a remote API)."""
        ...

    def close(self) -> None:
        """Release the model and its memory."""
        ...


backends: Registry[type[Backend]] = Registry("backend")


@runtime_checkable
class ScoresLoglikelihood(Protocol):
    """A backend that can also score continuations by log-probability (multiple-choice tasks).

    Optional: a backend without `loglikelihood` (or whose `can_score_loglikelihood()` says no, as a
    chat-only API does) runs the generative variant of those tasks instead.
    """

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> Iterator[Loglikelihood]:
        """Score every request, yielding results as they finish (any order)."""
        ...


@runtime_checkable
class OpensConnections(Protocol):
    """A backend that talks to a server over connections it can open ahead of time (optional)."""

    def open_connections(self, n: int) -> int:
        """Have at least `n` connections open and idle, ready for requests; returns how many it opened."""
        ...


def scores_loglikelihood(backend: object) -> bool:
    """Whether `backend` can score continuations by log-probability, asked once per task."""
    if not isinstance(backend, ScoresLoglikelihood):
        return False
    can = getattr(backend, "can_score_loglikelihood", None)
    return bool(can()) if callable(can) else True


def decode_output(
    tokenizer: Any,
    token_ids: Sequence[int],
    drop_ids: Collection[int],
    stop: Sequence[str],
    markers: Markers = (),
    opened: str | None = None,
) -> tuple[str, bool]:
    """The text of generated token ids, written the same way by every backend that has the ids.

    The whole sequence is decoded at once, so bytes that form no character come out as U+FFFD where
    the tokenizer writes them (an incremental detokenizer may instead drop the rest of the text);
    end-of-sequence ids and special tokens are left out, and the text is cut at the first stop string
    in its answer (none fires inside reasoning between `markers`; `opened`: see `answer_start`).
    Returns the text and whether a stop string cut it.
    """
    if tokenizer is None:
        return "", False
    kept = [t for t in token_ids if t not in drop_ids]
    return cut_at_stop(str(tokenizer.decode(kept, skip_special_tokens=True)), stop, markers, opened)


def reasoning_token_count(
    tokenizer: Any, token_ids: Sequence[int], text: str, markers: Markers, opened: str | None
) -> int:
    """How many of the first generated tokens are reasoning: those through the end of the block(s) the output
    `text` (their decoding) starts with, all of them while one is still open; 0 without reasoning. The least
    prefix whose decoding already ends the reasoning where the whole does, found by bisection."""
    start = answer_start(text, markers, opened) if markers and tokenizer is not None else 0
    if start is None:
        return len(token_ids)
    if start == 0:
        return 0

    def ended(n: int) -> bool:
        at = answer_start(
            str(tokenizer.decode(list(token_ids[:n]), skip_special_tokens=True)), markers, opened
        )
        return at is not None and at >= start

    return fewest_holding(len(token_ids), ended)


def fewest_holding(n: int, holds: Callable[[int], bool]) -> int:
    """The fewest of 1..n for which `holds`, false then true as n grows, is true (n where it never is): the
    shortest prefix of an output that decodes to what it is asked about, in log2(n) decodes."""
    return min(n, 1 + bisect_left(range(1, n + 1), True, key=holds))


def engine_stop(params: GenerationParams, can_watch: bool, reasons: bool = False) -> list[str] | None:
    """The stop strings an engine may apply itself: all of them, unless the request may reason (`reasons`: the
    model's chat template writes a reasoning block or its config says it reasons; or thinking was asked for)
    and the backend can watch the answer for them, since a stop string must not fire inside reasoning. Models
    that do not reason keep the engine's own stop: it ends the request at once, with no token past the stop."""
    asked = params.enable_thinking or params.reasoning_effort is not None
    may_reason = params.enable_thinking is not False and (reasons or asked)
    if not params.stop or (params.reasoning_markers and can_watch and may_reason):
        return None
    return list(params.stop)


__all__ = [
    "Backend",
    "BackendInfo",
    "Completion",
    "FinishReason",
    "GenerationParams",
    "GenerationRequest",
    "Loglikelihood",
    "LoglikelihoodRequest",
    "Message",
    "ScoresLoglikelihood",
    "backends",
    "decode_output",
    "engine_stop",
    "fewest_holding",
    "scores_loglikelihood",
    "stable_hash",
    "token_ids_hash",
]
