"""suite + model -> requests -> backend (timed) -> scorer -> journal -> results file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmbench.backends.availability import check_model_available
from llmbench.backends.base import Backend, BackendInfo
from llmbench.config.models import ModelConfig
from llmbench.config.suite import Suite, TaskSpec
from llmbench.data.base import DataContext
from llmbench.errors import LLMBenchError, RunFailedError, UserInputError
from llmbench.results.io import remove_partial_writes, write_results
from llmbench.results.schema import PerfPoint, RunResult, SampleRecord, SaturationResult, Summary, TaskResult
from llmbench.run import interrupts
from llmbench.run.aggregate import task_result
from llmbench.run.assemble import Generated, RunParts, assemble, prompt_tokens_hash
from llmbench.run.choice_loglik import run_choices, uses_loglikelihood
from llmbench.run.journal import Journal, JournalState, now, read_journal, read_journal_samples
from llmbench.run.options import RunOptions, check_options, resolve_paths, resume_command
from llmbench.run.overrides import apply_sets
from llmbench.run.prepare import PreparedTask, check_suite, prepare_task
from llmbench.run.progress_events import Progress
from llmbench.run.quality import run_quality, warm_up
from llmbench.run.resume import (
    discard_if_empty,
    finished_text,
    journal_settings,
    keep_original_times,
    new_points,
    resumes,
)
from llmbench.run.scoring import is_failure
from llmbench.run.session import BackendSession
from llmbench.run.shard import shard_task
from llmbench.scoring.base import Scorer
from llmbench.telemetry.host import LoadWatch
from llmbench.telemetry.nvml import NvmlSampler

if TYPE_CHECKING:
    from llmbench.run.perf import PerfTarget


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
    check_options(opts)
    path, run_id = resolve_paths(suite.name, model.name, opts)
    resume = resumes(opts, path, Journal.path_for(path))
    if resume:
        opts = opts.filled_from(journal_settings(Journal.path_for(path)))
    suite = apply_sets(suite, opts.sets)  # validated before anything is written
    specs = _selected_tasks(suite, opts)
    check_suite(suite, specs)
    if session is None or not session.loaded:
        check_model_available(model)  # fails in seconds, before anything is written
    settings = opts.settings(model.backend)
    journal = Journal(
        Journal.path_for(path),
        {
            "run_id": run_id,
            "suite_hash": suite.content_hash,
            "suite_path": str(suite.path.resolve()),
            "model": model.model_dump(mode="json"),
            "settings": settings,
            "started_at": now(),
        },
    )
    state = journal.open(resume=resume, explicit=opts.resume, new=not (resume or opts.named))
    remove_partial_writes(path)  # a final write that a kill cut short; this run holds the name now
    if state.finished:
        progress.message(
            f"resuming {run_id}: {finished_text(state.finished, len(state.points))} from {journal.path}"
        )
    done = state.samples
    for other in opts.merge_journals:  # shards of this run: what they finished counts as done here
        for rid, record in read_journal_samples(other).items():
            if rid not in done:
                journal.append(rid, record)
                done[rid] = record
    from llmbench.telemetry.environment import capture_environment
    from llmbench.telemetry.memory import reset_torch_peaks, torch_peaks, with_torch_peaks

    sampler = NvmlSampler(hz=opts.telemetry_hz)
    owned = session is None
    session = session or BackendSession(model)
    host = LoadWatch()
    scorers: list[Scorer] = []  # each task's scorer, closed when the run ends however it ends
    started = time.perf_counter()
    try:
        reset_torch_peaks()
        sampler.start()
        sampler.mark("before_load")
        backend, info, model_path = session.acquire(run_id)
        sampler.mark("loaded")
        host.mark()
        environment = capture_environment(suite.directory)  # after the load: torch and CUDA are in by now
        tokenizer = _tokenizer_for(backend, model, model_path)
        ctx = DataContext(
            suite_dir=suite.directory,
            seed=opts.seed or 0,
            tokenizer=tokenizer,
            max_model_len=model.max_model_len,
        )
        records: list[SampleRecord] = []
        tasks: list[TaskResult] = []
        sweep: list[PerfPoint] = []
        saturation: list[SaturationResult] = []
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
                seed=opts.seed or 0,
                chat_template_hash=info.chat_template_hash,
                max_new_tokens=opts.max_new_tokens,
            )
            if opts.shard is not None:
                task = shard_task(task, *opts.shard)
            journal.pin_task(spec.name, task.fingerprint, state.tasks)
            scorers += [task.scorer] if task.scorer is not None else []
            if spec.perf is not None:
                target = _perf_target(spec.name, backend, info, sampler, ctx, model, opts)
                sweep += _run_perf(task, target, ctx.suite_dir, opts, progress, journal, state)
                saturation += _run_saturation(task, target, opts, progress)
                host.mark()
                continue
            if uses_loglikelihood(task, backend):  # multiple choice: options scored, nothing generated
                task_records, wall_s, energy_j = run_choices(task, backend, journal, done, sampler, progress)
                if wall_s:
                    generated.add_window(wall_s, energy_j)
            else:
                if not warm:
                    warm = warm_up(backend, task)
                task_records = run_quality(
                    task, backend, journal, done, generated, sampler, tokenizer, progress
                )
            records += task_records
            host.mark()
            assert task.scorer is not None
            fingerprint = task.fingerprint | {"prompt_tokens": prompt_tokens_hash(task_records)}
            tasks.append(
                task_result(spec.name, task.scorer, spec.weight, task_records, spec.group_by, fingerprint)
            )
        interrupts.check()
        telemetry = with_torch_peaks(sampler.stop(), torch_peaks())
    except KeyboardInterrupt:
        sampler.stop()
        saved = read_journal(journal.path)
        if not saved.finished:
            journal.close()
            journal.path.unlink(missing_ok=True)
            raise RunInterrupted("interrupted before any sample finished: nothing was saved") from None
        raise RunInterrupted(
            f"interrupted: {finished_text(saved.finished, len(saved.points))} saved in {journal.path}",
            hint=f"resume with: {resume_command(path)}",
        ) from None
    except BaseException:
        if not session.loaded:
            discard_if_empty(journal)  # the model never loaded: leave no trace of a run that never ran
        raise
    finally:
        journal.close()
        for scorer in scorers:
            scorer.close()
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
            saturation=saturation,
            generated=generated,
            telemetry=telemetry,
        )
    )
    result.environment = result.environment.model_copy(update=host.facts())
    if host.warnings():
        result.summary.warnings = host.warnings()
    if suite.config.combined is not None and records:
        _judge(result, suite.config.combined, progress)
    result.summary.wall_s = round(time.perf_counter() - started, 3)
    if session.first_run != run_id:  # the load was paid for (and measured) by an earlier run
        result.summary.load_shared_with = session.first_run
    if opts.annotations:  # a study's placement: typed fields of the summary
        result.summary = Summary.model_validate(result.summary.model_dump() | opts.annotations)
    searched = any(r.probes for r in saturation)  # not journaled: a resumed run measures it anew
    keep_original_times(
        result,
        state,
        rebuilt=resume and not generated.wall_s and not new_points(sweep, state) and not searched,
    )
    if result.summary.rebuilt_from_journal:
        progress.message(
            f"every sample of {run_id} was already finished: results rebuilt from {journal.path}"
        )
    write_results(result, path)
    failed = [r for r in records if is_failure(r)]
    if records and len(failed) == len(records):
        first = failed[0].error or failed[0].details.get("error") or failed[0].status
        raise RunFailedError(f"every sample failed (first error: {first}); results written to {path}")
    return result, path


def _selected_tasks(suite: Suite, opts: RunOptions) -> list[TaskSpec]:
    unknown = set(opts.tasks) - {t.name for t in suite.config.tasks}
    if unknown:
        raise UserInputError(
            f"{suite.path}: no task named {', '.join(sorted(unknown))}",
            hint=f"tasks: {', '.join(t.name for t in suite.config.tasks)}",
        )
    return [t for t in suite.config.tasks if not opts.tasks or t.name in opts.tasks]


def _judge(result: RunResult, spec: Any, progress: Progress) -> None:
    """Rate every answer with the suite's judge; the ratings go into the samples and the combined score."""
    from llmbench.run.judge import combined_score, rate

    progress.message(f"judging {len(result.samples)} answers with {spec.judge.model}")
    outcome = rate(result.samples, spec.judge)
    for r in result.samples:
        rating = outcome.ratings.get((r.task, r.id, r.sample_index))
        if rating is not None:
            r.metrics["rating"] = rating
    result.summary.combined = combined_score(result.suite_score, list(outcome.ratings.values()), spec)
    result.summary.judge = outcome.judge
    result.fingerprint["judge"] = outcome.judge["prompt_hash"]


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


