"""Hugging Face Transformers backend: batched `generate` with left padding, timed per token by a streamer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import groupby
from typing import Any, ClassVar

from llmbench.backends.base import (
    BackendInfo,
    Completion,
    GenerationRequest,
    decode_output,
    reasoning_token_count,
    token_ids_hash,
)
from llmbench.backends.common import (
    first_line,
    free_device_memory,
    is_out_of_memory,
    model_reasons,
    prompt_ids,
)
from llmbench.backends.guided import JsonGuide
from llmbench.backends.pacing import BatchPacer, Submission
from llmbench.backends.prefix_cache import PrefixCacheCounters, PrefixCacheState
from llmbench.backends.transformers_batch import (
    AnswerStop,
    StepStreamer,
    cut_at_stop_string,
    failed,
    generate_kwargs,
    generated_part,
    left_padded,
    params_key,
)
from llmbench.config.models import ModelConfig
from llmbench.errors import BackendError, MissingDependencyError
from llmbench.results.blocks import LoadState
from llmbench.scoring.reasoning import cut_at_stop, opened_by_prompt
from llmbench.telemetry.timing import TokenClock, ms_since, now_ns
from llmbench.types import Loglikelihood, LoglikelihoodRequest

_Prepared = tuple[GenerationRequest, list[int], str | None]  # the request, its prompt ids, the rendered text
_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


class TransformersBackend:
    """In-process generation with `AutoModelForCausalLM`; `device_map="auto"` across visible GPUs."""

    name: ClassVar[str] = "transformers"
    loads_weights: ClassVar[bool] = (
        True  # from this host's disk or the Hub cache: checked before a run starts
    )
    requires: ClassVar[tuple[str, ...]] = ("torch", "transformers")  # what `llmbench doctor` checks

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

    @property
    def _reasons(self) -> bool:
        """Whether the model may reason: stop strings are then watched in the answer (see `engine_stop`)."""
        return model_reasons(self.config, self._tokenizer)

    def load(self) -> BackendInfo:
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise MissingDependencyError(
                exc.name or "transformers", purpose="the Transformers backend"
            ) from None
        from llmbench.telemetry.host import set_torch_threads

        transformers.utils.logging.disable_progress_bar()
        set_torch_threads(self.config.threads)
        start = now_ns()  # load time: imports done, from reading weights to ready to generate
        cuda = torch.cuda.is_available() and self.config.device != "cpu"
        self._device = "cuda" if cuda else "cpu"
        path = self._load_model(transformers, torch, cuda)
        if cuda:
            torch.cuda.synchronize()
        info = self._info(ms_since(start) / 1e3, transformers, torch, cuda)
        info.load_state = LoadState(
            cuda_graphs=False,  # eager `generate`: nothing is compiled or captured
            engine_version=f"transformers {transformers.__version__}, torch {torch.__version__}",
            load_path=path,
            imports_included=False,
        )
        return info

    def _load_model(self, transformers: Any, torch: Any, cuda: bool) -> str:
        """The model (in eval mode, on its devices) and the tokenizer, padding on the left; returns how the
        weights were placed (source, dtype asked, devices)."""
        from llmbench.backends.common import load_tokenizer

        cfg = self.config
        dtype: Any = "auto"
        if cfg.dtype != "auto":
            dtype = getattr(torch, _DTYPES[cfg.dtype])
        elif not cuda:
            dtype = torch.float32
        kwargs = self._pretrained_kwargs(transformers, torch, dtype, cuda)
        try:
            if cfg.load_format == "dummy":
                self._model = self._dummy_model(transformers, torch, dtype, cuda, kwargs)
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
        return _load_path(kwargs, cfg.load_format == "dummy", cfg.dtype)

    def _pretrained_kwargs(self, transformers: Any, torch: Any, dtype: Any, cuda: bool) -> dict[str, Any]:
        """`from_pretrained`'s arguments: dtype, revision, devices, quantization, the config's own."""
        cfg = self.config
        kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": cfg.trust_remote_code}
        if cfg.revision:
            kwargs["revision"] = cfg.revision
        if cuda:
            kwargs["device_map"] = "auto"
        if cfg.quantization:
            kwargs["quantization_config"] = _quantization_config(cfg.quantization, transformers, torch)
        kwargs.update(cfg.engine_args.get("transformers", {}))
        return kwargs

    def _info(self, load_time_s: float, transformers: Any, torch: Any, cuda: bool) -> BackendInfo:
        from llmbench.backends.common import chat_template_hash, weights_bytes

        cfg, model = self.config, self._model
        return BackendInfo(
            backend=self.name,
            model=self.model_path,
            load_time_s=load_time_s,
            dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
            device=self._device
            if not cuda
            else ",".join(sorted({str(p.device) for p in model.parameters()})),
            chat_template_hash=chat_template_hash(self._tokenizer) if self._tokenizer is not None else None,
            max_batch_size=cfg.batch_size,
            attention_backend=getattr(model.config, "_attn_implementation", None),
            weights_bytes=weights_bytes(self.model_path)
            if cfg.load_format != "dummy"
            else _param_bytes(model),
            vocab_size=model.config.get_text_config().vocab_size,
            gpus=sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"}),
            gpus_reading_at_once=1 if cuda else None,  # device_map runs its layers one GPU after another
            extra={"transformers": transformers.__version__, "torch": torch.__version__},
        )

    def _dummy_model(
        self, transformers: Any, torch: Any, dtype: Any, cuda: bool, kwargs: dict[str, Any]
    ) -> Any:
        """Random weights in the architecture's shape, on the devices real weights would take: performance
        runs with no download that measure what the real model runs."""
        from llmbench.backends.transformers_placement import dummy_model

        source = self.config.architecture or self.model_path
        arch = transformers.AutoConfig.from_pretrained(
            source, trust_remote_code=self.config.trust_remote_code
        )
        dtype = dtype if dtype != "auto" else torch.bfloat16
        return dummy_model(transformers, torch, arch, dtype, cuda=cuda, load_kwargs=kwargs)

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        concurrency: int | None = None,
        arrival_offsets_s: Sequence[float] | None = None,
    ) -> Iterator[Completion]:
        if self._model is None:
            raise BackendError("generate called before load")
        # Render every prompt before the first request goes out: none of that work may fall in a timed window.
        prepared = [self._try_prepare(request) for request in requests]
        if arrival_offsets_s is not None:
            yield from self._generate_arrivals(
                prepared, BatchPacer(concurrency, arrival_offsets_s, self.config.batch_size)
            )
            return
        batch_size = concurrency or self.config.batch_size
        ready = []
        for item in prepared:
            if isinstance(item, Completion):
                yield item
            else:
                ready.append(item)
        # Batch requests that share settings, longest prompts together: less padding, same results.
        ready.sort(key=lambda p: (params_key(p[0].params), -len(p[1])))
        for _, group in groupby(ready, key=lambda p: params_key(p[0].params)):
            items = list(group)
            for i in range(0, len(items), batch_size):
                yield from self._run_batch(items[i : i + batch_size], sent=None)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> Iterator[Loglikelihood]:
        """Each continuation's log-probability given its context, batched forward passes (no generation)."""
        if self._model is None:
            raise BackendError("loglikelihood called before load")
        from llmbench.backends.transformers_loglik import score

        device = self._model.device if self._device == "cuda" else "cpu"
        yield from score(self._model, self._tokenizer, requests, self.config.batch_size, device)

    def _generate_arrivals(
        self, prepared: list[_Prepared | Completion], pacer: BatchPacer
    ) -> Iterator[Completion]:
        """Request-rate mode: batches go out in arrival order, each request's clock started by `pacing`'s rule."""
        for batch in pacer.batches():
            items, sent = [], []
            for i, submission in batch:
                item = prepared[i]
                if isinstance(item, Completion):  # its prompt could not be rendered
                    yield item
                    continue
                items.append(item)
                sent.append(submission)
            if items:
                yield from self._run_batch(items, sent)

    def _try_prepare(self, request: GenerationRequest) -> _Prepared | Completion:
        """The request's prompt ids, or its error completion: a prompt that cannot be rendered fails alone."""
        try:
            return self._prepare(request)
        except Exception as exc:
            return failed(request, [], None, f"cannot render the prompt: {first_line(exc)}")

    def _prepare(self, request: GenerationRequest) -> _Prepared:
        ids, text = prompt_ids(self._tokenizer, request)
        return request, ids, text

    def _run_batch(self, items: list[_Prepared], sent: list[Submission] | None) -> Iterator[Completion]:
        """One `generate` call over `items`, each row timed from its submission (`sent`; None: the batch's)."""
        try:
            out, width, clock = self._generate(items)
        except Exception as exc:
            if is_out_of_memory(exc):
                free_device_memory()
            if len(items) > 1:  # one bad prompt (or a batch too big for memory) must not fail the others
                for k, item in enumerate(items):
                    yield from self._run_batch([item], [sent[k]] if sent is not None else None)
                return
            req, ids, text = items[0]
            yield failed(req, ids, text, f"{type(exc).__name__}: {first_line(exc)}")
            return
        yield from self._completions(items, sent, out[:, width:].tolist(), clock)

    def _generate(self, items: list[_Prepared]) -> tuple[Any, int, TokenClock]:
        """`generate`'s output over the left-padded batch, the padded prompt width, and the batch's clock."""
        import torch

        params = items[0][0].params
        clock = TokenClock()  # started at the batch's submission; each decoding step is a token
        device = self._model.device if self._device == "cuda" else "cpu"
        input_ids, attention = left_padded([ids for _, ids, _ in items], self._pad_id(), device)
        opened = [opened_by_prompt(text, params.reasoning_markers) for _, _, text in items]
        reasons = self._reasons or any(o is not None for o in opened)
        kwargs = generate_kwargs(params, self._pad_id(), self._tokenizer, reasons)
        schemas = [req.params.json_schema for req, _, _ in items]
        if any(schema is not None for schema in schemas):
            if self._guided is None:
                self._guided = JsonGuide(self._tokenizer, self._model, self._stop_token_ids(), self.config)
            kwargs["logits_processor"] = [self._guided.constraint(schemas)]
        if params.stop and "stop_strings" not in kwargs and self._tokenizer is not None:
            kwargs["stopping_criteria"] = [AnswerStop(self._tokenizer, params, input_ids.shape[1], opened)]
        if params.seed is not None:
            torch.manual_seed(params.seed)
        with torch.inference_mode():
            out = self._model.generate(
                input_ids=input_ids, attention_mask=attention, streamer=StepStreamer(clock), **kwargs
            )
        clock.finish()
        return out, input_ids.shape[1], clock

    def _completions(
        self,
        items: list[_Prepared],
        sent: list[Submission] | None,
        generated: list[list[int]],
        clock: TokenClock,
    ) -> Iterator[Completion]:
        """Each row's completion: its own output (up to its EOS or stop string), timed on the batch's clock.

        A row's token i arrived with the batch's decoding step i (every row gets one token a step), so its
        TTFT, ITL and E2E are its own steps' times, from its own start (its arrival, in request-rate mode),
        to its own last token; its close is the batch's end, when `generate` returned every row."""
        stop_ids = self._stop_token_ids()
        for row, (req, ids, text) in enumerate(items):
            p, opened = req.params, opened_by_prompt(text, req.params.reasoning_markers)
            kept, hit_eos = generated_part(generated[row], stop_ids, p.ignore_eos)
            if not hit_eos and p.stop:
                kept = cut_at_stop_string(self._tokenizer, kept, p, opened)
            whole, _ = decode_output(self._tokenizer, kept, stop_ids, ())
            decoded, hit_stop = cut_at_stop(whole, p.stop, p.reasoning_markers, opened)
            n = len(kept)
            row_clock = clock.for_row(n, sent[row].start_ns if sent is not None else None)
            reasoning = reasoning_token_count(self._tokenizer, kept, whole, p.reasoning_markers, opened)
            yield Completion(
                request_id=req.request_id,
                text=decoded,
                prompt_tokens=len(ids),
                output_tokens=n,
                finish_reason="stop" if (hit_eos or hit_stop or n < p.max_new_tokens) else "length",
                prompt_hash=token_ids_hash(ids),
                output_hash=token_ids_hash(kept),
                rendered_prompt=text,
                batch_size=len(items),
                queue_ms=sent[row].queue_ms if sent is not None else None,
                warnings=["reasoning_effort is for servers: the Transformers backend ignores it"]
                if p.reasoning_effort is not None
                else [],
            ).timed(row_clock.record(reasoning))

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


def _load_path(kwargs: dict[str, Any], dummy: bool, requested_dtype: str) -> str:
    """How the weights reached their devices: "from_pretrained, dtype auto, device_map=auto"."""
    parts = ["dummy weights" if dummy else "from_pretrained", f"dtype {requested_dtype}"]
    device_map = kwargs.get("device_map")
    parts.append(f"device_map={device_map}" if device_map is not None else "cpu")
    if kwargs.get("quantization_config") is not None:
        parts.append(f"quantized ({type(kwargs['quantization_config']).__name__})")
    return ", ".join(parts)


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
