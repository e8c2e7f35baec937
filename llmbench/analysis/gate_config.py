"""The regression gate's thresholds (configs/gates.yaml): significance level, floors per metric, history window."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from llmbench.analysis.noise import MIN_RUNS
from llmbench.config.strict import SaneNumbers

DEFAULT_GATES = Path(__file__).resolve().parents[2] / "configs" / "gates.yaml"
DEFAULT_PERFORMANCE: dict[str, float | None] = {
    "ttft_ms p50": 0.10,
    "ttft_ms p90": 0.10,
    "tpot_ms p50": 0.10,
    "output_tokens_per_s": 0.10,
    "goodput_per_s": 0.10,
    "peak_vram_mib": 0.05,
    "energy_per_output_token_j": 0.10,
}


class StrictModel(SaneNumbers):
    model_config = ConfigDict(extra="forbid")


class QualityThresholds(StrictModel):
    """Largest tolerated absolute drop of a quality metric (0.02 = two points of accuracy)."""

    default: float = Field(default=0.02, ge=0)
    # Overrides by name or glob of "metric", "task/metric" or "suite/task/metric": "pass@1", "gsm8k/*".
    metrics: dict[str, float] = Field(default_factory=dict)
    primary_only: bool = True  # gate each task's primary metric (and the suite score), not every side metric
    breakdowns: bool = False  # also gate breakdown cells (per length, language, ...)
    suite_score: bool = True


class HistorySettings(StrictModel):
    """How the last good nights (`--history DIR`) are used: their spread is each figure's noise band, their
    median a second reference besides the pinned baseline."""

    window: int = Field(default=7, ge=MIN_RUNS)  # the last N good nights
    against_median: bool = True  # also judge each night against the median of those nights


class GateThresholds(StrictModel):
    """Thresholds of the regression gate (configs/gates.yaml)."""

    alpha: float = Field(default=0.05, gt=0, lt=1)  # over the whole family of tests (Holm)
    # Let gated figures of the baseline be absent from the candidate (a smaller task selection on purpose).
    allow_missing: bool = False
    quality: QualityThresholds = Field(default_factory=lambda: QualityThresholds())
    # Floor of the relative worsening per performance row name or glob; null switches a default off.
    performance: dict[str, float | None] = Field(default_factory=lambda: dict(DEFAULT_PERFORMANCE))
    history: HistorySettings = Field(default_factory=lambda: HistorySettings())

    @field_validator("performance", mode="before")
    @classmethod
    def _merge_defaults(cls, value: Any) -> Any:
        return {**DEFAULT_PERFORMANCE, **value} if isinstance(value, dict) else value

    def quality_threshold(self, suite: str, task: str, metric: str) -> float:
        """The first override whose pattern matches metric, task/metric or suite/task/metric; else the default."""
        for pattern, value in self.quality.metrics.items():
            if any(
                fnmatchcase(name, pattern)
                for name in (metric, f"{task}/{metric}", f"{suite}/{task}/{metric}")
            ):
                return value
        return self.quality.default

    def performance_threshold(self, name: str) -> float | None:
        exact = self.performance.get(name, ...)
        if exact is not ...:
            return exact
        return next((v for p, v in self.performance.items() if fnmatchcase(name, p)), None)


def load_thresholds(path: Path | None = None) -> GateThresholds:
    """Thresholds from a YAML file (configs/gates.yaml by default; built-in defaults if that is absent)."""
    from llmbench.config.yamlio import load_yaml, validate_yaml

    if path is None and not DEFAULT_GATES.exists():
        return GateThresholds()
    path = path or DEFAULT_GATES
    data, node = load_yaml(path)
    return validate_yaml(GateThresholds, path, data if data is not None else {}, node)  # type: ignore[no-any-return]
