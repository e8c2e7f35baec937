"""suite + model -> requests -> backend (timed) -> scorer -> journal -> results file."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmbench import __version__
from llmbench.aggregate import performance, suite_score, task_result
from llmbench.backends.base import Backend, BackendInfo, Completion, backends, stable_hash
from llmbench.config import ModelConfig, Suite
from llmbench.data.base import DataContext
from llmbench.errors import LLMBenchError, RunFailedError, UserInputError
from llmbench.journal import Journal
from llmbench.results import PerfPoint, RunResult, SampleRecord, TaskResult, write_results
from llmbench.runstate import resolve_paths
from llmbench.scoring.base import Score
from llmbench.scoring.reasoning import split_reasoning
from llmbench.tasks import PreparedTask, prepare_task
from llmbench.tinymodel import resolve_model_path

SCORE_CHUNK = 16


@dataclass
class RunOptions:
    limit: int | None = None
    tasks: Sequence[str] = ()
    seed: int = 0
    output: Path | None = None
    results_dir: Path = Path("results")
    resume: bool = False
    run_id: str | None = None
    command: list[str] = field(default_factory=list)
    telemetry_hz: float = 20.0


class RunInterrupted(LLMBenchError):
    """Ctrl-C: what was finished is in the journal; the message says how to resume."""

    exit_code = 130


class Progress:
    """What the runner reports as it goes; the CLI renders it with rich, tests ignore it."""

    def task_started(self, name: str, total: int, done: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def task_finished(self, name: str) -> None: ...
    def message(self, text: str) -> None: ...


def run_suite(
    suite: Suite, model: ModelConfig, opts: RunOptions, progress: Progress | None = None
) -> tuple[RunResult, Path]:
    """Run every selected task of `suite` on `model`; returns the results and where they were written."""
    progress = progress or Progress()
    specs = [t for t in suite.config.tasks if not opts.tasks or t.name in opts.tasks]
    unknown = set(opts.tasks) - {t.name for t in suite.config.tasks}
    if unknown:
        raise UserInputError(
            f"{suite.path}: no task named {', '.join(sorted(unknown))}",
            hint=f"tasks: {', '.join(t.name for t in suite.config.tasks)}",
        )
    path, run_id = resolve_paths(suite.name, model.name, opts)
    settings = {"limit": opts.limit, "tasks": list(opts.tasks), "seed": opts.seed, "backend": model.backend}
    journal = Journal(
        Journal.path_for(path),
        {
            "run_id": run_id,
            "suite_hash": suite.content_hash,
            "model": model.model_dump(mode="json"),
            "settings": settings,
        },
    )
    done = journal.open(resume=opts.resume)
    if done:
        progress.message(f"resuming {run_id}: {len(done)} finished samples from {journal.path}")
    from llmbench.environment import capture_environment
    from llmbench.telemetry.memory import reset_torch_peaks, torch_peaks, with_torch_peaks
    from llmbench.telemetry.nvml import NvmlSampler

    environment = capture_environment(suite.directory)
    sampler = NvmlSampler(hz=opts.telemetry_hz)
    backend: Backend | None = None
    started = time.perf_counter()
    try:
        model_path = resolve_model_path(model)
        reset_torch_peaks()
        sampler.start()
        backend = backends.get(model.backend)(model, model_path)  # type: ignore[call-arg]
        info = backend.load()
        sampler.mark("loaded")
        ctx = DataContext(
            suite_dir=suite.directory,
            seed=opts.seed,
            tokenizer=_tokenizer_for(backend, model, model_path),
            max_model_len=model.max_model_len,
        )
        records: list[SampleRecord] = []
        tasks: list[TaskResult] = []
        sweep: list[PerfPoint] = []
        itl: list[float] = []
        gen_wall = 0.0
        for spec in specs:
            task = prepare_task(
                spec,
                suite,
                model,
                ctx,
                limit=opts.limit,
                seed=opts.seed,
                chat_template_hash=info.chat_template_hash,
            )
            if spec.perf is not None:
                sweep += _run_perf(task, backend, info, sampler, ctx, model, opts, progress)
                continue
            task_records, wall = _run_quality(task, backend, journal, done, itl, progress)
            gen_wall += wall
            records += task_records
            assert task.scorer is not None
            tasks.append(
                task_result(
                    spec.name, task.scorer, spec.weight, task_records, spec.group_by, task.fingerprint
                )
            )
        telemetry = with_torch_peaks(sampler.stop(), torch_peaks())
    except KeyboardInterrupt:
        sampler.stop()
        raise RunInterrupted(
            f"interrupted: {len(journal_records(journal))} finished samples are saved in {journal.path}",
            hint=f"resume with: llmbench run {suite.path} --model {model.name} --output {path} --resume",
        ) from None
    finally:
        journal.close()
        if backend is not None:
            backend.close()
    result = _assemble(
        suite,
        model,
        opts,
        run_id,
        info,
        environment,
        tasks,
        records,
        sweep,
        itl,
        gen_wall,
        telemetry,
        settings,
    )
    if suite.config.combined is not None and records:
        _judge(result, suite.config.combined, progress)
    result.summary["wall_s"] = round(time.perf_counter() - started, 3)
    write_results(result, path)
    if records and all(r.error for r in records):
        raise RunFailedError(
            f"every sample failed (first error: {records[0].error}); results written to {path}"
        )
    return result, path


def _judge(result: RunResult, spec: Any, progress: Progress) -> None:
    """Rate every answer with the suite's judge; the ratings go into the samples and the combined score."""
    from llmbench.judge import combined_score, rate

    progress.message(f"judging {len(result.samples)} answers with {spec.judge.model}")
    outcome = rate(result.samples, spec.judge)
    for r in result.samples:
        rating = outcome.ratings.get((r.task, r.id, r.sample_index))
        if rating is not None:
            r.metrics["rating"] = rating
    result.summary["combined"] = combined_score(result.suite_score, list(outcome.ratings.values()), spec)
    result.summary["judge"] = outcome.judge
    result.fingerprint["judge"] = outcome.judge["prompt_hash"]


