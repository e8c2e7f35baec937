"""Any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, Ollama, hosted APIs), streamed and timed.

Routing: chat messages go to /v1/chat/completions (the server applies its chat template) unless
`api.endpoint` is `completions`, in which case we render the chat with the local tokenizer and send
the text; plain prompts go to /v1/completions; token-id prompts go to /v1/completions as a list of
ids (vLLM and SGLang accept that), and where a server refuses them with a 4xx we decode the ids with
the local tokenizer and send the text instead, for the rest of the run.

Managed mode: with no `api.base_url` and a local model directory, `load()` starts a vLLM server
for it on 127.0.0.1 (see `server.py`) and `close()` stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from llmbench.backends.base import BackendInfo, Completion, GenerationRequest, stable_hash, token_ids_hash
from llmbench.backends.common import (
    BackgroundLoop,
    chat_template_hash,
    load_tokenizer,
    model_reasons,
    render_chat,
    weights_bytes,
)
from llmbench.backends.managed_server import ManagedVLLMServer, fetch_server_metrics, histogram_quantile
from llmbench.backends.openai_answer import Answer, answer_of, settle, stop_watch
from llmbench.backends.openai_connect import api_url, auth_header, served_models, unserved_model
from llmbench.backends.openai_stream import Exchange, stream_answer
from llmbench.backends.openai_wire import (
    Retryable,
    TokenIdsRefused,
    backoff_s,
    final_error,
    last_try,
    sampling,
    tool_fields,
)
from llmbench.backends.pacing import Pacer, Submission
from llmbench.backends.prefix_cache import (
    PrefixCacheCounters,
    PrefixCacheState,
    server_counters,
    server_state,
)
from llmbench.backends.rate_limits import RateControl, tokens_asked
from llmbench.backends.server_claims import Redactor
from llmbench.config.models import ModelConfig
from llmbench.errors import BackendError, UserInputError
from llmbench.scoring.reasoning import opened_by_prompt
from llmbench.telemetry.timing import TokenClock, ms_since, now_ns
from llmbench.types import Loglikelihood, LoglikelihoodRequest

__all__ = ["OpenAIBackend", "fetch_server_metrics", "histogram_quantile"]

HANDOFF_S = 0.05  # completions cross to the caller's thread in batches (see BackgroundLoop.stream)
_Body = tuple[str, dict[str, Any], str, str | None]  # route, JSON body, prompt hash, rendered prompt


class OpenAIBackend:
    """Streams each request from an OpenAI-compatible endpoint, timing the first content chunk and each after."""

    name: ClassVar[str] = "openai"

    def __init__(self, model: ModelConfig, model_path: str) -> None:
        self.config = model
        self.model_path = model_path
        self.base_url: str | None = model.api.base_url
        self._server: ManagedVLLMServer | None = None
        self._tokenizer: Any = None
        self._headers: dict[str, str] = {}
        self._loop: BackgroundLoop | None = None
        self._ids_as_text = False
        self._redact = Redactor()
        self._echoes: bool | None = None  # whether the server returns prompt log-probabilities
        self._client: Any = None  # the run's one connection pool (openai_pool), from load to close
        self._rates = RateControl(model.rate_limits)  # pacing and the adaptive cap, across every call

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def _reasons(self) -> bool:
        """Whether the model may reason: stop strings are then watched in the answer (see `engine_stop`)."""
        return model_reasons(self.config, self._tokenizer)

    def load(self) -> BackendInfo:
        cfg = self.config
        key_header, self._redact = auth_header(cfg)
        self._headers = {"Content-Type": "application/json"} | key_header
        local = Path(self.model_path).is_dir()
        start = now_ns()
        if cfg.tokenizer or local:
            self._tokenizer = load_tokenizer(cfg, cfg.tokenizer or self.model_path)
        if self.base_url is None:
            if not local:
                raise UserInputError(
                    f"model '{cfg.name}': the openai backend needs api.base_url, or a local model directory to serve"
                )
            self._server = ManagedVLLMServer(cfg, self.model_path)
            self.base_url = self._server.__enter__()
        from llmbench.backends.openai_pool import client_loop, open_pool

        self._loop = BackgroundLoop("llmbench-openai", client_loop())
        self._rates = RateControl(cfg.rate_limits)  # its waits belong to this loop
        self._client = self._loop.run(open_pool(self._headers, cfg.api))
        try:
            served = served_models(self.base_url, self._headers, cfg.api, self._redact)
            if served and self._server is None and cfg.model not in served:
                raise UserInputError(unserved_model(cfg.model, self.base_url, served))
        except BaseException:
            self.close()
            raise
        return BackendInfo(
            backend=self.name,
            model=cfg.model,
            load_time_s=ms_since(start) / 1e3,
            load_state=self._server.load_state() if self._server is not None else None,
            chat_template_hash=chat_template_hash(self._tokenizer),
            max_batch_size=cfg.api.concurrency,
            weights_bytes=weights_bytes(self.model_path) if local else None,
            # a server we started runs on this host's GPUs; one we were pointed at may run anywhere
            gpus=list(range(cfg.tensor_parallel_size)) if self._server is not None else None,
            takes_text=cfg.api.endpoint == "chat",
            dtype=self._server.served_dtype() if self._server is not None else None,
            server_url=self.base_url,
            extra={
                "base_url": self._redact(self.base_url or ""),
                "managed": self._server is not None,
                "endpoint": cfg.api.endpoint,
            }
            | ({"served_models": served} if served else {}),
        )

    def _url(self, route: str) -> str:
        assert self.base_url is not None
        return api_url(self.base_url, route)

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        concurrency: int | None = None,
        arrival_offsets_s: Sequence[float] | None = None,
    ) -> Iterator[Completion]:
        if self._loop is None or self._client is None:
            raise BackendError("generate called before load")
        if arrival_offsets_s is not None and len(arrival_offsets_s) != len(requests):
            raise ValueError("arrival_offsets_s needs one offset per request")
        # Open-loop arrivals go out on schedule, uncapped unless a cap is given (as `vllm bench serve`
        # without --max-concurrency); a closed loop is capped by the call, else by api.concurrency.
        cap = concurrency or (None if arrival_offsets_s is not None else self.config.api.concurrency)
        # Render and hash every prompt before the first request goes out: none of that work may fall
        # inside a timed window or hold up the event loop that stamps other requests' chunks.
        bodies = [self._prepared(r) for r in requests]

        client = self._client

        async def produce(emit: Callable[[Answer], None]) -> None:
            pacer = Pacer(cap, arrival_offsets_s)

            async def one(i: int) -> None:
                async with pacer.slot(i) as sent:
                    body = bodies[i]
                    if isinstance(body, Completion):  # the prompt could not be rendered
                        emit(Answer(body))
                        return
                    done = await self._complete(client, requests[i], body, sent)
                    done.completion.queue_ms = sent.queue_ms
                    emit(done)

            await asyncio.gather(*(one(i) for i in range(len(requests))))

        # Each batch's usage check (the local tokenizer's count) and redaction happen here, in the
        # caller's thread, off the event loop that stamps the tokens of the requests still in flight.
        for answers in self._loop.stream_batches(produce, batch_s=HANDOFF_S):
            yield from settle(answers, self._tokenizer, self._redacted)

    def open_connections(self, n: int) -> int:
        """Have `n` connections to the server open and idle in the run's pool; how many it opened."""
        if self._loop is None or self._client is None:
            return 0
        return self._loop.run(self._client.warm(self._url("/completions"), n))

    def prefix_cache_state(self) -> PrefixCacheState:
        """What the server's /metrics say; a server's setting cannot be switched from here."""
        if self.base_url is None:
            return PrefixCacheState(None, False, "no server")
        return server_state(self.base_url, self.config.api.first_token_timeout_s)

    def prefix_cache_counters(self) -> PrefixCacheCounters | None:
        return (
            None
            if self.base_url is None
            else server_counters(self.base_url, self.config.api.first_token_timeout_s)
        )

    def can_score_loglikelihood(self) -> bool:
        """Whether the server echoes prompt log-probabilities (vLLM's does); asked once per load."""
        if self._loop is None:
            return False
        if self._echoes is None:
            from llmbench.backends.openai_loglik import probe

            api = self.config.api
            self._echoes = probe(
                self._loop,
                self._url("/completions"),
                self._headers,
                self.config.model,
                self._tokenizer,
                api.first_token_timeout_s,
            )
        return self._echoes

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> Iterator[Loglikelihood]:
        """Each continuation's log-probability from the completions endpoint's echoed prompt log-probs."""
        if self._loop is None:
            raise BackendError("loglikelihood called before load")
        from llmbench.backends.openai_loglik import score

        api = self.config.api
        for result in score(
            self._loop,
            self._url("/completions"),
            self._headers,
            self.config.model,
            self._tokenizer,
            requests,
            api.concurrency,
            api.max_retries,
            api.request_timeout_s,
        ):
            if result.error is not None:
                result.error = self._redact(result.error)
            yield result

    def _redacted(self, c: Completion) -> Completion:
        """The completion with the API key and any Authorization value masked in every text it records."""
        if c.error is not None:
            c.error = self._redact(c.error)
        c.text = self._redact(c.text)
        c.warnings = self._redact.all(c.warnings)
        c.tool_calls = [replace(t, arguments=self._redact(t.arguments)) for t in c.tool_calls]
        return c

    def _prepared(self, request: GenerationRequest) -> _Body | Completion:
        """The request's route and body, or an error completion where its prompt cannot be rendered."""
        try:
            return self._request_body(request)
        except (BackendError, UserInputError) as exc:
            return Completion(request.request_id, "", finish_reason="error", error=str(exc))

    async def _complete(
        self, client: Any, request: GenerationRequest, prepared: _Body, sent: Submission
    ) -> Answer:
        """One request with bounded retries; errors become the completion's `error`, never an exception.

        Its clock starts where `sent` says (see `pacing`): at its start, else now (a closed loop). Its
        schedule lag is how late it went out after that start (open loop only)."""
        clock = sent.clock()
        sent_ns = now_ns() if sent.start_ns is not None else None
        async with self._rates.slot() as held_ns:
            prepared, result, error = await self._exchange(
                client, request, prepared, clock, sent.start_ns is None, held_ns
            )
        clock.finish()
        answer = answer_of(request, prepared[1], (prepared[2], prepared[3]), result, error, clock)
        done = answer.completion
        done.rate_wait_ms = result.get("rate_wait_ns", 0) / 1e6 or None
        done.sent_ns = sent_ns if sent_ns is not None else clock.start_ns  # closed loop: its last try's
        if sent_ns is not None and sent.start_ns is not None:
            done.schedule_lag_ms = (sent_ns - sent.start_ns) / 1e6
        return answer

    async def _exchange(
        self,
        client: Any,
        request: GenerationRequest,
        prepared: _Body,
        clock: TokenClock,
        closed_loop: bool,
        held_ns: int,
    ) -> tuple[_Body, dict[str, Any], str | None]:
        """Stream the request until an answer, a final error or the last retry, all of it within
        `api.request_timeout_s`: the body it went as, what came back (its `attempts` and `rate_wait_ns` too),
        the error (None: answered). A retry restarts the clock: the timings are those of the try that answered.

        Rate limits (`rate_limits`): each try waits for the pacing first, outside the request timeout and the
        clock; a 429 is waited out (its Retry-After honoured) within the request timeout without using up
        `api.max_retries`, and the time it cost is rate wait (`held_ns`, a slot's wait, is too)."""
        api, rates = self.config.api, self._rates
        loop = asyncio.get_running_loop()
        deadline = loop.time() + api.request_timeout_s  # one for every try: a retry gets no fresh one
        attempt = retries = 0
        waited, restart = held_ns, held_ns > 0
        while True:
            clock.clear()
            route, body = prepared[0], prepared[1]
            ticket = await rates.go(tokens_asked(body))
            deadline += ticket.waited_ns / 1e9
            waited += ticket.waited_ns
            if restart or ticket.waited_ns:
                clock.start_ns = now_ns()  # no wait for the rate limits is the answer's time
            restart, tried_ns = False, now_ns()
            refusable = self._tokenizer is not None and not self._ids_as_text
            result = {"attempts": attempt + 1, "rate_wait_ns": waited}
            exchange = Exchange(route, body, api, clock, self._redact, refusable, result, deadline)
            exchange.watch = stop_watch(request.params, body, prepared[3])
            try:
                await stream_answer(client, self._url(route), exchange)
                rates.answered()
                return prepared, exchange.result, None
            except TokenIdsRefused:  # once per run: from now on every token-id prompt goes as text
                self._ids_as_text = True
                prepared = self._request_body(request)
                if closed_loop:  # the refused try was a protocol check, not the server's latency
                    clock.start_ns = now_ns()
            except Retryable as exc:
                pause = backoff_s(attempt, exchange.result.get("retry_after"))
                throttled = exchange.result.get("status") == 429
                if throttled:
                    rates.refused(ticket, pause)
                if (retries >= api.max_retries and not throttled) or loop.time() + pause >= deadline:
                    return prepared, exchange.result, last_try(str(exc), attempt, api.request_timeout_s)
                await asyncio.sleep(pause)
                attempt, retries = attempt + 1, retries + (not throttled)
                waited += now_ns() - tried_ns if throttled else 0
                restart = True  # neither the failed tries nor the backoff are the answer's time
            except Exception as exc:  # a final error, in words: reported on this request, the rest go on
                return prepared, exchange.result, final_error(exc, attempt, api.request_timeout_s)

    def _request_body(self, request: GenerationRequest) -> _Body:
        """Route, JSON body, prompt hash and rendered prompt (where we rendered it) of one request; its
        sampling fields keep stop strings from the server where the model may reason (a prompt we rendered
        that opens a reasoning block says it will)."""
        route, body, hashed, rendered = self._routed_body(request)
        chat = route == "/chat/completions"
        opens = opened_by_prompt(rendered, request.params.reasoning_markers) is not None
        return route, body | sampling(request.params, chat, self._reasons or opens), hashed, rendered

    def _routed_body(self, request: GenerationRequest) -> _Body:
        body: dict[str, Any] = {
            "model": self.config.model,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        chat = request.messages is not None and self.config.api.endpoint == "chat"
        if chat and request.messages is not None:
            messages = [dict(m) for m in request.messages]
            offered = tool_fields(request.tools)
            hashed = stable_hash([messages, offered["tools"]]) if offered else stable_hash(messages)
            return "/chat/completions", body | {"messages": messages} | offered, hashed, None
        if request.messages is not None:
            text, ids = render_chat(
                self._require_tokenizer("api.endpoint completions with chat messages"),
                request.messages,
                request.params.enable_thinking,
                request.tools,
            )
            return "/completions", body | {"prompt": text}, token_ids_hash(ids), text
        if request.prompt is not None:
            return (
                "/completions",
                body | {"prompt": request.prompt},
                stable_hash(request.prompt),
                request.prompt,
            )
        ids = list(request.prompt_token_ids or ())
        if self._ids_as_text:
            text = self._require_tokenizer("servers that refuse token-id prompts").decode(ids)
            return "/completions", body | {"prompt": text}, token_ids_hash(ids), text
        return "/completions", body | {"prompt": ids}, token_ids_hash(ids), None

    def _require_tokenizer(self, purpose: str) -> Any:
        if self._tokenizer is None:
            raise UserInputError(
                f"a local tokenizer is needed for {purpose}", hint="set `tokenizer:` in the model config"
            )
        return self._tokenizer

    def close(self) -> None:
        if self._loop is not None and self._client is not None:
            with contextlib.suppress(Exception):  # a pool that cannot close cleanly still goes
                self._loop.run(self._client.aclose(), timeout=30)
        self._client = None
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        if self._server is not None:
            self._server.close()
            self._server = None
            self.base_url = self.config.api.base_url
