"""Build realistic RunResult objects in Python (what the runner would write), for compare/gate/report tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from llmbench.results.schema import MetricValue, Performance, PerfPoint, RunResult, SampleRecord, TaskResult
from llmbench.run.aggregate import suite_score
from llmbench.scoring.stats import distribution, summarize

FINGERPRINT = {
    "suite": "s-1a2b",
    "prompt_template": "p-3c4d",
    "chat_template": "c-5e6f",
    "generation": "g-7a8b",
}


def verdicts(n: int, rate: float, seed: int) -> list[float]:
    """n independent 0/1 verdicts, correct with probability `rate`."""
    return (np.random.default_rng(seed).random(n) < rate).astype(float).tolist()


def with_flips(values: Sequence[float], flip_rate: float, seed: int) -> list[float]:
    """The same verdicts with each one flipped with probability `flip_rate` (sampling noise of another seed)."""
    flips = np.random.default_rng(seed).random(len(values)) < flip_rate
    return [1.0 - v if f else v for v, f in zip(values, flips, strict=True)]


def longctx_scores(
    lengths: Sequence[int], depths: Sequence[float], per_cell: int, decay: float, seed: int
) -> tuple[list[float], list[dict[str, Any]]]:
    """Needle verdicts whose accuracy falls with length (by `decay` per doubling), and their metadata."""
    rng = np.random.default_rng(seed)
    scores, meta = [], []
    for i, length in enumerate(lengths):
        for depth in depths:
            rate = max(0.05, 0.98 - decay * i - (0.1 if depth == 0.5 else 0.0))
            for _ in range(per_cell):
                scores.append(float(rng.random() < rate))
                meta.append({"length": length, "depth": depth})
    return scores, meta


def task_result(
    name: str,
    scores: Sequence[float],
    *,
    metadata: Sequence[Mapping[str, Any]] | None = None,
    group_by: Sequence[str] = (),
    fingerprint: Mapping[str, str] | None = None,
    primary: str = "accuracy",
    weight: float = 1.0,
    extra_metrics: Mapping[str, Sequence[float]] | None = None,
) -> tuple[TaskResult, list[SampleRecord]]:
    """A task's aggregate (as the runner computes it) and its per-sample records.

    `extra_metrics` are side metrics (timeout_rate, no_answer, ...) with one value per sample.
    """
    metadata = metadata or [{} for _ in scores]
    extra = {k: list(v) for k, v in (extra_metrics or {}).items()}
    rng = np.random.default_rng(len(scores))
    records = []
    for i, (s, meta) in enumerate(zip(scores, metadata, strict=True)):
        status = "correct" if s == 1.0 else ("unparsed" if i % 17 == 3 else "wrong")
        ttft = float(rng.lognormal(np.log(45), 0.25))
        out = int(rng.integers(60, 300))
        tpot = float(rng.normal(11.5, 0.8))
        records.append(
            SampleRecord(
                task=name,
                id=f"{name}-{i:04d}",
                score=s,
                status=status,
                metadata=dict(meta),
                metrics={k: v[i] for k, v in extra.items()},
                output=f"answer {i}",
                tokens_in=int(rng.integers(200, 900)),
                tokens_out=out,
                ttft_ms=ttft,
                tpot_ms=tpot,
                latency_ms=ttft + tpot * out,
                prompt_hash=f"h{i:04d}",
                finish_reason="stop",
            )
        )
    breakdown: dict[str, dict[str, MetricValue]] = {}
    if group_by:
        groups: dict[str, list[float]] = {}
        for s, meta in zip(scores, metadata, strict=True):
            groups.setdefault(",".join(f"{k}={meta.get(k)}" for k in group_by), []).append(s)
        breakdown = {label: {primary: summarize(vals)} for label, vals in groups.items()}
    counts = {k: 0 for k in ("correct", "wrong", "unparsed", "truncated", "timeout", "error")}
    for r in records:
        counts[r.status or "error"] += 1
    task = TaskResult(
        name=name,
        scorer="exact",
        primary_metric=primary,
        weight=weight,
        metrics={primary: summarize(scores)} | {k: summarize(v) for k, v in extra.items()},
        counts=counts,
        breakdown=breakdown,
        fingerprint=dict(fingerprint or FINGERPRINT),
        n_samples=len(scores),
    )
    return task, records


def performance(
    *,
    ttft_ms: float = 45.0,
    tokens_per_s: float = 2400.0,
    peak_vram_mib: float | None = 17200.0,
    energy_per_token_j: float | None = 0.35,
    load_time_s: float = 38.0,
    seed: int = 0,
    sweep: bool = False,
) -> Performance:
    """Run-level performance figures around the given centres (H100-like defaults for an 8B model)."""
    rng = np.random.default_rng(seed)
    ttft = rng.lognormal(np.log(ttft_ms), 0.2, 300)
    tpot = rng.normal(1000 * 64 / tokens_per_s, 0.5, 300)
    total_tokens = 60_000
    points = []
    if sweep:
        for length in (128, 512, 2048, 8192):
            points.append(
                PerfPoint(
                    input_tokens=length,
                    output_tokens=128,
                    concurrency=1,
                    n_requests=20,
                    ttft_ms=distribution(
                        rng.lognormal(np.log(ttft_ms * (1 + length / 2048)), 0.1, 20).tolist()
                    ),
                    output_tokens_per_s=tokens_per_s / 16 * (1 - length / 20000),
                )
            )
        for conc in (1, 4, 16, 64):
            points.append(
                PerfPoint(
                    input_tokens=512,
                    output_tokens=128,
                    concurrency=conc,
                    n_requests=64,
                    ttft_ms=distribution(rng.lognormal(np.log(ttft_ms * (1 + conc / 16)), 0.1, 64).tolist()),
                    output_tokens_per_s=tokens_per_s / 16 * conc**0.8,
                )
            )
    return Performance(
        ttft_ms=distribution(ttft.tolist()),
        tpot_ms=distribution(tpot.tolist()),
        e2e_latency_ms=distribution((ttft + tpot * 180).tolist()),
        output_tokens_per_s=tokens_per_s,
        total_output_tokens=total_tokens,
        generation_wall_s=total_tokens / tokens_per_s,
        load_time_s=load_time_s,
        peak_vram_mib=peak_vram_mib,
        peak_vram_reason=None if peak_vram_mib else "no NVIDIA GPU",
        energy_j=energy_per_token_j * total_tokens if energy_per_token_j else None,
        energy_per_output_token_j=energy_per_token_j,
        sweep=points,
    )


def make_run(
    model_name: str,
    tasks: Mapping[str, Sequence[float]],
    *,
    suite: str = "math",
    backend: str = "vllm",
    created_at: str = "2026-11-20T10:00:00+00:00",
    run_id: str | None = None,
    fingerprint: Mapping[str, str] | None = None,
    task_fingerprints: Mapping[str, Mapping[str, str]] | None = None,
    longctx: tuple[list[float], list[dict[str, Any]]] | None = None,
    perf: Performance | None = None,
    seed: int | None = None,
    extra_metrics: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
) -> RunResult:
    """A finished run of `suite` on `model_name` with the given per-sample verdicts per task.

    `seed` goes into the settings as the runner records it; `extra_metrics` maps a task to its side metrics.
    """
    results, records = [], []
    for name, scores in tasks.items():
        fp = (task_fingerprints or {}).get(name, FINGERPRINT)
        t, recs = task_result(name, scores, fingerprint=fp, extra_metrics=(extra_metrics or {}).get(name))
        results.append(t)
        records += recs
    if longctx is not None:
        t, recs = task_result("needle", longctx[0], metadata=longctx[1], group_by=("length", "depth"))
        results.append(t)
        records += recs
    return RunResult(
        run_id=run_id or f"{model_name}-{suite}-{created_at[:10]}" + ("" if seed is None else f"-seed{seed}"),
        created_at=created_at,
        llmbench_version="0.1.0",
        model={"name": model_name, "model": f"org/{model_name}"},
        model_name=model_name,
        backend={"backend": backend, "model": f"org/{model_name}", "dtype": "bfloat16"},
        suite={"name": suite},
        suite_name=suite,
        suite_hash="s-1a2b",
        settings={} if seed is None else {"limit": None, "tasks": [], "seed": seed, "backend": backend},
        environment={"gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3"}], "driver": "550.54"},
        fingerprint=dict(fingerprint or {**FINGERPRINT, "backend": backend}),
        tasks=results,
        suite_score=suite_score(results),
        performance=perf or performance(),
        samples=records,
    )