def journal_records(journal: Journal) -> list[str]:
    try:
        with open(journal.path, encoding="utf-8") as fh:
            return [line for line in fh if line.startswith('{"request_id"')]
    except OSError:
        return []


def _tokenizer_for(backend: Backend, model: ModelConfig, model_path: str) -> Any:
    """The model's own tokenizer for data that is built to a token length; None if it cannot be had."""
    if backend.tokenizer is not None:
        return backend.tokenizer
    if Path(model.tokenizer or model_path).is_dir():
        from llmbench.backends.common import load_tokenizer

        try:
            return load_tokenizer(model, model_path)
        except Exception:
            return None
    return None


def _run_quality(
    task: PreparedTask,
    backend: Backend,
    journal: Journal,
    done: dict[str, SampleRecord],
    itl: list[float],
    progress: Progress,
) -> tuple[list[SampleRecord], float]:
    """Generate the task's pending requests while a worker thread scores and journals finished ones."""
    pending = [r for r in task.requests if r.request_id not in done]
    progress.task_started(task.spec.name, len(task.requests), len(task.requests) - len(pending))
    by_id: dict[str, SampleRecord] = {rid: done[rid] for rid in task.index if rid in done}
    futures: list[Future[list[tuple[str, SampleRecord]]]] = []
    wall = 0.0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmbench-score") as scoring:
        buffer: list[Completion] = []
        t0 = time.perf_counter()
        for completion in backend.generate(pending) if pending else ():
            itl += completion.itl_ms
            buffer.append(completion)
            if len(buffer) >= SCORE_CHUNK:
                futures.append(scoring.submit(_score_chunk, task, buffer, journal))
                buffer = []
            progress.advance()
        wall = time.perf_counter() - t0 if pending else 0.0
        if buffer:
            futures.append(scoring.submit(_score_chunk, task, buffer, journal))
        for fut in futures:
            by_id.update(fut.result())
    progress.task_finished(task.spec.name)
    missing = [rid for rid in task.index if rid not in by_id]
    for rid in missing:  # a backend that dropped a request: record it, never lose track of it
        by_id[rid] = _record(
            task,
            Completion(rid, "", finish_reason="error", error="backend returned no output"),
            Score(0.0, "error"),
            "",
        )
    return [by_id[rid] for rid in task.index], wall


def _score_chunk(
    task: PreparedTask, chunk: list[Completion], journal: Journal
) -> list[tuple[str, SampleRecord]]:
    assert task.scorer is not None
    markers = [tuple(m) for m in task.spec.reasoning_markers]
    items, splits = [], []
    for c in chunk:
        split = split_reasoning(c.text, markers)  # type: ignore[arg-type]
        splits.append(split)
        items.append((task.index[c.request_id][0], split.answer))
    to_score = [i for i, c in enumerate(chunk) if c.error is None]
    scores: dict[int, Score] = dict(
        zip(to_score, task.scorer.score_batch([items[i] for i in to_score]), strict=True)
    )
    out = []
    for i, c in enumerate(chunk):
        score = scores.get(i) or Score(0.0, "error", details={"error": c.error})
        if score.status != "correct" and (c.finish_reason == "length" or splits[i].unclosed):
            score = Score(
                score.value, "truncated", score.metrics, score.details | {"scored_as": score.status}
            )
        record = _record(task, c, score, splits[i].reasoning)
        journal.append(c.request_id, record)
        out.append((c.request_id, record))
    return out


