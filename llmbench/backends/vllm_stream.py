"""One request streamed through vLLM's async engine: its sampling parameters, each engine output stamped as
it comes (an output may carry several tokens), stop strings watched in the answer only, and its completion
with its timing record.

A quality run asks for the finished output only (`final_only`): the engine then makes no output object per
step and no coroutine wakes per token, work that on a busy host comes out of the engine's own time. The
request's first and last token are then the engine core's stamps of the steps that made them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from llmbench.backends.base import (
    Completion,
    FinishReason,
    GenerationParams,
    GenerationRequest,
    decode_output,
    engine_stop,
    reasoning_token_count,
    token_ids_hash,
)
from llmbench.backends.common import first_line
from llmbench.scoring.reasoning import cut_at_stop, stop_in_answer
from llmbench.telemetry.timing import TokenClock, now_ns

_FINISH: dict[str | None, FinishReason] = {"stop": "stop", "length": "length"}


def sampling_params(
    params: GenerationParams, detokenize: bool, reasons: bool, final_only: bool = False
) -> Any:
    """vLLM's sampling parameters; stop strings go to the engine only where no reasoning can hold them;
    `final_only`: one output when the request finishes, instead of one per step, unless stop strings withheld
    from the engine must be watched as the text comes."""
    from vllm.sampling_params import RequestOutputKind, SamplingParams, StructuredOutputsParams

    stop = engine_stop(params, can_watch=detokenize, reasons=reasons)
    watch = stop_withheld(params, stop, detokenize)
    return SamplingParams(
        max_tokens=params.max_new_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k or 0,
        stop=stop,
        seed=params.seed,
        ignore_eos=params.ignore_eos,
        structured_outputs=StructuredOutputsParams(json=params.json_schema) if params.json_schema else None,
        output_kind=RequestOutputKind.FINAL_ONLY if final_only and not watch else RequestOutputKind.DELTA,
        detokenize=detokenize,
    )


def stop_withheld(params: GenerationParams, engine_stops: list[str] | None, detokenize: bool) -> bool:
    """Whether the request's stop strings were withheld from the engine, to be watched here in the answer."""
    return bool(params.stop) and engine_stops is None and detokenize


def finished_only(sampling: Any) -> bool:
    """Whether the engine sends the request's finished output only."""
    from vllm.sampling_params import RequestOutputKind

    return bool(sampling.output_kind == RequestOutputKind.FINAL_ONLY)


@dataclass
class Streamed:
    """What the engine yielded for one request."""

    clock: TokenClock
    token_ids: list[int] = field(default_factory=list)
    finish: str | None = None
    cached: int = 0  # prompt tokens the prefix cache held
    text: str = ""  # the engine's own incremental text, watched for stop strings
    opened: str | None = None  # the closing tag of a reasoning block the prompt opened
    stopped: bool = False  # a stop string came in the answer: the request was aborted there
    error: str | None = None


async def stream_one(
    engine: Any,
    params: GenerationParams,
    prompt: dict[str, Any],
    sampling: Any,
    engine_id: str,
    out: Streamed,
) -> None:
    """Stream one request, stamping each engine output with the tokens it carried; a stop string in the answer
    (withheld from the engine, see `engine_stop`) aborts it there. Errors land in `out.error`."""
    watch = stop_withheld(params, sampling.stop, bool(sampling.detokenize))
    final_only = finished_only(sampling)
    try:
        async for output in engine.generate(prompt, sampling, engine_id):
            at = now_ns()
            out.cached = max(out.cached, output.num_cached_tokens or 0)
            for step in output.outputs[:1]:
                if final_only:
                    out.token_ids = list(step.token_ids)
                    engine_span(out.clock, output.metrics, len(out.token_ids), at)
                elif step.token_ids:
                    out.clock.token(at, len(step.token_ids))
                    out.token_ids += step.token_ids
                out.finish = step.finish_reason or out.finish
                out.text += step.text or ""
            if output.finished:
                out.clock.finish(at)
            elif (
                watch
                and stop_in_answer(out.text, params.stop, params.reasoning_markers, out.opened) is not None
            ):
                out.clock.finish(at)
                out.stopped, out.finish = True, "stop"
                await engine.abort(engine_id)
                break
    except asyncio.CancelledError:
        await engine.abort(engine_id)
        raise
    except Exception as exc:  # one bad request must not end the run
        out.error = f"{type(exc).__name__}: {first_line(exc)}"
    out.clock.finish()


def engine_span(clock: TokenClock, stats: Any, tokens: int, seen_ns: int) -> None:
    """A finished output's first and last token at the engine core's stamps (`RequestStateStats`, kept where the
    engine logs stats; seconds of the host's monotonic clock, which `now_ns` reads too). Without usable stamps
    the record keeps no arrivals: no TTFT rather than one taken at the end."""
    first, last = getattr(stats, "first_token_ts", 0.0), getattr(stats, "last_token_ts", 0.0)
    if first and last:
        clock.engine_span(round(first * 1e9), round(last * 1e9), tokens, seen_ns)


def completion_of(
    request: GenerationRequest,
    ids: list[int],
    rendered: str | None,
    out: Streamed,
    tokenizer: Any,
    eos: set[int],
) -> Completion:
    """The completion of a streamed request: our decoding of its final ids (not the engine's incremental text,
    which drops what follows a byte that forms no character, where Transformers writes U+FFFD), cut at a stop
    string in its answer, with its timing record."""
    params, opened = request.params, out.opened
    whole, _ = decode_output(tokenizer, out.token_ids, eos, ())
    text, cut = cut_at_stop(whole, params.stop, params.reasoning_markers, opened)
    error = out.error
    reason: FinishReason = (
        "error" if error else "stop" if cut or out.stopped else _FINISH.get(out.finish, "stop")
    )
    if out.finish == "abort" and not out.stopped:
        reason, error = "error", error or "the engine aborted the request"
    reasoning = reasoning_token_count(tokenizer, out.token_ids, whole, params.reasoning_markers, opened)
    completion = Completion(
        request_id=request.request_id,
        text=text,
        prompt_tokens=len(ids),
        output_tokens=len(out.token_ids),
        finish_reason=reason,
        prompt_hash=token_ids_hash(ids),
        output_hash=None if error else token_ids_hash(out.token_ids),
        rendered_prompt=rendered,
        error=error,
    )
    if params.reasoning_effort is not None:
        completion.warnings.append("reasoning_effort is for servers: the in-process vLLM engine ignores it")
    return completion.timed(out.clock.record(reasoning))