def _perf_target(
    name: str,
    backend: Backend,
    info: BackendInfo,
    sampler: Any,
    ctx: DataContext,
    model: ModelConfig,
    opts: RunOptions,
) -> PerfTarget:
    """What task `name`'s sweep and saturation search measure: the loaded model, and how to build its prompts."""
    from llmbench.run.perf import PerfTarget, peak_bandwidth_bytes_s, task_prompt_seed

    if ctx.tokenizer is None and model.load_format != "dummy":
        raise UserInputError(f"task '{name}': the performance sweep needs the model's tokenizer")
    return PerfTarget(
        backend,
        sampler,
        ctx.tokenizer,
        model.max_model_len or _max_len(ctx.tokenizer),
        task_prompt_seed(opts.seed or 0, name),
        info.takes_text,
        vocab_size=info.vocab_size if ctx.tokenizer is None else None,
        weights_bytes=info.weights_bytes,
        peak_bandwidth_bytes_s=peak_bandwidth_bytes_s(info.gpus) if info.gpus else None,
    )


def _run_perf(
    task: PreparedTask,
    target: PerfTarget,
    suite_dir: Path,
    opts: RunOptions,
    progress: Progress,
    journal: Journal,
    state: JournalState,
) -> list[PerfPoint]:
    """Run the sweep; each finished point is journaled, and points a resumed run finished are not run again.

    A trace's relative path starts at `suite_dir`."""
    from llmbench.run.workloads import run_perf

    assert task.spec.perf is not None
    sweep = task.spec.perf
    prefix = f"{task.spec.name}/"
    done = {int(k.removeprefix(prefix)): p for k, p in state.points.items() if k.startswith(prefix)}

    def finished(point_no: int, point: PerfPoint) -> None:
        journal.append_point(f"{prefix}{point_no}", point)
        progress.message(
            f"  in={point.input_tokens} out={point.output_tokens} c={point.concurrency or '-'}: "
            + (
                f"error {point.error}"
                if point.error
                else f"ttft p50 {point.ttft_ms.p50:.1f} ms"
                if point.ttft_ms
                else "done"
            )
        )

    progress.message(
        f"performance sweep '{task.spec.name}'" + (f" ({len(done)} points already done)" if done else "")
    )
    # --limit caps the requests of each point, as it caps a task's samples (workloads' too: run/limit.py)
    points = run_perf(target, sweep, on_point=finished, done=done, base_dir=suite_dir, limit=opts.limit)
    return [p.model_copy(update={"task": task.spec.name}) for p in points]


def _run_saturation(
    task: PreparedTask, target: PerfTarget, opts: RunOptions, progress: Progress
) -> list[SaturationResult]:
    """The task's saturation search, where its perf block asks for one (a resumed run searches again)."""
    from llmbench.run.saturation import describe_probe, run_saturation

    sweep = task.spec.perf
    if sweep is None or sweep.saturation is None:
        return []
    if opts.limit is not None:  # --limit caps the requests of each probe, as it caps a sweep point's
        spec = sweep.saturation.model_copy(
            update={"requests_per_point": min(sweep.saturation.requests_per_point, max(4, opts.limit))}
        )
        sweep = sweep.model_copy(update={"saturation": spec})
    progress.message(f"saturation search '{task.spec.name}'")
    results = run_saturation(
        target, sweep, on_probe=lambda probe: progress.message(f"  {describe_probe(probe)}")
    )
    return [r.model_copy(update={"task": task.spec.name}) for r in results]


def _max_len(tokenizer: Any) -> int | None:
    n = getattr(tokenizer, "model_max_length", None)
    return int(n) if isinstance(n, int) and n < 10**7 else None
