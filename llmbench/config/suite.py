"""Suite configuration: the pydantic models users write in YAML for suites and tasks, and their loader."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from llmbench.config.serving import ArrivalSpec, SaturationSpec, Workload, check_workload_fields
from llmbench.config.strict import (
    MAX_COUNT,
    MAX_INT,
    MAX_SEED,
    MAX_TOKENS,
    Count,
    PromptTokens,
    Strict,
    Tokens,
)
from llmbench.config.yamlio import load_yaml, validate_yaml
from llmbench.errors import ConfigError
from llmbench.hashing import stable_hash
from llmbench.types import THINK_MARKERS, GenerationParams

REPO_ROOT = Path(__file__).resolve().parents[2]
SUITES_DIR = REPO_ROOT / "suites"


class DatasetSpec(Strict):
    """Where a task's samples come from: exactly one of `builtin`, `local` or `hf`."""

    builtin: str | None = None
    local: str | None = None
    hf: str | None = Field(default=None, description="Hugging Face datasets id, e.g. openai/gsm8k")
    config: str | None = None
    split: str = "test"
    revision: str | None = None
    options: dict[str, Any] = Field(default_factory=dict, description="options of a built-in generator")
    id_field: str | None = None
    reference_field: str | None = None
    mirrors: str | None = Field(default=None, description="the public data set a built-in set mirrors")
    limit: int | None = Field(default=None, ge=1, le=MAX_INT)

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        given = [k for k in ("builtin", "local", "hf") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of builtin, local, hf (got {', '.join(given) or 'none'})")
        return self

    @property
    def source(self) -> str:
        return "builtin" if self.builtin else "local" if self.local else "hf"


class FewShot(Strict):
    user: str
    assistant: str


class PromptSpec(Strict):
    """How a sample becomes a prompt. Templates are Jinja2 with the sample's fields as variables."""

    system: str | None = None
    template: str = "{{ prompt }}"
    few_shot: list[FewShot] = Field(default_factory=list)
    mode: Literal["chat", "completion"] = "chat"
    assistant_prefix: str | None = Field(
        default=None, description="text the answer starts with (completion mode)"
    )


class GenerationSpec(Strict):
    """Generation settings; anything left out falls back to the model config, then to greedy defaults."""

    max_new_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(default=None, ge=0, le=100)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1, le=MAX_TOKENS * 16)
    stop: list[str] | None = None
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    n: int | None = Field(default=None, ge=1, le=10_000, description="samples per prompt (pass@k)")
    ignore_eos: bool | None = None
    reasoning_effort: Literal["low", "medium", "high"] | None = Field(
        default=None,
        description="OpenAI-compatible servers only: sent as `reasoning_effort`, for the server's model to "
        "honour or not; in-process backends ignore it and each sample says so in its warnings",
    )
    enable_thinking: bool | None = Field(
        default=None,
        description="for chat templates that read it (Qwen3 and others; false: no thinking): rendered with it "
        "by in-process backends, sent to servers as `chat_template_kwargs`; other templates ignore it",
    )

    def merged(self, *fallbacks: GenerationSpec) -> GenerationSpec:
        values = {}
        for name in GenerationSpec.model_fields:
            values[name] = next(
                (v for v in (getattr(g, name) for g in (self, *fallbacks)) if v is not None), None
            )
        return GenerationSpec(**values)

    def fingerprinted(self) -> dict[str, Any]:
        """What a task's generation fingerprint hashes: every setting, those of reasoning only where set (runs
        from before they existed keep their fingerprints)."""
        unset = {k for k in ("reasoning_effort", "enable_thinking") if getattr(self, k) is None}
        return self.model_dump(exclude=unset)

    def to_params(
        self,
        seed: int | None,
        json_schema: dict[str, Any] | None = None,
        reasoning_markers: Sequence[tuple[str, str]] = THINK_MARKERS,
    ) -> GenerationParams:
        return GenerationParams(
            max_new_tokens=self.max_new_tokens or 256,
            temperature=self.temperature or 0.0,
            top_p=self.top_p or 1.0,
            top_k=self.top_k,
            stop=tuple(self.stop or ()),
            seed=seed,
            ignore_eos=bool(self.ignore_eos),
            json_schema=json_schema,
            reasoning_markers=tuple((o, c) for o, c in reasoning_markers),
            reasoning_effort=self.reasoning_effort,
            enable_thinking=self.enable_thinking,
        )


