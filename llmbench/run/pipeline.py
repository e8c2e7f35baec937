"""suite + model -> requests -> backend (timed) -> scorer -> journal -> results file."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmbench import interrupts
from llmbench.backends.base import Backend, BackendInfo
from llmbench.config import ModelConfig, Suite
from llmbench.data.base import DataContext
from llmbench.errors import LLMBenchError, RunFailedError, UserInputError
from llmbench.results import PerfPoint, RunResult, SampleRecord, TaskResult, write_results
from llmbench.run.aggregate import task_result
from llmbench.run.assemble import Generated, RunParts, assemble, prompt_tokens_hash
from llmbench.run.journal import Journal, read_journal_samples
from llmbench.run.options import RunOptions, resolve_paths
from llmbench.run.prepare import PreparedTask, prepare_task
from llmbench.run.progress import Progress
from llmbench.run.scoring import is_failure, make_record, score_chunk
from llmbench.run.session import BackendSession
from llmbench.run.shard import shard_task
from llmbench.scoring.base import Score
from llmbench.telemetry.nvml import NvmlSampler
from llmbench.types import Completion

SCORE_CHUNK = 16


class RunInterrupted(LLMBenchError):
    """Ctrl-C: what was finished is in the journal; the message says how to resume."""

    exit_code = 130


def run_suite(
    suite: Suite,
    model: ModelConfig,
    opts: RunOptions,
    progress: Progress | None = None,
    session: BackendSession | None = None,
) -> tuple[RunResult, Path]:
    """Run every selected task of `suite` on `model`; returns the results and where they were written.

    With a `session` the model is loaded once for every run that shares it (a study); without one the
    run loads it and releases it when done.
    """
    progress = progress or Progress()
    specs = [t for t in suite.config.tasks if not opts.tasks or t.name in opts.tasks]
    unknown = set(opts.tasks) - {t.name for t in suite.config.tasks}
    if unknown:
        raise UserInputError(
            f"{suite.path}: no task named {', '.join(sorted(unknown))}",
            hint=f"tasks: {', '.join(t.name for t in suite.config.tasks)}",
        )
    path, run_id = resolve_paths(suite.name, model.name, opts)
    settings: dict[str, Any] = {
        "limit": opts.limit,
        "tasks": list(opts.tasks),
        "seed": opts.seed,
        "backend": model.backend,
    }
    if opts.shard is not None:
        settings["shard"] = list(opts.shard)
    journal = Journal(
        Journal.path_for(path),
        {
            "run_id": run_id,
            "suite_hash": suite.content_hash,
            "model": model.model_dump(mode="json"),
            "settings": settings,
        },
    )
    done = journal.open(resume=_resumes(opts, path, journal), explicit=opts.resume)
    for other in opts.merge_journals:  # shards of this run: what they finished counts as done here
        for rid, record in read_journal_samples(other).items():
            if rid not in done:
                journal.append(rid, record)
                done[rid] = record
    if done:
        progress.message(f"resuming {run_id}: {len(done)} finished samples from {journal.path}")
    from llmbench.environment import capture_environment
    from llmbench.telemetry.memory import reset_torch_peaks, torch_peaks, with_torch_peaks

    sampler = NvmlSampler(hz=opts.telemetry_hz)
    owned = session is None
    session = session or BackendSession(model)
    started = time.perf_counter()
    try:
        reset_torch_peaks()
        sampler.start()
        sampler.mark("before_load")
        backend, info, model_path = session.acquire(run_id)
        sampler.mark("loaded")
        environment = capture_environment(suite.directory)  # after the load: torch and CUDA are in by now
        tokenizer = _tokenizer_for(backend, model, model_path)
        ctx = DataContext(
            suite_dir=suite.directory, seed=opts.seed, tokenizer=tokenizer, max_model_len=model.max_model_len
        )
        records: list[SampleRecord] = []
        tasks: list[TaskResult] = []
        sweep: list[PerfPoint] = []
        generated = Generated()
        warm = not opts.warmup
        for spec in specs:
            interrupts.check()
            task = prepare_task(
                spec,
                suite,
                model,
                ctx,
                limit=opts.limit,
                seed=opts.seed,
                chat_template_hash=info.chat_template_hash,
            )
            if opts.shard is not None:
                task = shard_task(task, *opts.shard)
            if spec.perf is not None:
                sweep += _run_perf(task, backend, info, sampler, ctx, model, opts, progress)
                continue
            if not warm:
                warm = _warm_up(backend, task)
            task_records = _run_quality(task, backend, journal, done, generated, sampler, tokenizer, progress)
            records += task_records
            assert task.scorer is not None
            fingerprint = task.fingerprint | {"prompt_tokens": prompt_tokens_hash(task_records)}
            tasks.append(
                task_result(spec.name, task.scorer, spec.weight, task_records, spec.group_by, fingerprint)
            )
        interrupts.check()
        telemetry = with_torch_peaks(sampler.stop(), torch_peaks())
    except KeyboardInterrupt:
        sampler.stop()
        raise RunInterrupted(
            f"interrupted: {len(journal_records(journal))} finished samples are saved in {journal.path}",
            hint=f"resume with: llmbench run {suite.path} --model {model.name} --output {path} --resume",
        ) from None
    finally:
        journal.close()
        if owned:
            session.close()
    result = assemble(
        RunParts(
            suite=suite,
            model=model,
            run_id=run_id,
            command=opts.command,
            settings=settings,
            info=info,
            environment=environment,
            tasks=tasks,
            records=records,
            sweep=sweep,
            generated=generated,
            telemetry=telemetry,
        )
    )
    if suite.config.combined is not None and records:
        _judge(result, suite.config.combined, progress)
    result.summary["wall_s"] = round(time.perf_counter() - started, 3)
    if session.first_run != run_id:  # the load was paid for (and measured) by an earlier run
        result.summary["load_shared_with"] = session.first_run
    result.summary.update(opts.annotations)
    write_results(result, path)
    failed = [r for r in records if is_failure(r)]
    if records and len(failed) == len(records):
        first = failed[0].error or failed[0].details.get("error") or failed[0].status
        raise RunFailedError(f"every sample failed (first error: {first}); results written to {path}")
    return result, path


def _resumes(opts: RunOptions, path: Path, journal: Journal) -> bool:
    """Resume when asked, or when a named run (--output/--run-id) left a journal and no results file."""
    if opts.fresh and opts.resume:
        raise UserInputError("--fresh and --resume contradict each other: choose one")
    if opts.fresh:
        return False
    named = opts.output is not None or opts.run_id is not None
    return opts.resume or (named and journal.path.exists() and not path.exists())


def _warm_up(backend: Backend, task: PreparedTask) -> bool:
    """One short request before the first timed one, so start-up costs (CUDA context, kernel
    selection, a server's first connection) stay out of the first sample's TTFT. Its output is dropped."""
    if not task.requests:
        return False
    first = task.requests[0]
    params = replace(first.params, max_new_tokens=min(4, first.params.max_new_tokens), stop=())
    list(backend.generate([replace(first, request_id="llmbench-warmup", params=params)]))
    return True


def _judge(result: RunResult, spec: Any, progress: Progress) -> None:
    """Rate every answer with the suite's judge; the ratings go into the samples and the combined score."""
    from llmbench.run.judge import combined_score, rate

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
    generated: Generated,
    sampler: NvmlSampler,
    tokenizer: Any,
    progress: Progress,
) -> list[SampleRecord]:
    """Generate the task's pending requests while a worker thread scores and journals finished ones."""
    pending = [r for r in task.requests if r.request_id not in done]
    progress.task_started(task.spec.name, len(task.requests), len(task.requests) - len(pending))
    by_id: dict[str, SampleRecord] = {rid: done[rid] for rid in task.index if rid in done}
    futures: list[Future[list[tuple[str, SampleRecord]]]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmbench-score") as scoring:
        if pending:
            buffer: list[Completion] = []
            with sampler.window() as window:
                t0 = time.perf_counter_ns()
                for completion in backend.generate(pending):
                    interrupts.check()  # a Ctrl-C that landed in a finaliser was dropped: stop here
                    generated.add(completion)
                    buffer.append(completion)
                    if len(buffer) >= SCORE_CHUNK:
                        futures.append(scoring.submit(score_chunk, task, buffer, journal, tokenizer))
                        buffer = []
                    progress.advance()
                wall_ns = time.perf_counter_ns() - t0
            generated.add_window(wall_ns / 1e9, window.energy_j)
            if buffer:
                futures.append(scoring.submit(score_chunk, task, buffer, journal, tokenizer))
        for fut in futures:
            by_id.update(fut.result())
    progress.task_finished(task.spec.name)
    for rid in [rid for rid in task.index if rid not in by_id]:  # a backend that dropped a request
        missing = Completion(rid, "", finish_reason="error", error="backend returned no output")
        by_id[rid] = make_record(task, missing, Score(0.0, "error"), None)
    return [by_id[rid] for rid in task.index]


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
    from llmbench.run.perf import run_sweep

    assert task.spec.perf is not None
    if ctx.tokenizer is None and model.load_format != "dummy":
        raise UserInputError(f"task '{task.spec.name}': the performance sweep needs the model's tokenizer")
    vocab_size = info.extra.get("vocab_size") if ctx.tokenizer is None else None
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
        peak_bandwidth_bytes_s=_peak_bandwidth(info, model),
        vocab_size=vocab_size,
        on_point=lambda p: progress.message(
            f"  in={p.input_tokens} out={p.output_tokens} c={p.concurrency or '-'}: "
            + (f"error {p.error}" if p.error else f"ttft p50 {p.ttft_ms.p50:.1f} ms" if p.ttft_ms else "done")
        ),
    )


def _peak_bandwidth(info: BackendInfo, model: ModelConfig) -> float | None:
    """Peak memory bandwidth of the GPUs that hold the model's weights: the ceiling MBU is read against."""
    from llmbench.run.perf import peak_bandwidth_bytes_s

    if info.backend == "openai" and not info.extra.get("managed"):
        return None  # the server's GPUs are not this host's
    if info.device in ("cpu", "none"):
        return None
    placed = sorted({int(d.split(":")[1]) for d in (info.device or "").split(",") if d.startswith("cuda:")})
    return peak_bandwidth_bytes_s(placed or list(range(model.tensor_parallel_size)))


def _max_len(tokenizer: Any) -> int | None:
    n = getattr(tokenizer, "model_max_length", None)
    return int(n) if isinstance(n, int) and n < 10**7 else None
