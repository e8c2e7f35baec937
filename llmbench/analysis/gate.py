"""The regression gate: does a candidate run fall behind a baseline by more than noise and tolerance?

Quality metrics regress when they drop by more than their threshold AND the paired test says the drop is
significant; performance figures regress when they worsen by more than a relative threshold. "Drop" and
"worsen" follow `llmbench.analysis.direction` (a rising timeout rate or latency is worse). A gated figure that the
baseline has and the candidate lacks fails too, as does a candidate of another suite: a gate that compared
nothing must not pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from llmbench.analysis.compare import Row, build_comparison, measures_model
from llmbench.config.strict import SaneNumbers
from llmbench.results.schema import MetricValue, RunResult

DEFAULT_GATES = Path(__file__).resolve().parents[2] / "configs" / "gates.yaml"
DEFAULT_PERFORMANCE: dict[str, float | None] = {
    "ttft_ms p50": 0.10,
    "output_tokens_per_s": 0.10,
    "peak_vram_mib": 0.05,
    "energy_per_output_token_j": 0.10,
}


class _Strict(SaneNumbers):
    model_config = ConfigDict(extra="forbid")


class QualityThresholds(_Strict):
    """Largest tolerated absolute drop of a quality metric (0.02 = two points of accuracy)."""

    default: float = Field(default=0.02, ge=0)
    # Overrides by name or glob of "metric", "task/metric" or "suite/task/metric": "pass@1", "gsm8k/*".
    metrics: dict[str, float] = Field(default_factory=dict)
    primary_only: bool = True  # gate each task's primary metric (and the suite score), not every side metric
    breakdowns: bool = False  # also gate breakdown cells (per length, language, ...)
    suite_score: bool = True


class GateThresholds(_Strict):
    """Thresholds of the regression gate (configs/gates.yaml)."""

    alpha: float = Field(default=0.05, gt=0, lt=1)
    # Let gated figures of the baseline be absent from the candidate (a smaller task selection on purpose).
    allow_missing: bool = False
    quality: QualityThresholds = Field(default_factory=lambda: QualityThresholds())
    # Largest tolerated relative worsening per performance row name or glob; null switches a default off.
    performance: dict[str, float | None] = Field(default_factory=lambda: dict(DEFAULT_PERFORMANCE))

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


@dataclass
class Regression:
    """One regressed figure; `str()` is the one-line reason."""

    kind: str  # "quality", "performance", "missing" or "suite"
    suite: str
    task: str
    metric: str
    baseline: float | None
    candidate: float | None
    threshold: float | None
    p_value: float | None
    reason: str

    def __str__(self) -> str:
        return self.reason


def load_thresholds(path: Path | None = None) -> GateThresholds:
    """Thresholds from a YAML file (configs/gates.yaml by default; built-in defaults if that is absent)."""
    from llmbench.config.yamlio import load_yaml, validate_yaml

    if path is None and not DEFAULT_GATES.exists():
        return GateThresholds()
    path = path or DEFAULT_GATES
    data, node = load_yaml(path)
    return validate_yaml(GateThresholds, path, data if data is not None else {}, node)  # type: ignore[no-any-return]


def check_regressions(
    baseline: RunResult, candidate: RunResult, thresholds: GateThresholds
) -> list[Regression]:
    """Every regression of `candidate` against `baseline`: quality, performance, and gated figures missing."""
    if candidate.suite_name != baseline.suite_name:
        reason = (
            f"the candidate ran suite '{candidate.suite_name}' but the baseline ran '{baseline.suite_name}': "
            "nothing to compare"
        )
        return [Regression("suite", candidate.suite_name, "(suite)", "suite", None, None, None, None, reason)]
    comparison = build_comparison([baseline, candidate], baseline=baseline, alpha=thresholds.alpha)
    # Timings gate only against the same backend: another engine's latency is a comparison, not a regression.
    timed = measures_model(baseline) and measures_model(candidate) and same_backend(baseline, candidate)
    base = comparison.baseline if comparison.baseline is not None else 0
    cand = 1 - base
    found: list[Regression] = []
    for row in comparison.rows:
        if not _gated(row, baseline, thresholds) or (row.section == "performance" and not timed):
            continue  # the reference backend's timings are not measurements: nothing to gate
        if _present(row.cells[base]) and not _present(row.cells[cand]):
            if not thresholds.allow_missing:
                found.append(_missing(row, base))
            continue
        reg = (_performance if row.section == "performance" else _quality)(row, base, cand, thresholds)
        if reg is not None:
            found.append(reg)
    return found


def same_backend(baseline: RunResult, candidate: RunResult) -> bool:
    return baseline.backend.backend == candidate.backend.backend


def ungated(baseline: RunResult, candidate: RunResult) -> str | None:
    """Why the gate checks `candidate` only in part, or not at all; None when it checks everything."""
    if candidate.suite_name != baseline.suite_name:
        return f"ran suite '{candidate.suite_name}', the baseline '{baseline.suite_name}': not gated"
    if not same_backend(baseline, candidate):
        return (
            f"ran on {candidate.backend.backend}, the baseline on {baseline.backend.backend}: "
            "quality gated, timings not"
        )
    return None


def _present(cell: MetricValue | None) -> bool:
    return cell is not None and cell.n > 0


def _missing(row: Row, base: int) -> Regression:
    where = row.suite if row.section == "performance" else f"{row.suite}/{row.task}"
    a = row.cells[base]
    reason = (
        f"{where} {row.metric} is in the baseline but missing from the candidate "
        "(set allow_missing: true in the gate config to accept that)"
    )
    return Regression(
        "missing", row.suite, row.task, row.metric, a.value if a else None, None, None, None, reason
    )


def _gated(row: Row, baseline: RunResult, t: GateThresholds) -> bool:
    if row.higher_is_better is None:
        return False
    if row.section == "quality":
        task = baseline.task(row.task)
        return not t.quality.primary_only or (task is not None and task.primary_metric == row.metric)
    if row.section == "breakdown":
        return t.quality.breakdowns
    if row.section == "suite":  # a one-task suite's score is that task's metric: gated once, there
        return t.quality.suite_score and sum(1 for task in baseline.tasks if task.weight > 0) > 1
    return row.section == "performance" and t.performance_threshold(row.metric) is not None


def _quality(row: Row, base: int, cand: int, t: GateThresholds) -> Regression | None:
    a, b, delta = row.cells[base], row.cells[cand], row.deltas[cand]
    if a is None or b is None or delta is None:
        return None
    drop = (a.value - b.value) if row.higher_is_better else (b.value - a.value)
    threshold = t.quality_threshold(row.suite, row.task, row.metric)
    if drop <= threshold or delta.p_value is None or not delta.significant:
        return None  # `significant` was decided at the gate's alpha: the report marks the same rows
    note = f"; fingerprints differ: {row.fingerprint_note}" if row.fingerprint_diff else ""
    moved = "fell" if row.higher_is_better else "rose"
    reason = (
        f"{row.suite}/{row.task} {row.metric} {moved} {a.value:.3f} -> {b.value:.3f} ({drop:.3f} worse, "
        f"{threshold:.3f} allowed), {delta.test} p={delta.p_value:.3g} < {t.alpha}{note}"
    )
    return Regression(
        "quality", row.suite, row.task, row.metric, a.value, b.value, threshold, delta.p_value, reason
    )


def _performance(row: Row, base: int, cand: int, t: GateThresholds) -> Regression | None:
    a, b = row.cells[base], row.cells[cand]
    threshold = t.performance_threshold(row.metric)
    if a is None or b is None or threshold is None or a.value == 0:
        return None
    worse = (a.value - b.value) / abs(a.value) if row.higher_is_better else (b.value - a.value) / abs(a.value)
    if worse <= threshold:
        return None
    direction = "fell" if row.higher_is_better else "rose"
    reason = (
        f"{row.suite} {row.metric} {direction} {a.value:.4g} -> {b.value:.4g} ({worse:+.1%} worse, "
        f"{threshold:.0%} allowed)"
    )
    return Regression(
        "performance", row.suite, row.task, row.metric, a.value, b.value, threshold, None, reason
    )
