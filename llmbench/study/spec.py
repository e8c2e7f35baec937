"""The study YAML: which models (and variants) run which suites with which seeds, and how to rank them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from llmbench.config.models import ModelConfig
from llmbench.config.strict import Strict
from llmbench.config.suite import JudgeSpec
from llmbench.config.yamlio import load_yaml, validate_yaml
from llmbench.errors import ConfigError
from llmbench.hashing import stable_hash

COST_AXES = (
    "ttft_ms_p50_2k",
    "ttft_ms_p50_32k",
    "output_tokens_per_s_c1",
    "output_tokens_per_s_c8",
    "peak_vram_mib",
    "load_time_s",
    "energy_per_output_token_j",
    "cost_per_correct_usd",
    "api_cost_per_correct_usd",
)


class ModelVariant(Strict):
    """A model of the study written inline: a base alias (or config file) with fields changed."""

    base: str = Field(description="alias from configs/models or a model config YAML")
    name: str | None = Field(default=None, description="the variant's name in results and the leaderboard")
    backend: str | None = None
    set: dict[str, Any] = Field(default_factory=dict, description="model config fields to change")

    @field_validator("set")
    @classmethod
    def _known_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(ModelConfig.model_fields) - {"name"})
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], list(ModelConfig.model_fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"unknown model config field '{unknown[0]}'{hint}")
        return value


class SuiteEntry(Strict):
    """A suite of the study with its own sample limit, task filter and repeats."""

    suite: str = Field(description="suite name from suites/ or a suite YAML")
    limit: int | None = Field(default=None, ge=1)
    tasks: list[str] = Field(default_factory=list)
    repeat: int = Field(default=1, ge=1, description="runs per seed (determinism, flip rate)")


class CompositeSpec(Strict):
    """The composite quality score: accuracy_weight x weighted suite accuracy + rating_weight x judge rating."""

    accuracy_weight: float = Field(default=0.6, ge=0)
    rating_weight: float = Field(default=0.4, ge=0)
    judge: JudgeSpec | None = Field(default=None, description="without a judge the composite is accuracy")


class ConstraintSpec(Strict):
    max_vram_mib: float | None = Field(default=None, gt=0)
    max_ttft_ms: float | None = Field(default=None, gt=0)
    min_tokens_per_s: float | None = Field(default=None, gt=0)


class LeaderboardSpec(Strict):
    weights: dict[str, float] = Field(default_factory=dict, description="per suite; missing suites weigh 1")
    composite: CompositeSpec = Field(default_factory=CompositeSpec)
    cost: list[Literal[COST_AXES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(COST_AXES), description="cost columns to show"
    )
    pareto_cost: Literal[COST_AXES] = "peak_vram_mib"  # type: ignore[valid-type]
    price_per_hour_usd: float | None = Field(
        default=None,
        gt=0,
        description="the host's price, for the host cost per correct answer (API models: `prices` in their configs)",
    )
    constraints: ConstraintSpec = Field(default_factory=ConstraintSpec)


class StudyConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str | None = None
    models: list[ModelVariant] = Field(min_length=1, description="aliases, config files or inline variants")
    suites: list[SuiteEntry] = Field(min_length=1, description="suite names or entries with limit/tasks")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    leaderboard: LeaderboardSpec = Field(default_factory=LeaderboardSpec)
    results_dir: str | None = Field(
        default=None, description="where cells write (default results/study/<name>); on Ray, a shared path"
    )
    shards: int = Field(default=1, ge=1, description="split each quality cell into this many shards (Ray)")

    @field_validator("models", "suites", mode="before")
    @classmethod
    def _short_forms(cls, value: Any, info: Any) -> Any:
        """`- qwen2.5-7b` is `- {base: qwen2.5-7b}`; `- math` is `- {suite: math}`."""
        key = "base" if info.field_name == "models" else "suite"
        if isinstance(value, list):
            return [{key: v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds repeat: give each seed once (use a suite's `repeat` to rerun)")
        return seeds

    @model_validator(mode="after")
    def _weights_name_suites(self) -> StudyConfig:
        names = {Path(s.suite).stem for s in self.suites}
        unknown = sorted(set(self.leaderboard.weights) - names)
        if unknown:
            raise ValueError(f"leaderboard.weights names a suite the study does not run: {unknown[0]}")
        return self


class Study:
    """A loaded study: its config, file, content hash and the YAML nodes (for file:line errors later)."""

    def __init__(self, config: StudyConfig, path: Path, content_hash: str, node: Any) -> None:
        self.config = config
        self.path = path
        self.content_hash = content_hash
        self.node = node

    @property
    def name(self) -> str:
        return self.config.name

    def results_dir(self, override: Path | None = None) -> Path:
        if override is not None:
            return override
        if self.config.results_dir:
            return Path(self.config.results_dir)
        return Path("results") / "study" / self.name


def load_study(path: Path | str) -> Study:
    path = Path(path)
    data, node = load_yaml(path)
    if not isinstance(data, dict) or "models" not in data:
        raise ConfigError(f"{path}:1: a study file must be a mapping with 'name', 'models' and 'suites'")
    config = validate_yaml(StudyConfig, path, data, node)
    return Study(config, path, stable_hash(data), node)
