"""The scorer interface: a sample and a model output in, a score with its details out.

A scorer never generates. Each outcome falls in one category so that failures are counted,
not hidden: `correct`, `wrong`, `unparsed` (no answer could be extracted), `timeout` (code ran
out of time) or `error` (the scorer itself could not judge). The runner adds `truncated` when
the output hit its token limit and was not correct.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from llmbench.data.base import Sample
from llmbench.registry import Registry

Status = Literal["correct", "wrong", "unparsed", "truncated", "timeout", "error"]
STATUSES: tuple[Status, ...] = ("correct", "wrong", "unparsed", "truncated", "timeout", "error")


@dataclass
class Score:
    """The verdict on one output: `value` in [0, 1] is the task's primary per-sample score."""

    value: float
    status: Status
    metrics: dict[str, float] = field(default_factory=dict)  # further per-sample figures, averaged per task
    details: dict[str, Any] = field(default_factory=dict)  # extracted answer, failing test, ...


@dataclass(frozen=True)
class ScoredOutput:
    """One sample's output and its score, as the aggregation sees it (n of them per sample for pass@k)."""

    sample_id: str
    sample_index: int
    score: Score
    metadata: dict[str, Any] = field(default_factory=dict)


class Scorer:
    """Base class for scorers; subclasses set `name` and implement `score` and `reference_output`.

    Options come from the suite YAML (`scorer: {name: math, options: {...}}`) as keyword arguments;
    an unknown option is a config error, raised by the constructor.
    """

    name: ClassVar[str] = ""
    primary_metric: ClassVar[str] = "accuracy"
    # Threads for `score_batch`: a scorer that waits on something (a subprocess, a server) raises it; Python
    # that only computes gains nothing from threads under the GIL, and starting them costs more than it does.
    max_workers: ClassVar[int] = 1

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(f"unknown option(s): {', '.join(sorted(options))}")

    def score(self, sample: Sample, output: str) -> Score:
        raise NotImplementedError

    def reference_output(self, sample: Sample) -> str:
        """An output that must score full marks; the `reference` backend answers with it."""
        return str(sample.reference)

    def score_batch(self, items: Sequence[tuple[Sample, str]]) -> list[Score]:
        """Score many outputs, on `max_workers` threads; errors become `error` scores."""
        if len(items) <= 1 or self.max_workers <= 1:
            return [self._safe_score(s, o) for s, o in items]
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            return list(pool.map(lambda it: self._safe_score(*it), items))

    def _safe_score(self, sample: Sample, output: str) -> Score:
        try:
            return self.score(sample, output)
        except Exception as exc:  # a scorer crash costs one sample, not the run
            return Score(0.0, "error", details={"error": f"{type(exc).__name__}: {exc}"})

    def task_fingerprint(self, outputs: Sequence[ScoredOutput]) -> dict[str, str]:
        """How this task's outputs were judged, where two runs must agree to be compared (default: nothing
        beyond the scorer's options, which the task's fingerprint already holds)."""
        return {}

    def close(self) -> None:
        """Release what the scorer started (processes, pools); the run calls it once a task is scored."""

    def aggregate(self, outputs: Sequence[ScoredOutput]) -> dict[str, list[float]]:
        """Per-sample values for each task metric (mean, stderr and CI are computed from these).

        The default: the primary metric is the mean score over a sample's outputs, and each
        per-sample metric likewise. Scorers with other estimators (pass@k) override this.
        """
        by_sample: dict[str, list[ScoredOutput]] = {}
        for o in outputs:
            by_sample.setdefault(o.sample_id, []).append(o)
        result: dict[str, list[float]] = {self.primary_metric: []}
        for group in by_sample.values():
            result[self.primary_metric].append(sum(o.score.value for o in group) / len(group))
            names = {k for o in group for k in o.score.metrics}
            for name in sorted(names):
                vals = [o.score.metrics[name] for o in group if name in o.score.metrics]
                result.setdefault(name, []).append(sum(vals) / len(vals))
        return result


scorers: Registry[type[Scorer]] = Registry("scorer")
