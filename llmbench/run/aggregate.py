"""From scored sample records to task metrics, failure counts, breakdowns and run-level performance."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from llmbench.results.schema import MetricValue, Performance, SampleRecord, TaskResult
from llmbench.run.scoring import is_failure
from llmbench.scoring.base import STATUSES, Score, ScoredOutput, Scorer
from llmbench.scoring.clustered import clustered_distribution
from llmbench.scoring.stats import distribution, summarize, wilson_interval


def scored_outputs(records: Sequence[SampleRecord]) -> list[ScoredOutput]:
    return [
        ScoredOutput(
            sample_id=r.id,
            sample_index=r.sample_index,
            score=Score(r.score or 0.0, r.status or "error", metrics=dict(r.metrics)),  # type: ignore[arg-type]
            metadata=r.metadata,
        )
        for r in records
    ]


def task_metrics(scorer: Scorer, records: Sequence[SampleRecord]) -> dict[str, MetricValue]:
    per_sample = scorer.aggregate(scored_outputs(records))
    return {name: summarize(values) for name, values in per_sample.items() if values}


def breakdown(
    scorer: Scorer, records: Sequence[SampleRecord], keys: Sequence[str]
) -> dict[str, dict[str, MetricValue]]:
    """The task's metrics per combination of metadata values, e.g. "length=4096,depth=0.5"."""
    if not keys:
        return {}
    groups: dict[str, list[SampleRecord]] = {}
    for r in records:
        label = ",".join(f"{k}={r.metadata.get(k)}" for k in keys)
        groups.setdefault(label, []).append(r)
    return {
        label: task_metrics(scorer, group)
        for label, group in sorted(groups.items(), key=lambda kv: _natural(kv[0]))
    }


def _natural(label: str) -> list[object]:
    parts: list[object] = []
    for item in label.split(","):
        _, _, value = item.partition("=")
        try:
            parts.append((0, float(value), ""))
        except ValueError:
            parts.append((1, 0.0, value))
    return parts


def task_result(
    name: str,
    scorer: Scorer,
    weight: float,
    records: Sequence[SampleRecord],
    group_by: Sequence[str],
    fingerprint: dict[str, str],
) -> TaskResult:
    counts = Counter(r.status or "error" for r in records)
    fingerprint = fingerprint | scorer.task_fingerprint(scored_outputs(records))
    return TaskResult(
        name=name,
        scorer=scorer.name,
        primary_metric=scorer.primary_metric,
        weight=weight,
        metrics=task_metrics(scorer, records),
        counts={s: counts.get(s, 0) for s in STATUSES},
        breakdown=breakdown(scorer, records, group_by),
        fingerprint=fingerprint,
        n_samples=len({r.id for r in records}),
        n_errors=sum(1 for r in records if is_failure(r)),
    )


def suite_score(tasks: Sequence[TaskResult]) -> MetricValue | None:
    """Weighted mean of the tasks' primary metrics, tasks taken as independent.

    Each task's standard error is read from its 95% interval (half-width / 1.96) where it has one:
    a Wilson interval stays informative where the plain standard error is 0 (all right or all wrong).
    Where every task is pass/fail the interval is a Wilson one on the weighted mean's effective
    sample size; otherwise a normal one from the combined standard error.
    """
    parts = [
        (t.weight, t.metrics[t.primary_metric])
        for t in tasks
        if t.primary_metric in t.metrics and t.weight > 0
    ]
    if not parts:
        return None
    if len(parts) == 1:  # one task: its own value and interval, not a normal approximation of it
        return parts[0][1].model_copy()
    total = sum(w for w, _ in parts)
    value = sum(w * m.value for w, m in parts) / total
    n = sum(m.n for _, m in parts)
    ses = [_se(m) for _, m in parts]
    if any(se is None for se in ses):
        return MetricValue(value=value, n=n, method="weighted")
    se = math.sqrt(sum((w * (e or 0.0)) ** 2 for (w, _), e in zip(parts, ses, strict=True))) / total
    if all(m.method == "wilson" and m.n > 0 for _, m in parts):
        # Pass/fail tasks: a Wilson interval on the effective sample size of the weighted mean
        # (Kish: (sum w)^2 / sum(w^2 / n)), which stays honest at 0 and 1 where a normal one is too narrow.
        n_eff = total**2 / sum(w * w / m.n for w, m in parts)
        lo, hi = wilson_interval(value * n_eff, max(1, round(n_eff)))
        return MetricValue(value=value, stderr=se, ci_low=lo, ci_high=hi, n=n, method="weighted-wilson")
    return MetricValue(
        value=value,
        stderr=se,
        ci_low=max(0.0, value - 1.96 * se),
        ci_high=min(1.0, value + 1.96 * se),
        n=n,
        method="weighted-normal",
    )


def _se(m: MetricValue) -> float | None:
    if m.ci_low is not None and m.ci_high is not None:
        return (m.ci_high - m.ci_low) / (2 * 1.96)
    return m.stderr


def performance(
    records: Sequence[SampleRecord],
    itl_ms: Sequence[Sequence[float]],
    wall_s: float,
    output_tokens: int,
) -> Performance:
    """Latency distributions over every generated sample; aggregate throughput = `output_tokens` / `wall_s`.

    `itl_ms` holds each request's token gaps; the interval resamples requests, since one request's gaps
    are correlated. The caller passes the tokens generated within `wall_s` (a resumed run's earlier samples have
    latencies but were not generated in this session's wall time).
    """
    timed = [r for r in records if r.error is None and r.latency_ms is not None]
    per_request = [
        (r.tokens_out or 0) / (r.latency_ms / 1000) for r in timed if r.latency_ms and r.tokens_out
    ]
    return Performance(
        ttft_ms=distribution([r.ttft_ms for r in timed if r.ttft_ms is not None]),
        tpot_ms=distribution([r.tpot_ms for r in timed if r.tpot_ms is not None]),
        ttfot_ms=distribution([r.ttfot_ms for r in timed if r.ttfot_ms is not None]),
        itl_ms=clustered_distribution(itl_ms),
        e2e_latency_ms=distribution([r.latency_ms for r in timed if r.latency_ms is not None]),
        output_tokens_per_s=output_tokens / wall_s if wall_s > 0 and output_tokens else None,
        per_request_output_tokens_per_s=distribution(per_request),
        total_output_tokens=output_tokens,
        generation_wall_s=wall_s,
    )
