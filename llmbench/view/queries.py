"""What the viewer's pages ask of runs, as JSON-ready dicts: the run list, one run, its samples, one sample.

Pure functions of results (no HTTP here). Samples are addressed by their position in the file, which a
results file never changes; filters and pages are applied here so a browser never holds a whole run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from llmbench.analysis.leaderboard import PERFORMANCE
from llmbench.analysis.select import variant
from llmbench.results.schema import MetricValue, RunResult, SampleRecord
from llmbench.scoring.reasoning import split_reasoning
from llmbench.view.run_index import Header

T = TypeVar("T")

STATUSES = ("correct", "wrong", "unparsed", "truncated", "timeout", "error")
FACETS = ("language", "length", "depth")  # sample metadata a suite may group by: filters where present
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
PREVIEW_CHARS = 160
DEFAULT_MARKERS = (("<think>", "</think>"),)


def metric(m: MetricValue | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {"value": m.value, "ci_low": m.ci_low, "ci_high": m.ci_high, "n": m.n, "stderr": m.stderr}


def header_row(h: Header) -> dict[str, Any]:
    """A run list row from the file's head alone."""
    raw = h.raw
    backend = raw.get("backend") if isinstance(raw.get("backend"), dict) else {}
    settings = raw.get("settings") if isinstance(raw.get("settings"), dict) else {}
    return {
        "id": h.id,
        "file": h.id,
        "error": h.error,
        "run_id": raw.get("run_id"),
        "model": raw.get("model_name"),
        "suite": raw.get("suite_name"),
        "backend": (backend or {}).get("backend"),
        "variant": (settings or {}).get("variant"),
        "created_at": raw.get("created_at"),
        "finished": raw.get("finished", True),
    }


def summary_row(row: dict[str, Any], run: RunResult) -> dict[str, Any]:
    """A run list row completed from the run read without samples: score and key performance figures."""
    return row | {
        "score": metric(run.suite_score),
        "samples": run.summary.samples or sum(t.n_samples for t in run.tasks),
        "errors": run.summary.errors,
        "measures_model": run.backend.measures_model,
        "perf": {key: get(run) for key, _, _, get in PERFORMANCE} if run.backend.measures_model else {},
    }


def perf_columns() -> list[dict[str, str]]:
    return [{"key": key, "title": title, "unit": unit} for key, title, unit, _ in PERFORMANCE]


def run_detail(run_id: str, run: RunResult) -> dict[str, Any]:
    """One run: identity, settings, fingerprint, per-task metrics and failure counts, and the filters' values."""
    facets: dict[str, set[str]] = {k: set() for k in FACETS}
    for rec in run.samples:
        for key in FACETS:
            if rec.metadata.get(key) is not None:
                facets[key].add(str(rec.metadata[key]))
    return {
        "id": run_id,
        "run_id": run.run_id,
        "model": run.model_name,
        "model_path": run.backend.model,
        "suite": run.suite_name,
        "backend": run.backend.backend,
        "variant": variant(run) or None,
        "created_at": run.created_at,
        "finished": run.finished,
        "score": metric(run.suite_score),
        "settings": run.settings.model_dump(exclude_defaults=True),
        "fingerprint": run.fingerprint,
        "device": run.environment.device(),
        "measures_model": run.backend.measures_model,
        "perf": {key: get(run) for key, _, _, get in PERFORMANCE} if run.backend.measures_model else {},
        "perf_columns": perf_columns(),
        "tasks": [
            {
                "name": t.name,
                "scorer": t.scorer,
                "primary": t.primary_metric,
                "metrics": {k: metric(v) for k, v in t.metrics.items()},
                "counts": t.counts,
                "n": t.n_samples,
                "breakdown": {
                    label: metric(ms.get(t.primary_metric)) for label, ms in sorted(t.breakdown.items())
                },
            }
            for t in run.tasks
        ],
        "statuses": list(STATUSES),
        "facets": {k: sorted(v, key=_natural) for k, v in facets.items() if v},
        "warnings": run.summary.warnings,
    }


