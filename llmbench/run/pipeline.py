"""suite + model -> requests -> backend (timed) -> scorer -> journal -> results file."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmbench.backends.availability import check_model_available
from llmbench.backends.base import Backend, BackendInfo
from llmbench.config.models import ModelConfig
from llmbench.config.suite import Suite, TaskSpec
from llmbench.data.base import DataContext
from llmbench.errors import LLMBenchError, RunFailedError, UserInputError
from llmbench.results.io import remove_partial_writes, write_results
from llmbench.results.schema import (
    PerfPoint,
    RunResult,
    SampleRecord,
    SaturationResult,
    Summary,
    TaskResult,
    TelemetrySummary,
)
from llmbench.run import interrupts
from llmbench.run.aggregate import task_result
from llmbench.run.assemble import Generated, RunParts, assemble, prompt_tokens_hash
from llmbench.run.choice_loglik import run_choices, uses_loglikelihood
from llmbench.run.gen_cache import GenerationCache, cached_count, open_generation_cache
from llmbench.run.journal import Journal, JournalState, now, read_journal, read_journal_samples
from llmbench.run.options import RunOptions, check_options, resolve_paths, resume_command
from llmbench.run.overrides import apply_sets
from llmbench.run.perf_task import perf_target, run_saturation_search, run_sweep
from llmbench.run.prepare import PreparedTask, check_suite, prepare_task
from llmbench.run.progress_events import Progress
from llmbench.run.quality import run_quality
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
from llmbench.run.spending import Budget, budget_for, refuse_unbounded
from llmbench.scoring.base import Scorer
from llmbench.telemetry.environment import capture_environment
from llmbench.telemetry.host import LoadWatch
from llmbench.telemetry.memory import reset_torch_peaks, torch_peaks, with_torch_peaks
from llmbench.telemetry.nvml import NvmlSampler


class RunInterrupted(LLMBenchError):
    """Ctrl-C: what was finished is in the journal; the message says how to resume."""

    exit_code = 130


class RunDeadlinePassed(RunInterrupted):
    """`--deadline` passed or `--max-cost` was reached: as Ctrl-C, but stopped by a limit (exit code 1)."""

    exit_code = 1


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
    run = _prepare(suite, model, opts, progress or Progress(), session)
    deadline = interrupts.Deadline(run.opts.deadline_s)
    try:
        with deadline:
            loaded = _load(run)
            _run_tasks(run, loaded)
            interrupts.check()
        telemetry = with_torch_peaks(run.sampler.stop(), torch_peaks())
    except KeyboardInterrupt:
        run.sampler.stop()
        raise _interrupted(run, deadline) from None
    except BaseException:
        if not run.session.loaded:
            discard_if_empty(run.journal)  # the model never loaded: leave no trace of a run that never ran
        raise
    finally:
        _release(run)
    result = _assemble_result(run, loaded, telemetry)
    _write(run, result)
    return result, run.path


@dataclass
class _Run:
    """One run's state: what it was asked, its journal and meters, and what its tasks produced so far."""

    suite: Suite  # with the run's --set overrides applied
    model: ModelConfig
    opts: RunOptions  # filled from the journal when the run resumes
    progress: Progress
    path: Path
    run_id: str
    resume: bool
    specs: list[TaskSpec]
    settings: dict[str, Any]
    journal: Journal
    state: JournalState  # what the journal held; its samples are what counts as done (shards' included)
    sampler: NvmlSampler
    owned: bool  # the run made its session: it releases the model when done
    session: BackendSession
    host: LoadWatch
    started: float
    scorers: list[Scorer] = field(default_factory=list)  # closed when the run ends however it ends
    records: list[SampleRecord] = field(default_factory=list)
    tasks: list[TaskResult] = field(default_factory=list)
    sweep: list[PerfPoint] = field(default_factory=list)
    saturation: list[SaturationResult] = field(default_factory=list)
    generated: Generated = field(default_factory=Generated)
    budget: Budget | None = None  # --max-cost


@dataclass
class _Loaded:
    """The loaded model as the tasks see it: the backend, its facts, and data built with its tokenizer."""

    backend: Backend
    info: BackendInfo
    environment: dict[str, Any]
    ctx: DataContext
    cache: GenerationCache  # quality runs' generations kept across runs (off for perf-only runs)


