"""A task's performance measurement inside a run: what it measures, its journaled sweep, its saturation search."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmbench.backends.base import Backend, BackendInfo
from llmbench.config.models import ModelConfig
from llmbench.data.base import DataContext
from llmbench.errors import UserInputError
from llmbench.results.schema import PerfPoint, SaturationResult
from llmbench.run.journal import Journal, JournalState
from llmbench.run.options import RunOptions
from llmbench.run.prepare import PreparedTask
from llmbench.run.progress_events import Progress

if TYPE_CHECKING:
    from llmbench.run.perf import PerfTarget


def perf_target(
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
        peak_bandwidth_bytes_s=(
            peak_bandwidth_bytes_s(info.gpus, info.gpus_reading_at_once) if info.gpus else None
        ),
        client_process=info.server_url is not None,
    )


def run_sweep(
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


def run_saturation_search(
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