class ScorerSpec(Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class PerfSweep(Strict):
    """A performance sweep: every combination of input length, output length and concurrency (or rate)."""

    input_tokens: list[PromptTokens | Literal["max"]] = Field(default_factory=lambda: [512, 2048])  # type: ignore[arg-type]
    output_tokens: list[Tokens] = Field(default_factory=lambda: [128])
    concurrency: list[Count] = Field(default_factory=lambda: [1])
    request_rates: list[Annotated[float, Field(gt=0, le=MAX_COUNT)]] = Field(
        default_factory=list, description="arrival rates, requests/s (see `arrival`)"
    )
    requests_per_point: int = Field(default=8, ge=1, le=MAX_COUNT)
    warmup_requests: int = Field(default=1, ge=0, le=MAX_COUNT)
    repeats: int = Field(default=1, ge=1, le=10_000)
    prompt_kind: Literal["random", "text"] = "random"
    fit_to_model: bool = Field(
        default=False,
        description="cut input lengths that do not fit to the model's limit less the output, instead of "
        "recording them as failed points (one point per resulting length)",
    )
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    saturation: SaturationSpec | None = Field(
        default=None, description="also search the highest request rate that meets SLOs, per input x output"
    )
    workload: Workload | None = Field(
        default=None, description="shared_prefix, multi_turn or trace; none: unique random prompts"
    )
    arrival: ArrivalSpec = Field(default_factory=ArrivalSpec, description="how request-rate points arrive")

    @model_validator(mode="after")
    def _workload_fits(self) -> PerfSweep:
        check_workload_fields(self.workload, self.model_fields_set)
        return self


class ChoiceSpec(Strict):
    """A multiple-choice task: each option scored by the log-probability of its continuation."""

    continuation: Literal["letter", "text"] = Field(
        default="letter", description="score the option's letter (' B') or its full text"
    )
    few_shot: int = Field(default=0, ge=0, le=64, description="solved examples before each question")
    few_shot_from: DatasetSpec | None = Field(
        default=None, description="where the examples come from (a dev split); same subject first"
    )
    circular: bool = Field(
        default=False, description="ask each question in every rotation of its options; right only if always"
    )
    answer_separator: str = Field(
        default=" ", description="what goes between the context and a continuation ('Answer:' + ' B')"
    )
    generative: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="answer with a letter instead: 'auto' where the backend cannot score log-probabilities",
    )

    @model_validator(mode="after")
    def _coherent(self) -> ChoiceSpec:
        if self.few_shot and self.few_shot_from is None:
            raise ValueError("few_shot needs few_shot_from (the split the examples come from)")
        if self.circular and self.continuation != "letter":
            raise ValueError("circular evaluation rotates lettered options: it needs continuation: letter")
        return self


class TaskSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str | None = None
    dataset: DatasetSpec | None = None
    prompt: PromptSpec = Field(default_factory=PromptSpec)
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    scorer: ScorerSpec | None = None
    json_mode: bool = Field(default=False, description="guided decoding against the sample's schema")
    tools: bool = Field(
        default=False,
        description="tool calling: each sample's `tools` (OpenAI function definitions) go with its chat "
        "request; the answer is the calls the model makes",
    )
    reasoning_markers: list[tuple[str, str]] = Field(default_factory=lambda: [("<think>", "</think>")])
    group_by: list[str] = Field(
        default_factory=list, description="sample metadata keys to break scores down by"
    )
    weight: float = Field(default=1.0, ge=0)
    perf: PerfSweep | None = None
    choices: ChoiceSpec | None = Field(
        default=None, description="multiple choice by log-likelihood (knowledge tests: MMLU, C-Eval, ARC)"
    )

    @model_validator(mode="after")
    def _scorer_or_perf(self) -> TaskSpec:
        if self.perf is None and (self.scorer is None or self.dataset is None):
            raise ValueError(
                f"task '{self.name}' needs a dataset and a scorer (quality) or a perf sweep (performance)"
            )
        return self

    @model_validator(mode="after")
    def _tools_in_chat(self) -> TaskSpec:
        if self.tools and (self.prompt.mode != "chat" or self.choices is not None or self.perf is not None):
            raise ValueError(
                f"task '{self.name}': tools go with chat prompts (prompt.mode: chat), not with choices or perf"
            )
        return self


class JudgeSpec(Strict):
    """An LLM judge that rates answers 1-10; any model alias and backend can judge."""

    model: str
    backend: str | None = None
    prompt: str | None = Field(default=None, description="Jinja template over question, answer, reference")
    max_new_tokens: int = Field(default=256, ge=1, le=MAX_TOKENS)


class CombinedSpec(Strict):
    """A combined score: accuracy_weight x suite score + rating_weight x mean judge rating (0-1)."""

    accuracy_weight: float = Field(default=0.6, ge=0)
    rating_weight: float = Field(default=0.4, ge=0)
    judge: JudgeSpec


class SuiteConfig(Strict):
    name: str
    description: str | None = None
    tasks: list[TaskSpec] = Field(min_length=1)
    generation: GenerationSpec = Field(default_factory=GenerationSpec, description="defaults for every task")
    combined: CombinedSpec | None = None

    @field_validator("tasks")
    @classmethod
    def _unique_names(cls, tasks: list[TaskSpec]) -> list[TaskSpec]:
        names = [t.name for t in tasks]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate task name(s): {', '.join(sorted(dup))}")
        return tasks


class Suite(BaseModel):
    """A loaded suite: its validated config, where it lives, and the hash of its content."""

    config: SuiteConfig
    path: Path
    content_hash: str

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def directory(self) -> Path:
        return self.path.parent


def load_suite(path: Path | str) -> Suite:
    path = resolve_suite_path(path)
    data, node = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a suite file must be a mapping with 'name' and 'tasks'")
    config = validate_yaml(SuiteConfig, path, data, node)
    return Suite(config=config, path=path, content_hash=stable_hash(data))


def resolve_suite_path(path: Path | str) -> Path:
    p = Path(path)
    if p.exists():
        return p
    for candidate in (SUITES_DIR / p, SUITES_DIR / f"{p}.yaml"):
        if candidate.exists():
            return candidate
    raise ConfigError(
        f"{path}: no such suite file", hint=f"suites shipped: {', '.join(list_suites()) or 'none'}"
    )


def list_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