def _natural(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


@dataclass(frozen=True)
class SampleFilter:
    """What the sample table shows: every field optional; `verdict` is "correct" or "incorrect"."""

    task: str | None = None
    verdict: str | None = None
    status: str | None = None
    language: str | None = None
    length: str | None = None
    depth: str | None = None
    text: str | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> SampleFilter:
        return cls(**{k: (query.get(k) or None) for k in cls.__dataclass_fields__})

    def matches(self, rec: SampleRecord) -> bool:
        if self.task and rec.task != self.task:
            return False
        if self.verdict and (rec.status == "correct") != (self.verdict == "correct"):
            return False
        if self.status and (rec.status or "error") != self.status:
            return False
        for key in FACETS:
            want = getattr(self, key)
            if want is not None and str(rec.metadata.get(key)) != want:
                return False
        return not self.text or self.text.casefold() in searchable(rec)


def searchable(rec: SampleRecord) -> str:
    prompt = (
        rec.prompt
        if isinstance(rec.prompt, str)
        else " ".join(m.get("content", "") for m in rec.prompt or [])
    )
    return " ".join((rec.id, prompt, rec.output or "", str(rec.reference or ""), rec.error or "")).casefold()


def page_bounds(query: Mapping[str, str]) -> tuple[int, int]:
    """(page from 1, page size) from the query; bad numbers fall back to the first page."""
    try:
        page = max(1, int(query.get("page") or 1))
        size = min(MAX_PAGE_SIZE, max(1, int(query.get("size") or PAGE_SIZE)))
    except ValueError:
        return 1, PAGE_SIZE
    return page, size


def sample_row(key: int, rec: SampleRecord) -> dict[str, Any]:
    output = rec.output if rec.output is not None else (rec.error or "")
    return {
        "key": key,
        "task": rec.task,
        "id": rec.id,
        "sample_index": rec.sample_index,
        "status": rec.status or ("error" if rec.error else None),
        "score": rec.score,
        "preview": output[:PREVIEW_CHARS],
        "tokens_out": rec.tokens_out,
        "ttft_ms": rec.ttft_ms,
        "latency_ms": rec.latency_ms,
        **{k: rec.metadata.get(k) for k in FACETS if rec.metadata.get(k) is not None},
    }


def one_page(items: Sequence[T], page: int, size: int, row: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """Page `page` (from 1; past the last, the last) of `items` with `size` to a page, each shown as `row`."""
    pages = max(1, -(-len(items) // size))
    page = min(page, pages)
    shown = items[(page - 1) * size : page * size]
    return {"total": len(items), "page": page, "pages": pages, "size": size, "rows": [row(x) for x in shown]}


def samples_page(run: RunResult, flt: SampleFilter, page: int, size: int) -> dict[str, Any]:
    """The filtered samples, one page of them."""
    keys = [i for i, rec in enumerate(run.samples) if flt.matches(rec)]
    return one_page(keys, page, size, lambda i: sample_row(i, run.samples[i]))


def markers_of(run: RunResult, task: str) -> list[tuple[str, str]]:
    """The task's reasoning markers as the suite set them: pairs of non-empty strings (the default
    `<think>` block where the file says nothing, or something else: a results file is input)."""
    tasks = run.suite.get("tasks")
    for spec in tasks if isinstance(tasks, list) else []:
        if isinstance(spec, dict) and spec.get("name") == task:
            markers = spec.get("reasoning_markers")
            if isinstance(markers, list) and markers and all(_is_marker_pair(m) for m in markers):
                return [(m[0], m[1]) for m in markers]
    return list(DEFAULT_MARKERS)


def _is_marker_pair(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, str) and v for v in value)
    )


def sample_detail(run_id: str, run: RunResult, key: int) -> dict[str, Any]:
    """Everything about one sample: prompt as sent, output with its reasoning apart, verdict, timings."""
    rec = run.samples[key]
    split = split_reasoning(rec.output or "", markers_of(run, rec.task))
    return {
        "run": run_id,
        "model": run.model_name,
        "key": key,
        "count": len(run.samples),
        "record": rec.model_dump(mode="json"),
        "answer": split.answer,
        "reasoning": split.reasoning,
        "reasoning_unclosed": split.unclosed,
    }
