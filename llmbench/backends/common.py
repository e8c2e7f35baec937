"""Helpers every local-model backend shares: tokenizer loading, chat templates, weights on disk.

Keeping them in one place means the Transformers and vLLM backends render a chat into the very
same token ids, so a `prompt_hash` from one run can be compared with one from the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from llmbench.backends.base import GenerationRequest
from llmbench.config.models import ModelConfig
from llmbench.errors import BackendError, ConfigError, MissingDependencyError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
T = TypeVar("T")
_DONE = object()


def resolve_chat_template(value: str | None) -> str | None:
    """The Jinja text of a `chat_template` setting: the file it names, or the inline template itself."""
    if value is None:
        return None
    if "\n" not in value and "{" not in value:
        path = Path(value).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"chat_template: no such file '{value}'", hint="give a path to a Jinja file or inline Jinja"
            )
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"chat_template: '{value}' cannot be read as UTF-8 text ({type(exc).__name__})"
            ) from None
    return value


def load_tokenizer(model: ModelConfig, model_path: str) -> Any:
    """The model's Hugging Face tokenizer, with the config's chat template override applied."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise MissingDependencyError("transformers", purpose="loading the tokenizer") from None
    source = model.tokenizer or model_path
    kwargs: dict[str, Any] = {"trust_remote_code": model.trust_remote_code}
    if model.revision and not model.tokenizer:
        kwargs["revision"] = model.revision
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot load the tokenizer of '{source}': {str(exc).splitlines()[0]}") from exc
    override = resolve_chat_template(model.chat_template)
    if override is not None:
        tokenizer.chat_template = override
    return tokenizer


def chat_template_hash(tokenizer: Any) -> str | None:
    """Short sha256 of the chat template the tokenizer applies, or None when it has none."""
    template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    if not template:
        return None
    if isinstance(template, Mapping):  # named templates: hash the default one the tokenizer uses
        template = template.get("default") or next(iter(template.values()))
    return hashlib.sha256(str(template).encode("utf-8")).hexdigest()[:16]


def model_reasons(model: ModelConfig, tokenizer: Any) -> bool:
    """Whether the model may write a reasoning block: its config says so, or (unset) its chat template writes
    a `<think>` marker (Qwen3's and DeepSeek-R1's do; Qwen2.5's does not)."""
    if model.reasoning is not None:
        return model.reasoning
    template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    if isinstance(template, Mapping):
        template = " ".join(str(t) for t in template.values())
    return bool(template) and "<think>" in str(template)