def _prepare(
    suite: Suite, model: ModelConfig, opts: RunOptions, progress: Progress, session: BackendSession | None
) -> _Run:
    """Check all that can be checked before anything is written, then open (or resume) the run's journal."""
    check_options(opts)
    path, run_id = resolve_paths(suite.name, model.name, opts)
    resume = resumes(opts, path, Journal.path_for(path))
    if resume:
        opts = opts.filled_from(journal_settings(Journal.path_for(path)))
    suite = apply_sets(suite, opts.sets)  # validated before anything is written
    specs = _selected_tasks(suite, opts)
    check_suite(suite, specs)
    budget = budget_for(model, specs, opts.max_cost_usd)
    if session is None or not session.loaded:
        check_model_available(model)  # fails in seconds, before anything is written
    settings = opts.settings(model.backend)
    journal = Journal(Journal.path_for(path), _journal_header(run_id, suite, model, settings))
    state = journal.open(resume=resume, explicit=opts.resume, new=not (resume or opts.named))
    remove_partial_writes(path)  # a final write that a kill cut short; this run holds the name now
    if state.finished:
        progress.message(
            f"resuming {run_id}: {finished_text(state.finished, len(state.points))} from {journal.path}"
        )
    _merge_shards(journal, state.samples, opts.merge_journals)
    return _Run(
        suite,
        model,
        opts,
        progress,
        path,
        run_id,
        resume,
        specs,
        settings,
        journal,
        state,
        sampler=NvmlSampler(hz=opts.telemetry_hz),
        owned=session is None,
        session=session or BackendSession(model),
        host=LoadWatch(),
        started=time.perf_counter(),
        budget=budget,
    )


def _journal_header(
    run_id: str, suite: Suite, model: ModelConfig, settings: dict[str, Any]
) -> dict[str, Any]:
    """What a resume reads back: the run, its suite, its model and its settings."""
    return {
        "run_id": run_id,
        "suite_hash": suite.content_hash,
        "suite_path": str(suite.path.resolve()),
        "model": model.model_dump(mode="json"),
        "settings": settings,
        "started_at": now(),
    }


def _merge_shards(journal: Journal, done: dict[str, SampleRecord], others: Sequence[Path]) -> None:
    """Shards of this run: what they finished counts as done here, and goes into this run's journal."""
    for other in others:
        for rid, record in read_journal_samples(other).items():
            if rid not in done:
                journal.append(rid, record)
                done[rid] = record


def _load(run: _Run) -> _Loaded:
    """Start the meters and load the model (or borrow the session's); the environment is captured after."""
    reset_torch_peaks()
    run.sampler.start()
    run.sampler.mark("before_load")
    backend, info, model_path = run.session.acquire(run.run_id)
    run.sampler.mark("loaded")
    run.sampler.keep_run_devices(info.gpus)  # only the run's GPUs: others' memory is not the run's
    run.host.mark()
    environment = capture_environment(run.suite.directory)  # after the load: torch and CUDA are in by now
    tokenizer = _tokenizer_for(backend, run.model, model_path)
    ctx = DataContext(
        suite_dir=run.suite.directory,
        seed=run.opts.seed or 0,
        tokenizer=tokenizer,
        max_model_len=run.model.max_model_len,
    )
    cache = GenerationCache.off()
    if run.opts.cache and any(spec.perf is None for spec in run.specs):  # never for performance measurements
        cache = open_generation_cache(
            run.model, model_path, info, environment, backend, run.run_id, run.progress.message
        )
    return _Loaded(backend, info, environment, ctx, cache)


def _run_tasks(run: _Run, loaded: _Loaded) -> None:
    """Each task in turn: a perf task measures, a quality task generates (or scores choices) and is scored."""
    backend, done, tokenizer = loaded.backend, run.state.samples, loaded.ctx.tokenizer
    warm = not run.opts.warmup
    for spec in run.specs:
        interrupts.check()
        task = _prepare_task(run, loaded, spec)
        if spec.perf is not None:
            _measure_perf(run, loaded, task)
            run.host.mark()
            continue
        if uses_loglikelihood(task, backend):  # multiple choice: options scored, nothing generated
            refuse_unbounded(run.budget, spec.name)
            task_records, wall_s, energy_j = run_choices(
                task, backend, run.journal, done, run.sampler, run.progress
            )
            if wall_s:
                run.generated.add_window(wall_s, energy_j)
        else:
            task_records, warmed = run_quality(
                task, backend, run.journal, done, run.generated, run.sampler, tokenizer, run.progress,
                loaded.cache, not warm, run.budget,
            )  # fmt: skip
            warm = warm or warmed
        run.records += task_records
        run.host.mark()
        assert task.scorer is not None
        fingerprint = task.fingerprint | {"prompt_tokens": prompt_tokens_hash(task_records)}
        run.tasks.append(
            task_result(spec.name, task.scorer, spec.weight, task_records, spec.group_by, fingerprint)
        )


