"""Runs that repeat one another (same model, suite and settings, another seed) merged into one column.

A merged run is an ordinary RunResult, so the comparison, every renderer and the gate read it unchanged:
- its samples are every repeat's samples, each repeat's outputs numbered after the previous one's, so a
  sample's value in a paired test is its mean over the repeats;
- a metric that is a mean over samples gets the between-run mean with the interval of
  `stats.aggregate_repeats`, which takes the sample, not the generation, as the unit; any other metric
  (pass@k for k > 1, per-instruction shares) gets the between-run mean with Student's t over the runs;
- failure counts are the mean count per run, rounded; performance figures are between-run means, and
  latency statistics carry a t interval over the runs;
- `settings.repeat_run_ids` and `settings.seeds` say what was merged, and the column label how many runs.

Runs with the same seed (or none recorded) are merged only when one `--repeat N` made them (the same
`settings.repeat_of`): two nights of the same settings are two columns, not one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from llmbench.analysis.figures import point_key
from llmbench.analysis.significance import per_sample_values
from llmbench.results.schema import (
    Distribution,
    MetricValue,
    Performance,
    PerfPoint,
    PointRequests,
    RunResult,
    Settings,
    Summary,
    TaskResult,
)
from llmbench.run.aggregate import suite_score
from llmbench.scoring import stats

IGNORED_SETTINGS = ("seed",)  # settings that may differ between repeats
_M = TypeVar("_M", bound=BaseModel)


def repeat_key(run: RunResult) -> str:
    """What repeats share: model, suite (name and hash), model config, settings but the seed, fingerprint."""
    return header_repeat_key(run.model_dump(include=set(REPEAT_FIELDS)))


REPEAT_FIELDS = ("model_name", "suite_name", "suite_hash", "model", "settings", "fingerprint")


def header_repeat_key(header: dict[str, Any]) -> str:
    """`repeat_key` of a results file's raw header (`llmbench.results.schema.read_header`)."""
    raw = header.get("settings") or {}
    known = Settings.model_validate({k: v for k, v in raw.items() if k in Settings.model_fields})
    settings = known.model_dump(exclude=set(IGNORED_SETTINGS))  # a version-1 header lacks the defaults
    parts = [header.get(f) for f in REPEAT_FIELDS]
    parts[REPEAT_FIELDS.index("settings")] = settings
    return json.dumps(parts, sort_keys=True, default=str)


def joins(seed: object, repeat_of: object, seeds: Sequence[object]) -> bool:
    """Whether a run of a group's setting (its repeat key) is one more repeat in it: a run of the same
    `--repeat` (`repeat_of` is part of the key), or a run whose seed none of the group's `seeds` has."""
    return repeat_of is not None or (seed is not None and seed not in seeds)


def group_repeats(runs: Sequence[RunResult]) -> list[list[RunResult]]:
    """The runs in order of first appearance, each with its repeats (distinct run ids and, unless one
    `--repeat` made them, distinct seeds)."""
    groups: list[tuple[str, list[RunResult]]] = []
    for run in runs:
        key, seed = repeat_key(run), run.settings.seed
        home = next(
            (
                group
                for k, group in groups
                if k == key
                and all(r.run_id != run.run_id for r in group)
                and joins(seed, run.settings.repeat_of, [r.settings.seed for r in group])
            ),
            None,
        )
        if home is None:
            groups.append((key, [run]))
        else:
            home.append(run)
    return [group for _, group in groups]


def merge_repeats(runs: Sequence[RunResult]) -> list[RunResult]:
    """`runs` with every group of repeats replaced by one merged run, in order of first appearance."""
    return [merge(group) if len(group) > 1 else group[0] for group in group_repeats(runs)]


def merge(runs: Sequence[RunResult]) -> RunResult:
    """One run standing for `runs` (repeats of each other): between-run means with their intervals."""
    first = runs[0]
    offset = 1 + max((rec.sample_index for run in runs for rec in run.samples), default=0)
    samples = [
        rec.model_copy(update={"sample_index": rec.sample_index + i * offset})
        for i, run in enumerate(runs)
        for rec in run.samples
    ]
    tasks = []
    for name in _union(t.name for run in runs for t in run.tasks):
        pairs = [(run, task) for run in runs if (task := run.task(name)) is not None]
        tasks.append(_merge_task(pairs))
    settings = first.settings.model_copy(
        update={
            "seed": None,
            "seeds": [r.settings.seed for r in runs],
            "repeat_run_ids": [r.run_id for r in runs],
        }
    )
    performance = _mean_model([r.performance for r in runs])
    performance.sweep = _merge_sweeps([r.performance for r in runs])
    return first.model_copy(
        update={
            "run_id": "+".join(r.run_id for r in runs),
            "created_at": max(r.created_at for r in runs),
            "finished": all(r.finished for r in runs),
            "settings": settings,
            "tasks": tasks,
            "suite_score": suite_score(tasks),
            "performance": performance,
            "samples": samples,
            "summary": Summary(
                samples=len(samples), repeats=len(runs), errors=sum(r.summary.errors for r in runs)
            ),
        }
    )


