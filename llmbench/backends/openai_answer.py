"""What came back for one OpenAI-compatible request, as a completion: its text up to a stop string, its
finish reason, its timings, and its token counts checked against what the harness saw.

The check needs the local tokenizer's count of the answer, which costs far more than the rest of a request's
handling, so it is never taken on the event loop that stamps other requests' tokens: an `Answer` leaves the
loop with the check still open, and `settle` closes a batch of them in the consuming thread, with one
batched call to the tokenizer (a fast tokenizer releases the GIL over a batch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from llmbench.backends.base import Completion, FinishReason, GenerationRequest, apply_stop
from llmbench.backends.openai_wire import finish_reason, prompt_chars
from llmbench.backends.server_claims import Counted, checked_usage
from llmbench.telemetry.timing import TokenClock


@dataclass
class Answer:
    """A completion as it leaves the event loop; `counted` (not None): its usage is still to be checked."""

    completion: Completion
    usage: Any = None  # the server's usage block, as it came
    full_text: str = ""  # the answer before any stop string cut it: what the local tokenizer counts
    counted: Counted | None = None  # what the harness saw, less the local token count


def answer_of(
    request: GenerationRequest,
    body: dict[str, Any],
    hashes: tuple[str, str | None],
    result: dict[str, Any],
    error: str | None,
    clock: TokenClock,
) -> Answer:
    """The answer to `request` sent as `body` (its prompt hash and rendered prompt in `hashes`): text up to a
    stop string, finish reason, timings; its usage check is left to `settle`."""
    full = "".join(result.get("pieces", []))
    text, cut = apply_stop(full, request.params.stop)
    reason: FinishReason = "error" if error else "stop" if cut else finish_reason(result.get("finish"))
    completion = Completion(
        request_id=request.request_id,
        text=text,
        finish_reason=reason,
        ttft_ms=clock.ttft_ms,
        latency_ms=clock.latency_ms,
        itl_ms=clock.itl_ms,
        prompt_hash=hashes[0],
        rendered_prompt=hashes[1],
        error=error,
        attempts=result.get("attempts"),
        raw_head=result.get("raw_head") if error else None,
    )
    if error:
        return Answer(completion)
    prompt = body.get("prompt", body.get("messages"))
    counted = Counted(
        token_events=len(clock.token_ns),
        max_new_tokens=request.params.max_new_tokens,
        local_output_tokens=None,
        local_prompt_tokens=len(prompt) if isinstance(prompt, list) and "prompt" in body else None,
        prompt_chars=prompt_chars(prompt),
    )
    return Answer(completion, result.get("usage"), full, counted)


def settle(
    answers: Sequence[Answer], tokenizer: Any, redact: Callable[[Completion], Completion]
) -> list[Completion]:
    """The completions of `answers`, their usage checked (one tokenizer call for them all) and redacted."""
    open_ = [a for a in answers if a.counted is not None]
    counts = count_tokens(tokenizer, [a.full_text for a in open_])
    for answer, n in zip(open_, counts, strict=True):
        assert answer.counted is not None
        counted = replace(answer.counted, local_output_tokens=n)
        c = answer.completion
        c.prompt_tokens, c.output_tokens, c.warnings = checked_usage(answer.usage, counted)
    return [redact(a.completion) for a in answers]


def count_tokens(tokenizer: Any, texts: list[str]) -> list[int | None]:
    """Each text's token count by the local tokenizer (no special tokens); None each where there is none."""
    if tokenizer is None or not texts:
        return [None] * len(texts)
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
