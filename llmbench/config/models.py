"""Model configs: the aliases under configs/models, how a `--model` value becomes a ModelConfig."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field

from llmbench.config.strict import MAX_COUNT, MAX_PROMPT_TOKENS, Strict
from llmbench.config.suite import REPO_ROOT, GenerationSpec
from llmbench.config.yamlio import load_yaml, validate_yaml
from llmbench.errors import ConfigError

MODELS_DIR = REPO_ROOT / "configs" / "models"


class ApiSpec(Strict):
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, description="name of the variable that holds the key")
    endpoint: Literal["chat", "completions"] = "chat"
    concurrency: int = Field(
        default=8,
        ge=1,
        le=MAX_COUNT,
        description="requests in flight when a run sets no cap (quality runs); arrivals are never capped by it",
    )
    request_timeout_s: float = Field(
        default=300,
        gt=0,
        le=86_400,
        validation_alias=AliasChoices("request_timeout_s", "timeout_s"),
        description="longest one request may take in all, its retries and their waits included",
    )
    first_token_timeout_s: float = Field(
        default=120,
        gt=0,
        le=86_400,
        validation_alias=AliasChoices("first_token_timeout_s", "first_byte_timeout_s"),
        description="longest wait for the first token (comments, keep-alives and empty events are none)",
    )
    idle_timeout_s: float = Field(
        default=30, gt=0, le=86_400, description="longest silence between two chunks of a streamed answer"
    )
    max_retries: int = Field(default=4, ge=0, le=100)


MAX_PRICE_USD = 1_000_000.0  # per million tokens: far above any price, far below a typo's 1e30


class Prices(Strict):
    """What a provider bills per million tokens, in US dollars, as read on `as_of` (prices change)."""

    input_per_mtok_usd: float = Field(ge=0, le=MAX_PRICE_USD, description="per million prompt tokens")
    output_per_mtok_usd: float = Field(ge=0, le=MAX_PRICE_USD, description="per million generated tokens")
    cached_input_per_mtok_usd: float | None = Field(
        default=None,
        ge=0,
        le=MAX_PRICE_USD,
        description="per million prompt tokens the provider served from its cache, where it bills them apart",
    )
    as_of: date = Field(description="the day these prices were read from the provider's page")
    source: str | None = Field(default=None, description="the page they were read from")

    def usd(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> float:
        """The price of one request's tokens; cached prompt tokens are part of `input_tokens` (as the OpenAI
        usage block counts them) and are billed at the cached price where there is one."""
        cached = min(cached_input_tokens, input_tokens) if self.cached_input_per_mtok_usd is not None else 0
        cached_price = self.cached_input_per_mtok_usd or 0.0
        return (
            (input_tokens - cached) * self.input_per_mtok_usd
            + cached * cached_price
            + output_tokens * self.output_per_mtok_usd
        ) / 1e6


class RateLimits(Strict):
    """A provider's limits on one key: requests and tokens (prompt and max_tokens) per minute."""

    rpm: float | None = Field(default=None, gt=0, le=MAX_COUNT * 60, description="requests per minute")
    tpm: float | None = Field(default=None, gt=0, le=MAX_PROMPT_TOKENS * 60, description="tokens per minute")