def _prepare_task(run: _Run, loaded: _Loaded, spec: TaskSpec) -> PreparedTask:
    """The task's requests (this shard's share of them), pinned in the journal; its scorer is the run's to close."""
    opts = run.opts
    task = prepare_task(
        spec,
        run.suite,
        run.model,
        loaded.ctx,
        limit=opts.limit,
        seed=opts.seed or 0,
        chat_template_hash=loaded.info.chat_template_hash,
        max_new_tokens=opts.max_new_tokens,
    )
    if opts.shard is not None:
        task = shard_task(task, *opts.shard)
    run.journal.pin_task(spec.name, task.fingerprint, run.state.tasks)
    run.scorers += [task.scorer] if task.scorer is not None else []
    return task


def _measure_perf(run: _Run, loaded: _Loaded, task: PreparedTask) -> None:
    """The task's sweep (journaled point by point) and its saturation search."""
    name = task.spec.name
    target = perf_target(name, loaded.backend, loaded.info, run.sampler, loaded.ctx, run.model, run.opts)
    run.sweep += run_sweep(task, target, loaded.ctx.suite_dir, run.opts, run.progress, run.journal, run.state)
    run.saturation += run_saturation_search(task, target, run.opts, run.progress)


def _interrupted(run: _Run, deadline: interrupts.Deadline) -> RunInterrupted:
    """Ctrl-C (or the deadline): how to resume what the journal saved; with nothing saved, the journal is
    removed. What did not finish is not in the journal: a resume runs it."""
    journal = run.journal
    saved = read_journal(journal.path)
    stopped = RunDeadlinePassed if deadline.passed else RunInterrupted
    why = f"the run's deadline of {deadline.seconds:g} s passed" if deadline.passed else "interrupted"
    if run.budget is not None and run.budget.reached:
        stopped, why = RunDeadlinePassed, run.budget.why()
    if not saved.finished:
        journal.close()
        journal.path.unlink(missing_ok=True)
        return stopped(f"{why} before any sample finished: nothing was saved")
    return stopped(
        f"{why}: {finished_text(saved.finished, len(saved.points))} saved in {journal.path}, the rest not run",
        hint=f"resume with: {resume_command(run.path)}",
    )


def _release(run: _Run) -> None:
    """However the run ended: close its journal and scorers, and release the model if the run loaded it."""
    run.journal.close()
    for scorer in run.scorers:
        scorer.close()
    if run.owned:
        run.session.close()


def _assemble_result(run: _Run, loaded: _Loaded, telemetry: TelemetrySummary) -> RunResult:
    """The results from the tasks' parts, the host's load, the judge's ratings and the journal's times."""
    result = assemble(
        RunParts(
            suite=run.suite,
            model=run.model,
            run_id=run.run_id,
            command=run.opts.command,
            settings=run.settings,
            info=loaded.info,
            environment=loaded.environment,
            tasks=run.tasks,
            records=run.records,
            sweep=run.sweep,
            saturation=run.saturation,
            generated=run.generated,
            telemetry=telemetry,
        )
    )
    result.environment = result.environment.model_copy(update=run.host.facts())
    if run.host.warnings():
        result.summary.warnings = run.host.warnings()
    if run.suite.config.combined is not None and run.records:
        from llmbench.run.judge import judge_run

        judge_run(result, run.suite.config.combined, run.progress)
    result.summary.cached_generations = cached_count(loaded.cache, run.records)
    result.summary.wall_s = round(time.perf_counter() - run.started, 3)
    if run.session.first_run != run.run_id:  # the load was paid for (and measured) by an earlier run
        result.summary.load_shared_with = run.session.first_run
    if run.opts.annotations:  # a study's placement: typed fields of the summary
        result.summary = Summary.model_validate(result.summary.model_dump() | run.opts.annotations)
    searched = any(r.probes for r in run.saturation)  # not journaled: a resumed run measures it anew
    rebuilt = (
        run.resume and not run.generated.wall_s and not new_points(run.sweep, run.state) and not searched
    )
    keep_original_times(result, run.state, rebuilt=rebuilt)
    return result


def _write(run: _Run, result: RunResult) -> None:
    """Write the results file; a run whose every sample failed is written, then reported as failed."""
    if result.summary.rebuilt_from_journal:
        run.progress.message(
            f"every sample of {run.run_id} was already finished: results rebuilt from {run.journal.path}"
        )
    write_results(result, run.path)
    failed = [r for r in run.records if is_failure(r)]
    if run.records and len(failed) == len(run.records):
        first = failed[0].error or failed[0].details.get("error") or failed[0].status
        raise RunFailedError(f"every sample failed (first error: {first}); results written to {run.path}")


def _selected_tasks(suite: Suite, opts: RunOptions) -> list[TaskSpec]:
    unknown = set(opts.tasks) - {t.name for t in suite.config.tasks}
    if unknown:
        raise UserInputError(
            f"{suite.path}: no task named {', '.join(sorted(unknown))}",
            hint=f"tasks: {', '.join(t.name for t in suite.config.tasks)}",
        )
    return [t for t in suite.config.tasks if not opts.tasks or t.name in opts.tasks]


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
