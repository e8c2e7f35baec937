"""What came back for one OpenAI-compatible request, as a completion: its text up to a stop string, its
finish reason, its timings, and its token counts checked against what the harness saw.

The check needs the local tokenizer's count of the answer, which costs far more than the rest of a request's
handling, so it is never taken on the event loop that stamps other requests' tokens: an `Answer` leaves the
loop with the check still open, and `settle` closes a batch of them in the consuming thread, with one
batched call to the tokenizer (a fast tokenizer releases the GIL over a batch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from llmbench.backends.base import Completion, FinishReason, GenerationParams, GenerationRequest
from llmbench.backends.openai_wire import assembled_calls, finish_reason, prompt_chars, with_tools_chars
from llmbench.backends.server_claims import Counted, cached_prompt_tokens, checked_usage
from llmbench.scoring.reasoning import answer_start, cut_at_stop, opened_by_prompt, stop_in_answer
from llmbench.telemetry.timing import TokenClock
from llmbench.types import RequestTiming


@dataclass
class Answer:
    """A completion as it leaves the event loop; `counted` (not None): its usage is still to be checked, and its
    timing record is drawn once its token count is known (`settle`)."""

    completion: Completion
    usage: Any = None  # the server's usage block, as it came
    full_text: str = ""  # the answer before any stop string cut it: what the local tokenizer counts
    counted: Counted | None = None  # what the harness saw, less the local token count
    clock: TokenClock | None = None
    arrival_chars: list[tuple[int, int]] = field(default_factory=list)  # reasoning, answer characters
    answer_from: int | None = 0  # where the answer begins in `full_text` (None: reasoning never ended)


def stop_watch(
    params: GenerationParams, body: dict[str, Any], rendered: str | None
) -> Callable[[list[str]], bool] | None:
    """What watches a streamed answer for the stop strings held back from the server (`engine_stop`): True once
    one has come in the answer, after any reasoning. None where the server was sent them (or there are none)."""
    if not params.stop or "stop" in body:
        return None
    opened = opened_by_prompt(rendered, params.reasoning_markers)
    return lambda pieces: (
        stop_in_answer("".join(pieces), params.stop, params.reasoning_markers, opened) is not None
    )


def answer_of(
    request: GenerationRequest,
    body: dict[str, Any],
    hashes: tuple[str, str | None],
    result: dict[str, Any],
    error: str | None,
    clock: TokenClock,
) -> Answer:
    """The answer to `request` sent as `body` (its prompt hash and rendered prompt in `hashes`): text up to a
    stop string in its answer, finish reason; its usage check and timing record are left to `settle`."""
    params = request.params
    full = "".join(result.get("pieces", []))
    opened = opened_by_prompt(hashes[1], params.reasoning_markers)
    text, cut = cut_at_stop(full, params.stop, params.reasoning_markers, opened)
    reason: FinishReason = "error" if error else "stop" if cut else finish_reason(result.get("finish"))
    completion = Completion(
        request_id=request.request_id,
        text=text,
        finish_reason=reason,
        prompt_hash=hashes[0],
        rendered_prompt=hashes[1],
        error=error,
        attempts=result.get("attempts"),
        raw_head=result.get("raw_head") if error else None,
    )
    answer = Answer(completion, clock=clock, arrival_chars=result.get("arrival_chars", []))
    answer.answer_from = answer_start(full, params.reasoning_markers, opened)
    if error:
        return answer
    prompt = body.get("prompt", body.get("messages"))
    answer.counted = Counted(
        token_events=len(clock.token_ns),
        max_new_tokens=params.max_new_tokens,
        local_output_tokens=None,
        local_prompt_tokens=len(prompt) if isinstance(prompt, list) and "prompt" in body else None,
        prompt_chars=with_tools_chars(prompt_chars(prompt), body),
    )
    completion.tool_calls = assembled_calls(result)
    answer.usage, answer.full_text = result.get("usage"), full
    return answer


def settle(
    answers: Sequence[Answer], tokenizer: Any, redact: Callable[[Completion], Completion]
) -> list[Completion]:
    """The completions of `answers`, their usage checked (one tokenizer call for them all), timed and redacted."""
    open_ = [a for a in answers if a.counted is not None]
    counts = count_tokens(tokenizer, [a.full_text for a in open_])
    for answer, n in zip(open_, counts, strict=True):
        assert answer.counted is not None
        counted = replace(answer.counted, local_output_tokens=n)
        c = answer.completion
        c.prompt_tokens, c.output_tokens, c.warnings = checked_usage(answer.usage, counted)
        c.cached_prompt_tokens = cached_prompt_tokens(answer.usage, c.prompt_tokens)
    for answer in answers:
        if answer.clock is not None:
            answer.completion.timed(timing_of(answer))
    return [redact(a.completion) for a in answers]


def timing_of(answer: Answer) -> RequestTiming:
    """The answer's timing record. A stream does not say how many tokens a chunk carried: each counts one,
    unless the server's count is larger, which is then spread over the chunks (`tokens_estimated`). The
    reasoning's tokens are those of the chunks before the first answer token, and the reasoning's share (by
    characters) of a chunk that carried both."""
    clock = answer.clock
    assert clock is not None
    estimated = clock.spread(answer.completion.output_tokens)
    chars = answer.arrival_chars
    if answer.answer_from == 0 and not any(r for r, _ in chars):  # no reasoning, in text or channel
        record = clock.record()
    else:
        shares, first = reasoning_shares(chars, answer.answer_from)
        if first is None and answer.answer_from == 0:  # an answer of tool calls alone, after reasoning
            first = clock.output_at
        reasoning = round(sum(n * share for n, share in zip(clock.token_counts, shares, strict=False)))
        record = clock.record(reasoning, first)
    record.tokens_estimated = estimated
    return record


def reasoning_shares(
    arrival_chars: list[tuple[int, int]], answer_from: int | None
) -> tuple[list[float], int | None]:
    """Each arrival's share of reasoning, and the first arrival with answer text. `arrival_chars`: each arrival's
    characters in the reasoning channel and in the answer text, whose answer proper begins at character
    `answer_from` (after a marked block; None: never). An arrival without text goes with the phase it is in."""
    shares, first, seen = [], None, 0
    for i, (reasoning, text) in enumerate(arrival_chars):
        before = text if answer_from is None else min(text, max(0, answer_from - seen))
        seen += text
        if text > before and first is None:
            first = i
        total = reasoning + text
        shares.append((reasoning + before) / total if total else float(first is None))
    return shares, first


def count_tokens(tokenizer: Any, texts: list[str]) -> list[int | None]:
    """Each text's token count by the local tokenizer (no special tokens); None each where there is none."""
    if tokenizer is None or not texts:
        return [None] * len(texts)
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