def _merge_task(pairs: list[tuple[RunResult, TaskResult]]) -> TaskResult:
    tasks = [t for _, t in pairs]
    metrics = {name: _merge_metric(pairs, name, None) for name in _union(m for t in tasks for m in t.metrics)}
    breakdown = {
        label: {
            name: _merge_metric(pairs, name, label)
            for name in _union(m for t in tasks for m in t.breakdown.get(label, {}))
        }
        for label in _union(label for t in tasks for label in t.breakdown)
    }
    counts = {
        k: round(sum(t.counts.get(k, 0) for t in tasks) / len(tasks))
        for k in _union(k for t in tasks for k in t.counts)
    }
    return tasks[0].model_copy(
        update={
            "metrics": metrics,
            "breakdown": breakdown,
            "counts": counts,
            "n_samples": max(t.n_samples for t in tasks),
            "n_errors": round(sum(t.n_errors for t in tasks) / len(tasks)),
        }
    )


def _merge_metric(pairs: list[tuple[RunResult, TaskResult]], name: str, label: str | None) -> MetricValue:
    present = []
    for run, task in pairs:
        mv = (task.breakdown.get(label, {}) if label else task.metrics).get(name)
        if mv is not None:
            present.append((run, task, mv))
    per_repeat = [per_sample_values(run, task, name, label) for run, task, _ in present]
    if all(per_repeat) and all(_is_mean_of(v, mv) for v, (_, _, mv) in zip(per_repeat, present, strict=True)):
        return stats.aggregate_repeats(per_repeat)
    return stats.mean_over_runs([mv.value for _, _, mv in present])


def _is_mean_of(per_sample: dict[str, float], mv: MetricValue) -> bool:
    """True when the run's metric is the plain mean of its per-sample values (so samples can be the unit)."""
    mean = sum(per_sample.values()) / len(per_sample)
    return abs(mean - mv.value) <= 1e-9 * max(1.0, abs(mv.value))


def _merge_sweeps(perfs: Sequence[Performance]) -> list[PerfPoint]:
    """Each point averaged with the same point of the other repeats; its requests are all of theirs."""
    points: dict[tuple[Any, ...], list[PerfPoint]] = {}
    for perf in perfs:
        for pt in perf.sweep:
            key = point_key(pt)
            points.setdefault(key, []).append(pt)
    merged = []
    for pts in points.values():
        ok = [p for p in pts if not p.error] or pts
        mean = _mean_model(ok)
        requests = [p.requests for p in ok]
        mean.requests = (
            PointRequests(
                ttft_ms=[v for r in requests if r for v in r.ttft_ms],
                tpot_ms=[v for r in requests if r for v in r.tpot_ms],
            )
            if all(requests)
            else None
        )
        merged.append(mean)
    return merged


def _mean_model(models: Sequence[_M]) -> _M:
    """The first model with each number replaced by its mean over `models` and each distribution merged."""
    update: dict[str, Any] = {}
    for name in type(models[0]).model_fields:
        values = [v for m in models if (v := getattr(m, name)) is not None]
        if not values:
            continue
        if isinstance(values[0], Distribution):
            update[name] = _mean_distribution(values)
        elif isinstance(values[0], float | int) and not isinstance(values[0], bool):
            mean = sum(values) / len(values)
            update[name] = round(mean) if isinstance(values[0], int) else mean
    return models[0].model_copy(update=update)


def _mean_distribution(dists: Sequence[Distribution]) -> Distribution:
    """Between-run means of each statistic, the overall min and max, and t intervals over the runs."""
    if len(dists) == 1:
        return dists[0]
    over = {s: stats.mean_over_runs([getattr(d, s) for d in dists]) for s in ("mean", "p50", "p90", "p99")}
    ci: dict[str, tuple[float, float]] = {}
    for s, m in over.items():
        if m.ci_low is not None and m.ci_high is not None:
            ci[s] = (m.ci_low, m.ci_high)
    return Distribution(
        mean=over["mean"].value,
        p50=over["p50"].value,
        p90=over["p90"].value,
        p99=over["p99"].value,
        min=min(d.min for d in dists),
        max=max(d.max for d in dists),
        n=sum(d.n for d in dists),
        stderr=over["mean"].stderr,
        ci=ci,
    )


def _union(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))
