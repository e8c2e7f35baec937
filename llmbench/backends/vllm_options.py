"""vLLM's engine options from a model config: one builder for the in-process engine and the managed server.

The in-process engine passes the options to `AsyncEngineArgs`; the managed server spells the very
same options as command-line flags, so one model config means one engine in both modes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmbench.backends.common import COMPACT_JSON_OUTPUTS
from llmbench.config.models import ModelConfig
from llmbench.errors import ConfigError

# Our names for quantization methods -> vLLM's.
_QUANTIZATION = {"bnb-4bit": "bitsandbytes", "bnb-8bit": "bitsandbytes"}

# Defaults only the in-process engine takes. The server keeps its stats on (its /metrics is read
# after a run, and vLLM feeds it from the same stat loggers), and its loading bar goes to its log,
# which `--quiet` does not reach. A config's `engine_args.vllm` may still set either for both.
IN_PROCESS_ONLY = frozenset({"disable_log_stats", "use_tqdm_on_load"})

# Engine options that vLLM's server parser takes only as on-switches (no `--no-` form); each is off
# by default. A test checks this set against the installed vLLM's parser.
ON_SWITCH_ONLY = frozenset(
    {"disable_log_stats", "aggregate_engine_logging", "data_parallel_multi_port_external_lb", "hf_token"}
)

# Engine options vLLM's server has no flag for: only the in-process engine can take them.
NOT_ON_SERVER = frozenset({"model_weights", "enable_mm_processor_stats", "mamba_config"})


def vllm_options(
    cfg: ModelConfig,
    model_path: str,
    *,
    on_cpu: bool,
    has_tokenizer: bool,
    architecture_dir: str | None,
    in_process: bool,
) -> dict[str, Any]:
    """vLLM's engine options keyed by `EngineArgs` field; the config's `engine_args.vllm` has the last word."""
    options: dict[str, Any] = {
        "model": model_path,
        "dtype": cfg.dtype,
        "trust_remote_code": cfg.trust_remote_code,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "pipeline_parallel_size": cfg.pipeline_parallel_size,
        "data_parallel_size": cfg.data_parallel_size,
        "load_format": cfg.load_format,
        "enforce_eager": cfg.enforce_eager if cfg.enforce_eager is not None else on_cpu,
        "seed": 0,
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
    options = {k: v for k, v in options.items() if v is not None}
    if not has_tokenizer:
        options["skip_tokenizer_init"] = True
    if cfg.json_whitespace == "compact":
        options["structured_outputs_config"] = dict(COMPACT_JSON_OUTPUTS)
    if in_process:
        options["disable_log_stats"] = True
        # The weights' loading bar, unless progress bars are off (`llmbench run --quiet` turns them off).
        options["use_tqdm_on_load"] = not _progress_bars_disabled()
    options.update(cfg.engine_args.get("vllm", {}))
    return options


def server_flags(options: Mapping[str, Any]) -> list[str]:
    """Engine options as vLLM server flags: True -> --flag, False -> --no-flag, dicts and lists as JSON, None left out."""
    flags: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if key in NOT_ON_SERVER:
            raise ConfigError(
                f"engine_args.vllm.{key}: vLLM's server has no {flag} flag",
                hint="the in-process vllm backend takes it; the openai backend's managed server cannot",
            )
        if value is False and key in ON_SWITCH_ONLY:
            raise ConfigError(
                f"engine_args.vllm.{key}: vLLM's server takes {flag} only as an on-switch, so it cannot be set "
                "to false there",
                hint=f"leave {key} out: false is its default",
            )
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag.removeprefix("--"))
        elif isinstance(value, (dict, list)):
            flags += [flag, json.dumps(value)]
        else:
            flags += [flag, str(value)]
    return flags


def architecture_config_dir(architecture: str | None, scratch: Path) -> str | None:
    """The directory vLLM reads `architecture`'s config.json from; a loose JSON file is copied under `scratch`."""
    if architecture is None:
        return None
    path = Path(architecture)
    if path.is_dir():
        return str(path)
    if not path.is_file():
        raise ConfigError(f"architecture: no such file '{architecture}'")
    if path.name == "config.json":
        return str(path.parent)
    target = scratch / "architecture"
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(json.loads(path.read_text())))
    return str(target)


def _progress_bars_disabled() -> bool:
    from huggingface_hub.utils import are_progress_bars_disabled

    return bool(are_progress_bars_disabled())
