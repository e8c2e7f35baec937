"""Hugging Face Transformers backend: batched `generate` with left padding, timed per token by a streamer."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from itertools import groupby, pairwise
from typing import Any, ClassVar

from llmbench.backends.base import (
    BackendInfo,
    Completion,
    GenerationRequest,
    decode_output,
    token_ids_hash,
)
from llmbench.backends.common import first_line, free_device_memory, is_out_of_memory, prompt_ids
from llmbench.backends.guided import JsonGuide
from llmbench.backends.prefix_cache import PrefixCacheCounters, PrefixCacheState
from llmbench.backends.transformers_batch import (
    StepClock,
    cut_at_stop_string,
    failed,
    generate_kwargs,
    generated_part,
    left_padded,
    params_key,
)
from llmbench.config.models import ModelConfig
from llmbench.errors import BackendError, MissingDependencyError
from llmbench.telemetry.timing import now_ns
from llmbench.types import Loglikelihood, LoglikelihoodRequest

_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


class TransformersBackend:
    """In-process generation with `AutoModelForCausalLM`; `device_map="auto"` across visible GPUs."""

    name: ClassVar[str] = "transformers"
    loads_weights: ClassVar[bool] = (
        True  # from this host's disk or the Hub cache: checked before a run starts
    )

    def __init__(self, model: ModelConfig, model_path: str) -> None:
        self.config = model
        self.model_path = model_path
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: str = "cpu"
        self._guided: JsonGuide | None = None  # JSON mode, built on first use

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def load(self) -> BackendInfo:
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise MissingDependencyError(
                exc.name or "transformers", purpose="the Transformers backend"
            ) from None
        from llmbench.backends.common import chat_template_hash, load_tokenizer, weights_bytes
        from llmbench.telemetry.host import set_torch_threads

        transformers.utils.logging.disable_progress_bar()
        cfg = self.config
        set_torch_threads(cfg.threads)
        start = time.perf_counter()  # load time: imports done, from reading weights to ready to generate
        cuda = torch.cuda.is_available() and cfg.device != "cpu"
        self._device = "cuda" if cuda else "cpu"
        dtype: Any = "auto"
        if cfg.dtype != "auto":
            dtype = getattr(torch, _DTYPES[cfg.dtype])
        elif not cuda:
            dtype = torch.float32
        kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": cfg.trust_remote_code}
        if cfg.revision:
            kwargs["revision"] = cfg.revision
        if cuda:
            kwargs["device_map"] = "auto"
        if cfg.quantization:
            kwargs["quantization_config"] = _quantization_config(cfg.quantization, transformers, torch)
        kwargs.update(cfg.engine_args.get("transformers", {}))
        try:
            if cfg.load_format == "dummy":
                self._model = self._dummy_model(transformers, torch, dtype)
            else:
                self._model = transformers.AutoModelForCausalLM.from_pretrained(self.model_path, **kwargs)
            self._model.eval()
            if not cuda:
                self._model.to("cpu")
            if cfg.load_format != "dummy" or cfg.tokenizer:
                self._tokenizer = load_tokenizer(cfg, self.model_path)
                self._tokenizer.padding_side = "left"
                if self._tokenizer.pad_token is None:
                    self._tokenizer.pad_token = self._tokenizer.eos_token
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot load model '{self.model_path}': {str(exc).splitlines()[0]}") from exc
        if cuda:
            torch.cuda.synchronize()
        load_time = time.perf_counter() - start
        return BackendInfo(
            backend=self.name,
            model=self.model_path,
            load_time_s=load_time,
            dtype=str(next(self._model.parameters()).dtype).removeprefix("torch."),
            device=self._device
            if not cuda
            else ",".join(sorted({str(p.device) for p in self._model.parameters()})),
            chat_template_hash=chat_template_hash(self._tokenizer) if self._tokenizer is not None else None,
            max_batch_size=cfg.batch_size,
            attention_backend=getattr(self._model.config, "_attn_implementation", None),
            weights_bytes=weights_bytes(self.model_path)
            if cfg.load_format != "dummy"
            else _param_bytes(self._model),
            vocab_size=self._model.config.get_text_config().vocab_size,
            gpus=sorted({p.device.index or 0 for p in self._model.parameters()}) if cuda else [],
            extra={"transformers": transformers.__version__, "torch": torch.__version__},
        )

    def _dummy_model(self, transformers: Any, torch: Any, dtype: Any) -> Any:
        """Random weights in the architecture's shape: performance runs with no download."""
        source = self.config.architecture or self.model_path
        arch = transformers.AutoConfig.from_pretrained(
            source, trust_remote_code=self.config.trust_remote_code
        )
        device = "cuda" if self._device == "cuda" else "cpu"
        with torch.device(device):
            return transformers.AutoModelForCausalLM.from_config(
                arch, dtype=dtype if dtype != "auto" else torch.bfloat16
            )

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        concurrency: int | None = None,
        arrival_offsets_s: Sequence[float] | None = None,
    ) -> Iterator[Completion]:
        if self._model is None:
            raise BackendError("generate called before load")
        batch_size = concurrency or self.config.batch_size
        if arrival_offsets_s is not None:
            yield from self._generate_arrivals(requests, arrival_offsets_s, batch_size)
            return
        prepared = []
        for request in requests:
            item = self._try_prepare(request)
            if isinstance(item, Completion):
                yield item
            else:
                prepared.append(item)
        # Batch requests that share settings, longest prompts together: less padding, same results.
        prepared.sort(key=lambda p: (params_key(p[0].params), -len(p[1])))
        for _, group in groupby(prepared, key=lambda p: params_key(p[0].params)):
            items = list(group)
            for i in range(0, len(items), batch_size):
                yield from self._run_batch(items[i : i + batch_size], start_ns=None)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> Iterator[Loglikelihood]:
        """Each continuation's log-probability given its context, batched forward passes (no generation)."""
        if self._model is None:
            raise BackendError("loglikelihood called before load")
        from llmbench.backends.transformers_loglik import score

        device = self._model.device if self._device == "cuda" else "cpu"
        yield from score(self._model, self._tokenizer, requests, self.config.batch_size, device)

    def _generate_arrivals(
        self, requests: Sequence[GenerationRequest], offsets: Sequence[float], batch_size: int
    ) -> Iterator[Completion]:
        """Request-rate mode: requests are served in arrival order; latency counts from the arrival time."""
        t0 = now_ns()
        order = sorted(range(len(requests)), key=lambda i: offsets[i])
        pos = 0
        while pos < len(order):
            due = t0 + int(offsets[order[pos]] * 1e9)
            if (wait := due - now_ns()) > 0:
                time.sleep(wait / 1e9)
            now = now_ns()
            batch = [i for i in order[pos : pos + batch_size] if t0 + int(offsets[i] * 1e9) <= now] or [
                order[pos]
            ]
            pos += len(batch)
            items, arrivals = [], []
            for i in batch:
                item = self._try_prepare(requests[i])
                if isinstance(item, Completion):
                    yield item
                    continue
                items.append(item)
                arrivals.append(t0 + int(offsets[i] * 1e9))
            if items:
                yield from self._run_batch(items, start_ns=arrivals)

    def _try_prepare(
        self, request: GenerationRequest
    ) -> tuple[GenerationRequest, list[int], str | None] | Completion:
        """The request's prompt ids, or its error completion: a prompt that cannot be rendered fails alone."""
        try:
            return self._prepare(request)
        except Exception as exc:
            return failed(request, [], None, f"cannot render the prompt: {first_line(exc)}")

    def _prepare(self, request: GenerationRequest) -> tuple[GenerationRequest, list[int], str | None]:
        ids, text = prompt_ids(self._tokenizer, request)
        return request, ids, text

    def _run_batch(
        self, items: list[tuple[GenerationRequest, list[int], str | None]], start_ns: list[int] | None
    ) -> Iterator[Completion]:
        import torch

        params = items[0][0].params
        batch_start = now_ns()
        try:
            device = self._model.device if self._device == "cuda" else "cpu"
            input_ids, attention = left_padded([ids for _, ids, _ in items], self._pad_id(), device)
            clock = StepClock()
            kwargs = generate_kwargs(params, self._pad_id(), self._tokenizer)
            schemas = [req.params.json_schema for req, _, _ in items]
            if any(schema is not None for schema in schemas):
                if self._guided is None:
                    self._guided = JsonGuide(
                        self._tokenizer, self._model, self._stop_token_ids(), self.config
                    )
                kwargs["logits_processor"] = [self._guided.constraint(schemas)]
            if params.seed is not None:
                torch.manual_seed(params.seed)
            with torch.inference_mode():
                out = self._model.generate(
                    input_ids=input_ids, attention_mask=attention, streamer=clock, **kwargs
                )
            end = now_ns()
        except Exception as exc:
            if is_out_of_memory(exc):
                free_device_memory()
            if len(items) > 1:  # one bad prompt (or a batch too big for memory) must not fail the others
                for k, item in enumerate(items):
                    yield from self._run_batch([item], [start_ns[k]] if start_ns is not None else None)
                return
            req, ids, text = items[0]
            yield failed(req, ids, text, f"{type(exc).__name__}: {first_line(exc)}")
            return
        generated = out[:, input_ids.shape[1] :].tolist()
        stop_ids = self._stop_token_ids()
        for row, (req, ids, text) in enumerate(items):
            kept, hit_eos = generated_part(generated[row], stop_ids, req.params.ignore_eos)
            if not hit_eos and req.params.stop:
                kept = cut_at_stop_string(self._tokenizer, kept, req.params.stop)
            decoded, hit_stop = decode_output(self._tokenizer, kept, stop_ids, req.params.stop)
            n = len(kept)
            steps = clock.step_ns[:n]
            t0 = start_ns[row] if start_ns is not None else batch_start
            last = steps[-1] if steps else end
            yield Completion(
                request_id=req.request_id,
                text=decoded,
                prompt_tokens=len(ids),
                output_tokens=n,
                finish_reason="stop" if (hit_eos or hit_stop or n < req.params.max_new_tokens) else "length",
                ttft_ms=(steps[0] - t0) / 1e6 if steps else None,
                latency_ms=(last - t0) / 1e6,
                itl_ms=[(b - a) / 1e6 for a, b in pairwise(steps)],
                prompt_hash=token_ids_hash(ids),
                output_hash=token_ids_hash(kept),
                rendered_prompt=text,
                batch_size=len(items),
            )

    def _pad_id(self) -> int:
        tok = self._tokenizer
        if tok is not None and tok.pad_token_id is not None:
            return int(tok.pad_token_id)
        gen = self._model.generation_config
        pad = gen.pad_token_id if gen.pad_token_id is not None else gen.eos_token_id
        if isinstance(pad, list):
            pad = pad[0]
        return int(pad) if pad is not None else 0

    def _stop_token_ids(self) -> set[int]:
        eos = self._model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self._tokenizer is not None and self._tokenizer.eos_token_id is not None:
            ids.add(self._tokenizer.eos_token_id)
        return ids

    def prefix_cache_state(self) -> PrefixCacheState:
        """Off: every batch is prefilled from scratch; nothing is kept between requests."""
        return PrefixCacheState(
            False, can_bypass=False, source="the Transformers backend keeps no cache between requests"
        )

    def prefix_cache_counters(self) -> PrefixCacheCounters | None:
        return None

    def close(self) -> None:
        self._model = None
        self._tokenizer = None
        self._guided = None
        free_device_memory()


def _param_bytes(model: Any) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _quantization_config(name: str, transformers: Any, torch: Any) -> Any:
    if name in ("bnb-4bit", "bitsandbytes", "4bit"):
        return transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
    if name in ("bnb-8bit", "8bit"):
        return transformers.BitsAndBytesConfig(load_in_8bit=True)
    return None  # awq / gptq / fp8 checkpoints carry their own quantization config