def chat_text(
    tokenizer: Any,
    messages: Sequence[Mapping[str, str]],
    enable_thinking: bool | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The chat template applied with the generation prompt.

    `enable_thinking` goes to templates that read it (Qwen3's and others'); others ignore it. `tools` (OpenAI
    function definitions) go to the template as its `tools`, which tool-calling templates render (Qwen2.5's,
    Llama 3.1's); others ignore them.
    """
    extra: dict[str, Any] = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    if tools:
        extra["tools"] = [dict(t) for t in tools]
    if not getattr(tokenizer, "chat_template", None):
        raise BackendError(
            "the tokenizer has no chat template",
            hint="set chat_template in the model config or use completion mode",
        )
    text = tokenizer.apply_chat_template(
        [dict(m) for m in messages], tokenize=False, add_generation_prompt=True, **extra
    )
    if not isinstance(text, str):  # some versions wrap the text; take the single rendering
        text = text[0] if isinstance(text, list) else str(text)
    return text


def render_chat(
    tokenizer: Any,
    messages: Sequence[Mapping[str, str]],
    enable_thinking: bool | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[str, list[int]]:
    """`chat_text` and its token ids: those of the rendered text tokenized without extra special tokens (the
    template already writes them, and a second BOS would change the prompt)."""
    text = chat_text(tokenizer, messages, enable_thinking, tools)
    return text, _token_ids(tokenizer, [text], special=False)[0]


def _token_ids(tokenizer: Any, texts: list[str], special: bool) -> list[list[int]]:
    """The token ids of each text, in one call of the tokenizer (a call per text costs more than the encoding)."""
    encoded = tokenizer(texts, add_special_tokens=special)
    ids = encoded["input_ids"] if isinstance(encoded, Mapping) or hasattr(encoded, "keys") else encoded
    return [[int(i) for i in row] for row in ids]


def prompt_ids(tokenizer: Any, request: GenerationRequest) -> tuple[list[int], str | None]:
    """The exact token ids a request is generated from, and the text they render (None for given ids).

    Every in-process backend renders through here or `prompts_ids`, so the same request gives the same
    `prompt_hash` whichever backend runs it. Raises BackendError without a tokenizer, and whatever the chat
    template raises for a conversation it cannot render.
    """
    (result,) = prompts_ids(tokenizer, [request])
    if isinstance(result, Exception):
        raise result
    return result


def prompts_ids(
    tokenizer: Any, requests: Sequence[GenerationRequest]
) -> list[tuple[list[int], str | None] | Exception]:
    """`prompt_ids` of many requests, their texts tokenized together; a request that cannot be rendered
    has the exception instead, and the others are rendered all the same."""
    results: list[tuple[list[int], str | None] | Exception] = []
    chats: dict[int, str] = {}  # rendered chats, tokenized without special tokens (the template wrote them)
    plain: dict[int, str] = {}  # completion prompts, tokenized with them
    for i, request in enumerate(requests):
        results.append(([], None))
        if request.prompt_token_ids is not None:
            results[i] = (list(request.prompt_token_ids), None)
        elif tokenizer is None:
            results[i] = BackendError(
                "this model was loaded without a tokenizer: only token-id prompts can run"
            )
        elif request.messages is not None:
            try:
                chats[i] = chat_text(
                    tokenizer, request.messages, request.params.enable_thinking, request.tools
                )
            except Exception as exc:
                results[i] = exc
        else:
            assert request.prompt is not None
            plain[i] = request.prompt
    for texts, special in ((chats, False), (plain, True)):
        if not texts:
            continue
        try:
            for i, ids in zip(texts, _token_ids(tokenizer, list(texts.values()), special), strict=True):
                results[i] = (ids, texts[i])
        except Exception:  # one text the tokenizer refuses: find it, and keep the others
            for i, text in texts.items():
                try:
                    results[i] = (_token_ids(tokenizer, [text], special)[0], text)
                except Exception as exc:
                    results[i] = exc
    return results


def eos_token_ids(model_path: str, tokenizer: Any) -> set[int]:
    """The ids that end a sequence: the tokenizer's EOS and the generation config's (as `generate` uses)."""
    ids: set[int] = set()
    if tokenizer is not None and tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    try:
        from transformers import GenerationConfig

        eos = GenerationConfig.from_pretrained(model_path).eos_token_id
    except Exception:  # no generation_config.json: the tokenizer's EOS is all there is
        return ids
    return ids | set(eos if isinstance(eos, list) else [eos] if eos is not None else [])


def weights_bytes(model_path: str) -> int | None:
    """Bytes of weight files (*.safetensors, *.bin, ...) in a local model directory; None for hub ids."""
    root = Path(model_path)
    if not root.is_dir():
        return None
    files = [p for p in root.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)]
    if not files:
        return None
    safetensors = [p for p in files if p.suffix == ".safetensors"]
    chosen = safetensors or files  # a repo with both formats loads only one of them
    return sum(p.stat().st_size for p in chosen)


def architecture_weights_bytes(config_dir: str, dtype: str, trust_remote_code: bool = False) -> int | None:
    """Bytes the weights of an architecture take at `dtype` (a dummy-weight load has no files to measure).

    The model is built on the meta device, so nothing is allocated; None where the architecture
    cannot be built here (a remote-code model without its code, say).
    """
    try:
        import torch
        import transformers

        config = transformers.AutoConfig.from_pretrained(config_dir, trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
        size = torch.empty((), dtype=getattr(torch, dtype)).element_size()
        return int(sum(p.numel() for p in model.parameters()) * size)
    except Exception:
        return None


def first_line(exc: BaseException) -> str:
    """The gist of an error in one line (validation errors put the detail on their later lines)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return " ".join(lines[:3])[:400] if lines else type(exc).__name__


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's OutOfMemoryError (recognised by name: torch may not be imported) or a CUDA OOM message."""
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


# vLLM's structured outputs for `json_whitespace: compact`; only xgrammar (and guidance) take the option.
COMPACT_JSON_OUTPUTS: dict[str, Any] = {"backend": "xgrammar", "disable_any_whitespace": True}


def free_device_memory() -> None:
    """Collect garbage and hand the CUDA allocator's cached blocks back (after a close or an OOM)."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")  # never import torch just to free what it never held
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class BackgroundLoop:
    """A private asyncio event loop on a daemon thread, so synchronous generators can drive async engines."""

    def __init__(self, name: str = "llmbench-loop", loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the loop and wait for its result here."""
        return self.submit(coro).result(timeout)

    def stream(
        self, producer: Callable[[Callable[[T], None]], Awaitable[None]], batch_s: float = 0.0
    ) -> Iterator[T]:
        """Yield what `producer(emit)` emits, as it emits it; closing the iterator cancels the producer.

        With `batch_s`, what is emitted crosses to the consuming thread in batches at most that far apart:
        each crossing wakes that thread, which then takes the GIL from the loop stamping other requests."""
        with contextlib.closing(self.stream_batches(producer, batch_s)) as batches:
            for batch in batches:
                yield from batch

    def stream_batches(
        self, producer: Callable[[Callable[[T], None]], Awaitable[None]], batch_s: float = 0.0
    ) -> Generator[list[T], None, None]:
        """As `stream`, a batch at a time as it crossed (one item each without `batch_s`), so that the
        consuming thread can finish a batch's items together."""
        items: queue.Queue[Any] = queue.Queue()
        pending: list[T] = []

        def flush() -> None:
            if pending:
                items.put_nowait(_Batch(pending.copy()))
                pending.clear()

        def emit(item: T) -> None:
            if not batch_s:
                items.put_nowait(item)
                return
            pending.append(item)
            if len(pending) == 1:
                self.loop.call_later(batch_s, flush)

        started, stopped = threading.Event(), threading.Event()

        async def drive() -> None:
            started.set()
            try:
                await producer(emit)
            except BaseException as exc:
                flush()
                items.put_nowait(_Failure(exc))
                raise
            finally:
                flush()
                items.put_nowait(_DONE)
                stopped.set()

        future = self.submit(drive())
        try:
            while (item := items.get()) is not _DONE:
                if isinstance(item, _Failure):
                    raise item.exc
                yield item.items if isinstance(item, _Batch) else [item]
        finally:
            if not future.done():
                future.cancel()
                # Cancelling returns at once; a producer that had started has its clean-up (aborting what
                # it handed to an engine) done before this returns.
                if started.is_set():
                    stopped.wait(timeout=30)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        with contextlib.suppress(Exception):  # finish async generators (HTTP streams) before the loop stops
            self.run(self.loop.shutdown_asyncgens(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        if not self._thread.is_alive():
            self.loop.close()


class _Batch:
    """Items emitted close together, crossing threads at once."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items


class _Failure:
    """An exception raised inside the loop, carried across the queue to the consuming thread."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