class ModelConfig(Strict):
    """A model alias: which weights, how to load them, and which backend by default."""

    name: str
    backend: str = "transformers"
    model: str = Field(description="Hugging Face id or local directory")
    revision: str | None = None
    tokenizer: str | None = None
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    quantization: str | None = Field(
        default=None, description="awq, gptq, fp8, bitsandbytes, bnb-4bit, bnb-8bit"
    )
    kv_cache_dtype: str | None = None
    max_model_len: int | None = Field(default=None, ge=16, le=MAX_PROMPT_TOKENS)
    tensor_parallel_size: int = Field(default=1, ge=1)
    pipeline_parallel_size: int = Field(default=1, ge=1)
    data_parallel_size: int = Field(default=1, ge=1)
    distributed_executor_backend: Literal["mp", "ray"] | None = None
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    enable_prefix_caching: bool | None = None
    enforce_eager: bool | None = None
    max_num_seqs: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    batch_size: int = Field(
        default=8, ge=1, le=MAX_COUNT, description="requests per forward pass (Transformers backend)"
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="torch's CPU threads (Transformers backend); default: torch's own, one per core. "
        "On a shared host fewer threads than cores keep a decode step from waiting on busy cores",
    )
    load_format: Literal["auto", "dummy", "safetensors", "pt"] = "auto"
    architecture: str | None = Field(
        default=None, description="config.json of the architecture for dummy loads"
    )
    trust_remote_code: bool = False
    chat_template: str | None = Field(
        default=None, description="Jinja template, or a path to one, overriding the tokenizer's"
    )
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    json_whitespace: Literal["any", "compact"] = Field(
        default="any",
        description="JSON mode: 'any' lets the model place whitespace freely (vLLM's default); 'compact' "
        "allows none, for random-weight models that would otherwise emit whitespace forever",
    )
    reasoning: bool | None = Field(
        default=None,
        description="the model writes a reasoning block before its answer (Qwen3, DeepSeek-R1): stop strings are "
        "then watched in the answer by llmbench rather than sent to the engine; unset, a chat template that writes "
        "a reasoning marker decides",
    )
    tool_call_parser: str | None = Field(
        default=None,
        description="how the model writes tool calls, by vLLM's parser name (hermes for Qwen2.5, llama3_json, "
        "mistral): a managed vLLM server starts with it and automatic tool choice",
    )
    api: ApiSpec = Field(default_factory=ApiSpec)
    prices: Prices | None = Field(default=None, description="per-token prices of a hosted API, for its cost")
    rate_limits: RateLimits | None = Field(
        default=None,
        description="the provider's requests and tokens per minute: the OpenAI backend keeps to them",
    )
    builtin: str | None = Field(default=None, description="a model llmbench builds itself, e.g. tiny-qwen2")
    device: str | None = Field(default=None, description="cuda, cpu, or auto")
    engine_args: dict[Literal["transformers", "vllm", "openai"], dict[str, Any]] = Field(
        default_factory=dict,
        description="passed through to one backend's engine, e.g. {vllm: {swap_space: 4}}",
    )


def list_models() -> list[str]:
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def load_model_config(path: Path) -> ModelConfig:
    data, node = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a model config must be a mapping with 'name' and 'model'")
    data.setdefault("name", path.stem)
    for key in ("architecture", "chat_template"):  # paths are relative to the repository root
        value = data.get(key)
        if (
            isinstance(value, str)
            and "\n" not in value
            and not Path(value).is_absolute()
            and (REPO_ROOT / value).exists()
        ):
            data[key] = str(REPO_ROOT / value)
    result: ModelConfig = validate_yaml(ModelConfig, path, data, node)
    return result


def resolve_model(spec: str, *, served: bool = False, **overrides: Any) -> ModelConfig:
    """`--model` takes an alias from configs/models, a YAML path, a local directory or a Hugging Face id.

    With `served` (a --base-url was given) anything else is the name the server serves the model
    under (`gpt-4o-mini`, `llama3.1:8b`), sent as it is; the backend checks it against /v1/models.
    """
    p = Path(spec).expanduser()
    if p.suffix in (".yaml", ".yml") and p.is_file():
        config = load_model_config(p)
    elif (MODELS_DIR / f"{spec}.yaml").exists():
        config = load_model_config(MODELS_DIR / f"{spec}.yaml")
    elif p.is_dir():
        if not (p / "config.json").exists():
            raise ConfigError(
                f"{spec}: directory has no config.json", hint="point --model at a Hugging Face model folder"
            )
        config = ModelConfig(name=p.name, model=str(p.resolve()))
    elif served:
        config = ModelConfig(name=spec, model=spec, backend="openai")
    elif spec.startswith((".", "/", "~")) or p.suffix in (".yaml", ".yml"):
        raise ConfigError(
            f"{spec}: no such file or directory", hint="--model takes a model directory or YAML"
        )
    elif spec.count("/") == 1 and all(spec.split("/")):
        config = ModelConfig(name=spec.split("/")[-1].lower(), model=spec)
    else:
        raise ConfigError(f"unknown model '{spec}'", hint=_model_hint(spec))
    clean = {k: v for k, v in overrides.items() if v is not None}
    return config.model_copy(update=clean) if clean else config


def _model_hint(spec: str) -> str:
    import difflib

    known = list_models()
    close = difflib.get_close_matches(spec, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]}?"
    return f"use an alias ({', '.join(known)}), a local model directory or a Hugging Face id (org/name)"
