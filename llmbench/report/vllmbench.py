"""Perf points as `vllm bench serve --save-result` writes its results: the same keys, units and definitions.

One JSON object per line, one line per point of every run's performance sweep, so a run with a single
point gives a file that reads exactly like vLLM's. What llmbench cannot fill (per-request lists, the
peak-second figures) is left out rather than invented; what it adds is under `llmbench_*` keys, the
way `--metadata KEY=VALUE` adds keys to vLLM's file. docs/vllm-bench.md lists the mapping.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from llmbench.errors import UserInputError
from llmbench.results.schema import Distribution, PerfPoint, RunResult

# The percentiles every point has; vLLM writes the ones `--metric-percentiles` names (99 by default).
PERCENTILES = (("50", "p50"), ("90", "p90"), ("99", "p99"))
# llmbench field -> vLLM metric name; vLLM writes these when `--percentile-metrics` names them.
METRICS = (("ttft_ms", "ttft"), ("tpot_ms", "tpot"), ("itl_ms", "itl"), ("e2e_latency_ms", "e2el"))


def population_std(d: Distribution) -> float | None:
    """numpy's default (ddof=0) standard deviation, as vLLM reports it, from the sample standard error.

    None for a clustered distribution (ITL): its standard error is that of the per-request means, which
    does not give back the spread of the single gaps.
    """
    if d.n_clusters is not None:
        return None
    if d.stderr is None:
        return 0.0 if d.n == 1 else None
    return d.stderr * math.sqrt(d.n - 1)  # stderr = std(ddof=1) / sqrt(n)


def _date(created_at: str) -> str:
    try:
        return datetime.fromisoformat(created_at).strftime("%Y%m%d-%H%M%S")
    except ValueError:
        return created_at


def load_keys(point: PerfPoint) -> dict[str, Any]:
    """vLLM's `request_rate`, `burstiness` and `max_concurrency` for how the point's requests arrived.

    A closed-loop point is vLLM's unpaced `--max-concurrency` run ("inf", its default burstiness 1).
    Gamma arrivals carry their shape; Poisson is 1. Constant gaps are gamma's limit of an infinite
    shape, which JSON cannot hold, and a trace has neither a rate nor a shape: those are null.
    """
    if point.request_rate is None:
        if point.concurrency is not None:
            return {"request_rate": "inf", "burstiness": 1.0, "max_concurrency": point.concurrency}
        return {"request_rate": None, "burstiness": None, "max_concurrency": None}  # a trace's own times
    if point.arrival_process == "gamma":
        burstiness = point.burstiness
    elif point.arrival_process == "constant":
        burstiness = None
    else:
        burstiness = 1.0  # Poisson, and files written before arrival processes were recorded
    return {
        "request_rate": point.request_rate,
        "burstiness": burstiness,
        "max_concurrency": point.concurrency,
    }


def total_input_tokens(point: PerfPoint, completed: int) -> int:
    """The prompts' tokens over the completed requests: their measured mean where the point has one
    (a trace's prompts vary, a chat's grow turn by turn), else the point's fixed input length."""
    if point.prompt_tokens_mean is not None:
        return round(point.prompt_tokens_mean * completed)
    return point.input_tokens * completed


def point_record(run: RunResult, point: PerfPoint, index: int) -> dict[str, Any]:
    """One perf point under vLLM's keys (see the module docstring for what is left out)."""
    completed = point.e2e_latency_ms.n if point.e2e_latency_ms is not None else 0
    duration = point.duration_s
    total_in = total_input_tokens(point, completed)
    total_out = round(point.output_tokens_per_s * duration) if point.output_tokens_per_s and duration else 0
    rec: dict[str, Any] = {
        "date": _date(run.created_at),
        "endpoint_type": f"llmbench-{run.backend.backend}",
        "backend": f"llmbench-{run.backend.backend}",
        "label": None,
        "model_id": run.backend.model or run.model_name,
        "tokenizer_id": run.backend.model or run.model_name,
        "num_prompts": point.n_requests,
        **load_keys(point),
        "duration": duration,
        "completed": completed,
        "failed": point.n_requests - completed,
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "request_throughput": point.request_throughput_per_s,
        "request_goodput": point.goodput_per_s,
        "output_throughput": point.output_tokens_per_s,
        "total_token_throughput": (total_in + total_out) / duration if duration else None,
    }
    for field, name in METRICS:
        d: Distribution | None = getattr(point, field)
        rec[f"mean_{name}_ms"] = d.mean if d is not None else None
        rec[f"median_{name}_ms"] = d.p50 if d is not None else None
        rec[f"std_{name}_ms"] = population_std(d) if d is not None else None
        for word, attr in PERCENTILES:
            rec[f"p{word}_{name}_ms"] = getattr(d, attr) if d is not None else None
    rec |= {
        "llmbench_run_id": run.run_id,
        "llmbench_point": index,
        "llmbench_task": point.task,
        "llmbench_input_tokens": point.input_tokens,
        "llmbench_output_tokens": point.output_tokens,
        "llmbench_workload": point.workload,
        "llmbench_arrival_process": point.arrival_process,
        "llmbench_trace": point.trace,
        "llmbench_error": point.error,
        "llmbench_schedule_lag_p99_ms": point.schedule_lag_ms.p99 if point.schedule_lag_ms else None,
        "llmbench_client_bound": point.client_bound,
    }
    return rec


def _finite(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


def render_vllm_bench(runs: Sequence[RunResult]) -> str:
    """Every perf point of `runs` as JSON Lines; a UserInputError when no run has a performance sweep."""
    if not any(run.performance.sweep for run in runs):
        raise UserInputError(
            "--format vllm-bench writes performance sweep points, and these runs have none",
            hint="run a suite with a perf task (suites/perf.yaml) first",
        )
    lines = []
    for run in runs:
        for i, point in enumerate(run.performance.sweep):
            rec = {k: _finite(v) for k, v in point_record(run, point, i).items()}
            lines.append(json.dumps(rec, allow_nan=False))
    return "".join(line + "\n" for line in lines)