def _record(task: PreparedTask, c: Completion, score: Score, reasoning: str) -> SampleRecord:
    sample, k = task.index[c.request_id]
    req = task.request(c.request_id)
    prompt: Any = c.rendered_prompt
    if prompt is None and req is not None:
        prompt = list(req.messages) if req.messages else req.prompt
    return SampleRecord(
        task=task.spec.name,
        id=sample.id,
        sample_index=k,
        prompt=prompt,
        output=c.text,
        reference=_jsonable(sample.reference),
        score=score.value,
        status=score.status,
        metrics=score.metrics,
        details=_jsonable(score.details),
        metadata=_jsonable(_metadata(task, sample)),
        tokens_in=c.prompt_tokens,
        tokens_out=c.output_tokens,
        reasoning_tokens=len(reasoning.split()) if reasoning else None,
        finish_reason=c.finish_reason,
        ttft_ms=c.ttft_ms,
        latency_ms=c.latency_ms,
        tpot_ms=c.tpot_ms,
        prompt_hash=c.prompt_hash,
        error=c.error,
    )


def _metadata(task: PreparedTask, sample: Any) -> dict[str, Any]:
    """The sample's metadata, plus any `group_by` key that lives among its fields (e.g. `language`)."""
    extra = {
        k: sample.fields[k] for k in task.spec.group_by if k not in sample.metadata and k in sample.fields
    }
    return {**sample.metadata, **extra}


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def _run_perf(
    task: PreparedTask,
    backend: Backend,
    info: BackendInfo,
    sampler: Any,
    ctx: DataContext,
    model: ModelConfig,
    opts: RunOptions,
    progress: Progress,
) -> list[PerfPoint]:
    from llmbench.perf import peak_bandwidth_bytes_s, run_sweep

    assert task.spec.perf is not None
    if ctx.tokenizer is None and model.load_format != "dummy":
        raise UserInputError(f"task '{task.spec.name}': the performance sweep needs the model's tokenizer")
    progress.message(f"performance sweep '{task.spec.name}'")
    return run_sweep(
        backend,
        task.spec.perf,
        sampler=sampler,
        tokenizer=ctx.tokenizer,
        max_model_len=model.max_model_len or _max_len(ctx.tokenizer),
        seed=opts.seed,
        needs_text=backend.name == "openai" and model.api.endpoint == "chat",
        weights_bytes=info.weights_bytes,
        peak_bandwidth_bytes_s=peak_bandwidth_bytes_s(),
        on_point=lambda p: progress.message(
            f"  in={p.input_tokens} out={p.output_tokens} c={p.concurrency or '-'}: "
            + (f"error {p.error}" if p.error else f"ttft p50 {p.ttft_ms.p50:.1f} ms" if p.ttft_ms else "done")
        ),
    )


def _max_len(tokenizer: Any) -> int | None:
    n = getattr(tokenizer, "model_max_length", None)
    return int(n) if isinstance(n, int) and n < 10**7 else None


def _assemble(
    suite: Suite,
    model: ModelConfig,
    opts: RunOptions,
    run_id: str,
    info: BackendInfo,
    environment: dict[str, Any],
    tasks: list[TaskResult],
    records: list[SampleRecord],
    sweep: list[PerfPoint],
    itl: list[float],
    gen_wall: float,
    telemetry: Any,
    settings: dict[str, Any],
) -> RunResult:
    perf = performance(records, itl, gen_wall)
    perf.load_time_s = info.load_time_s
    perf.weights_bytes = info.weights_bytes
    perf.telemetry = telemetry
    perf.sweep = sweep
    perf.peak_vram_mib = telemetry.peak_vram_mib if telemetry else None
    perf.peak_vram_reason = (
        None if perf.peak_vram_mib is not None else (telemetry.unavailable if telemetry else "no telemetry")
    )
    perf.energy_j = telemetry.energy_j if telemetry else None
    if perf.energy_j is not None and perf.total_output_tokens:
        perf.energy_per_output_token_j = perf.energy_j / perf.total_output_tokens
    backend_info = {k: v for k, v in info.__dict__.items()}
    fingerprint = {
        "suite": suite.content_hash,
        "chat_template": info.chat_template_hash or "none",
        "generation": stable_hash([t.fingerprint.get("generation") for t in tasks]),
        "prompt_template": stable_hash([t.fingerprint.get("prompt_template") for t in tasks]),
        "backend": info.backend,
        "dtype": info.dtype or "unknown",
    }
    errors = sum(1 for r in records if r.error)
    return RunResult(
        run_id=run_id,
        llmbench_version=__version__,
        command=opts.command,
        model=model.model_dump(mode="json"),
        model_name=model.name,
        backend=backend_info,
        suite=suite.config.model_dump(mode="json"),
        suite_name=suite.name,
        suite_hash=suite.content_hash,
        settings=settings,
        environment=environment,
        fingerprint=fingerprint,
        tasks=tasks,
        suite_score=suite_score(tasks),
        performance=perf,
        samples=records,
        summary={
            "samples": len(records),
            "errors": errors,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )
