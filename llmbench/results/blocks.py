"""The run-level blocks of a results file as typed models: backend, settings, environment, summary.

They sit in their own module so that the backends can return `BackendFacts` (as `BackendInfo`)
without importing the results file's schema, and so that results.py stays one job: read and write.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid")


CompileCache = Literal["hit", "miss", "off", "disabled"]


class LoadState(_Block):
    """The state `load_time_s` was measured in: one model loads in seconds or in minutes depending on it."""

    # vLLM's torch.compile cache (VLLM_CACHE_ROOT/torch_compile_cache): "hit" when the load compiled and
    # this model config's entry was there before it, "miss" when the load added it, "off" when nothing is
    # compiled (enforce_eager), "disabled" under VLLM_DISABLE_COMPILE_CACHE; None: no such cache.
    compile_cache: CompileCache | None = None
    cuda_graphs: bool | None = None  # whether the engine captured CUDA graphs (never on a CPU or eager)
    engine_version: str | None = None  # the libraries that loaded the model ("vllm 0.32.0")
    # Transformers: how the weights reached their devices ("from_pretrained, dtype auto, device_map=auto").
    load_path: str | None = None
    # True where `load_time_s` includes importing the engine: a managed server, from its process start
    # to its first answer; in-process backends import before their clock starts.
    imports_included: bool | None = None


class BackendFacts(_Block):
    """Facts about the loaded model that make results comparable: what a backend's `load()` returns."""

    backend: str
    model: str
    load_time_s: float | None = None
    load_state: LoadState | None = None  # what the load time was measured in (compile cache, graphs)
    dtype: str | None = None
    device: str | None = None
    chat_template_hash: str | None = None
    max_batch_size: int | None = None
    attention_backend: str | None = None
    weights_bytes: int | None = None
    # False when outputs and timings are not the model's (the reference backend echoes the references):
    # compare shows no latency, throughput or energy for such a run and gates none.
    measures_model: bool = True
    vocab_size: int | None = None
    # The local GPUs that hold the weights ([] on a CPU); None when the model is served elsewhere.
    gpus: list[int] | None = Field(default_factory=list)
    # How many of those GPUs read the weights at the same time (tensor parallel); 1 where layers run one
    # GPU after another (a device_map); None: all of them. Bandwidth utilisation divides by theirs.
    gpus_reading_at_once: int | None = None
    takes_text: bool = False  # the performance sweep must send text, not token ids (a chat endpoint)
    # How the VRAM peak must be read: the share of each GPU the engine reserves at start-up (its peak is
    # then that reservation), and how many tokens of KV cache that reservation holds.
    preallocated_vram_share: float | None = None
    kv_cache_tokens: int | None = None
    server_url: str | None = None  # an API server's address, where the backend talks to one
    extra: dict[str, Any] = Field(default_factory=dict)  # the backend's own details (versions, engine flags)


class Settings(_Block):
    """What the run was asked to do."""

    limit: int | None = None
    tasks: list[str] = Field(default_factory=list)
    seed: int | None = None
    backend: str | None = None
    max_new_tokens: int | None = None  # a cap on every task's output length (--max-new-tokens)
    set: dict[str, Any] | None = None  # --set KEY=VALUE: changes made to every task's config
    variant: str | None = None  # a study's name for what sets this model config apart (a quantisation)
    shard: list[int] | None = None  # [index, count]: this run is one shard of a larger one
    seeds: list[int | None] | None = None  # a column merged from repeats: their seeds
    repeat_run_ids: list[str] | None = None  # ... and their run ids
    repeat_of: str | None = None  # shared by the runs of one `--repeat N`, which compare merges


class Environment(_Block):
    """Where the run ran: interpreter, host, packages, GPUs and the suite's git state."""

    python: str | None = None
    python_implementation: str | None = None
    platform: str | None = None
    machine: str | None = None
    hostname: str | None = None
    cpu_model: str | None = None
    cpu_count: int | None = None
    ram_bytes: int | None = None
    packages: dict[str, str | None] = Field(default_factory=dict)
    cuda_visible_devices: str | None = None
    cuda_device_order: str | None = None  # PCI_BUS_ID in study workers: CUDA's indices are NVML's
    torch_cuda: str | None = None
    cudnn: int | None = None
    gpus: list[dict[str, Any]] = Field(default_factory=list)  # index, name, memory_total_mib
    gpu_unavailable: str | None = None  # why there is no GPU list
    driver: str | None = None
    cuda_driver: str | None = None
    usable_cpus: int | None = None  # the CPUs this process may use
    torch_threads: int | None = None
    load_avg: list[float] | None = None  # 1, 5 and 15-minute load averages at the end of the run
    peak_load_1m: float | None = None  # the highest 1-minute load seen while timings were taken
    niceness: int | None = None  # the run's scheduling priority (above 0: it yields the CPU to others)
    git_commit: str | None = None
    git_dirty: bool | None = None

    def device(self) -> str | None:
        """The GPUs in a few words ("2 x NVIDIA H100 80GB HBM3"), or None without any."""
        names = [str(g.get("name", "?")) for g in self.gpus]
        if not names:
            return None
        return f"{len(names)} x {names[0]}" if len(set(names)) == 1 and len(names) > 1 else ", ".join(names)


class ApiCost(_Block):
    """What a run's samples cost at the model's per-token prices, and the prices with the day they were read."""

    usd: float  # the priced samples' cost
    input_tokens: int = 0  # prompt tokens of the priced samples, cached ones included
    cached_input_tokens: int = 0
    output_tokens: int = 0
    priced_samples: int = 0
    unpriced_samples: int = 0  # samples whose token counts are unknown (a failed request): not in `usd`
    input_per_mtok_usd: float
    output_per_mtok_usd: float
    cached_input_per_mtok_usd: float | None = None
    prices_as_of: str  # the day the prices were read: they change
    prices_source: str | None = None


class Summary(_Block):
    """Counts and timings of the whole run, and what was added to it afterwards (judge, study)."""

    samples: int = 0
    errors: int = 0  # records whose generation or scoring failed
    missing: int | None = None  # `llmbench score`: problems without a line, scored as failed
    finished_at: str | None = None
    wall_s: float | None = None
    repeats: int | None = None  # a column merged from this many repeats
    combined: dict[str, Any] | None = None  # the suite score combined with the judge's ratings
    judge: dict[str, Any] | None = None  # the judge model and its prompt hash
    warnings: list[str] = Field(default_factory=list)  # what may have skewed the figures (a busy host)
    rebuilt_from_journal: bool | None = None  # every sample was finished: rebuilt without generating
    load_shared_with: str | None = None  # a study: the run whose model load this one reused
    placement: dict[str, Any] | None = None  # a study: the GPUs the run was placed on
    cost: ApiCost | None = None  # what the samples cost, where the model config has per-token prices
    cached_generations: int | None = None  # samples answered from the generation cache; None: cache not used


def upgrade_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A version-1 results file (untyped blocks) as version 2: backend facts that were `extra` keys become
    typed fields; keys version 2 has no field for are dropped (version 1 wrote none of them)."""
    raw = dict(raw)
    if not all(isinstance(raw.get(k) or {}, dict) for k in ("backend", "settings", "environment", "summary")):
        return raw  # not a results file's shape: validation names the field
    backend = dict(raw.get("backend") or {})
    if not isinstance(backend.get("extra") or {}, dict):
        return raw
    extra = dict(backend.get("extra") or {})
    backend.setdefault("model", str(raw.get("model_name", "")))
    if "vocab_size" in extra:
        backend["vocab_size"] = extra.pop("vocab_size")
    if extra.pop("preallocates_memory", False):
        backend["preallocated_vram_share"] = extra.pop("gpu_memory_utilization", None)
    if "kv_cache_tokens" in extra:
        backend["kv_cache_tokens"] = extra.pop("kv_cache_tokens")
    if "managed" in extra:  # the openai backend: a server it did not start may run on any host
        backend["server_url"] = extra.get("base_url")
        backend["takes_text"] = extra.get("endpoint") == "chat"
        if not extra["managed"]:
            backend["gpus"] = None
    backend["extra"] = extra
    raw["backend"] = _known(BackendFacts, backend)
    for key, model in (("settings", Settings), ("environment", Environment), ("summary", Summary)):
        raw[key] = _known(model, dict(raw.get(key) or {}))
    raw["schema_version"] = 2
    return raw


def _known(model: type[_Block], block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k in model.model_fields}
