"""The backend interface: a batch of generation requests in, completions with their timings out.

A backend never scores. It applies the chat template (or the server does), generates, and
reports per request what a user of `vllm bench` would expect: time to first token measured at
the token, end-to-end latency, inter-token latencies, and token counts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from llmbench.hashing import stable_hash, token_ids_hash
from llmbench.registry import Registry
from llmbench.results.blocks import BackendFacts
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
    # modules they import (all read with getattr: optional).

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


def apply_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` at the earliest stop sequence; returns the text and whether one was found."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def decode_output(
    tokenizer: Any, token_ids: Sequence[int], drop_ids: Collection[int], stop: Sequence[str]
) -> tuple[str, bool]:
    """The text of generated token ids, written the same way by every backend that has the ids.

    The whole sequence is decoded at once, so bytes that form no character come out as U+FFFD where
    the tokenizer writes them (an incremental detokenizer may instead drop the rest of the text);
    end-of-sequence ids and special tokens are left out, and the text is cut at the first stop string.
    Returns the text and whether a stop string cut it.
    """
    if tokenizer is None:
        return "", False
    kept = [t for t in token_ids if t not in drop_ids]
    return apply_stop(str(tokenizer.decode(kept, skip_special_tokens=True)), stop)


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
    "apply_stop",
    "backends",
    "decode_output",
    "scores_loglikelihood",
    "stable_hash",
    "token_ids_hash",
]
