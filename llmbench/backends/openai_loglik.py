"""Log-likelihoods from an OpenAI-compatible completions endpoint: the prompt echoed with its log-probs.

The prompt is sent as token ids (the span `continuation_span` built, as on every backend) with
`echo: true, logprobs: 1, max_tokens: 1`; the answer's `logprobs.token_logprobs` then holds one
log-probability per prompt token (the first is null) and `top_logprobs` the model's top token at
each, from which we read whether the continuation was greedy. vLLM's server answers this; a server
that refuses it (chat-only APIs) is asked once, and the task runs its generative variant instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from llmbench.backends.loglik import Span, continuation_span, scored, spans
from llmbench.backends.openai_wire import RETRY_STATUS, backoff_s
from llmbench.telemetry.timing import ms_since, now_ns
from llmbench.types import Loglikelihood, LoglikelihoodRequest

PROBE = LoglikelihoodRequest("llmbench-probe", "The sky is", " blue")


class EchoRefused(Exception):
    """The server answered without prompt log-probabilities."""


def body(model: str, span: Span) -> dict[str, Any]:
    return {
        "model": model,
        "prompt": list(span.ids),
        "max_tokens": 1,
        "temperature": 0.0,
        "echo": True,
        "logprobs": 1,
    }


def read_span(answer: Any, span: Span) -> tuple[list[float], bool]:
    """The continuation tokens' log-probabilities in an echoed answer, and whether each was the top token."""
    try:
        logprobs = answer["choices"][0]["logprobs"]
        values = logprobs["token_logprobs"]
        tokens = logprobs.get("tokens") or []
        tops = logprobs.get("top_logprobs") or []
    except (KeyError, IndexError, TypeError):
        raise EchoRefused("the answer holds no logprobs") from None
    if not isinstance(values, list) or len(values) < len(span.ids):
        raise EchoRefused("the answer holds no log-probabilities for the prompt")
    token_lps = [float(values[t]) for t in range(span.start, len(span.ids))]
    greedy = True
    for t in range(span.start, len(span.ids)):
        top = tops[t] if t < len(tops) else None
        if isinstance(top, dict) and top and t < len(tokens):
            greedy = greedy and max(top.values()) <= float(values[t]) + 1e-6
    return token_lps, greedy


def score(
    loop: Any,
    url: str,
    headers: dict[str, str],
    model: str,
    tokenizer: Any,
    requests: Sequence[LoglikelihoodRequest],
    concurrency: int,
    max_retries: int,
    timeout_s: float,
) -> Iterator[Loglikelihood]:
    prepared = list(zip(requests, spans(tokenizer, requests), strict=True))

    async def produce(emit: Callable[[Loglikelihood], None]) -> None:
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(headers=headers, limits=limits, timeout=timeout_s) as client:
            limit = asyncio.Semaphore(concurrency)

            async def one(req: LoglikelihoodRequest, span: Span | str) -> None:
                if isinstance(span, str):
                    emit(Loglikelihood(req.request_id, float("nan"), error=span))
                    return
                async with limit:
                    emit(await _one(client, url, model, req, span, max_retries))

            await asyncio.gather(*(one(req, span) for req, span in prepared))

    yield from loop.stream(produce)


async def _one(
    client: Any, url: str, model: str, req: LoglikelihoodRequest, span: Span, max_retries: int
) -> Loglikelihood:
    import httpx

    start = now_ns()
    error = "no answer"
    for attempt in range(max_retries + 1):
        try:
            response = await client.post(url, json=body(model, span))
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code == 200:
                try:
                    token_lps, greedy = read_span(response.json(), span)
                except (EchoRefused, ValueError) as exc:
                    return Loglikelihood(req.request_id, float("nan"), error=str(exc))
                return scored(req.request_id, span, token_lps, greedy, ms_since(start))
            error = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code not in RETRY_STATUS:
                break
            if attempt < max_retries:
                await asyncio.sleep(backoff_s(attempt, response.headers.get("retry-after")))
                continue
        if attempt < max_retries:
            await asyncio.sleep(backoff_s(attempt, None))
    return Loglikelihood(req.request_id, float("nan"), error=error)


def probe(loop: Any, url: str, headers: dict[str, str], model: str, tokenizer: Any, timeout_s: float) -> bool:
    """Whether the server returns prompt log-probabilities: one tiny echoed request."""
    if tokenizer is None:
        return False  # the span is built from the model's own tokens: no tokenizer, no scoring
    span = continuation_span(tokenizer, PROBE.context, PROBE.continuation)

    async def ask() -> bool:
        import httpx

        async with httpx.AsyncClient(headers=headers, timeout=timeout_s) as client:
            try:
                response = await client.post(url, json=body(model, span))
                if response.status_code != 200:
                    return False
                read_span(response.json(), span)
            except (httpx.HTTPError, EchoRefused, ValueError):
                return False
            return True

    return bool(loop.run(ask(), timeout=timeout_s + 5))
