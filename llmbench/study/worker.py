"""A study worker: runs one job (one model's cells) on the GPUs it was given, reporting events as it goes.

The same function runs in the driver (no GPUs), in a worker process (`python -m llmbench.study.worker
JOB.json`, with its own CUDA_VISIBLE_DEVICES) and in a Ray task. Every cell writes its own journal and
results file at the path the plan named, so a job that dies resumes where it stopped when run again.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmbench.config.models import ModelConfig
from llmbench.config.suite import CombinedSpec, load_suite
from llmbench.errors import LLMBenchError
from llmbench.run.options import RunOptions
from llmbench.run.progress_events import Progress
from llmbench.run.session import BackendSession

EVENT_PREFIX = "@llmbench-event "
Emit = Callable[[dict[str, Any]], None]


class CellSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    suite: str
    limit: int | None = None
    tasks: list[str] = Field(default_factory=list)
    seed: int = 0
    output: str
    fresh: bool = False
    shard: tuple[int, int] | None = None
    merge_journals: list[str] = Field(default_factory=list)
    annotations: dict[str, Any] = Field(default_factory=dict)
    combined: dict[str, Any] | None = None  # the study's judge, for suites without their own
    # The cells of one (model, suite, seed) that a suite's `repeat: N` runs N times in one results folder share
    # it: compare merges them into one column, their spread is the gate's noise band, and each generates anew
    # (the generation cache would answer the second from the first, and measure no spread at all).
    repeat_of: str | None = None


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    model: dict[str, Any]
    cells: list[CellSpec]


class EventProgress(Progress):
    """Progress of one cell, as events for the driver's single study display."""

    def __init__(self, cell: str, emit: Emit) -> None:
        self.cell, self.emit = cell, emit

    def task_started(self, name: str, total: int, done: int) -> None:
        self.emit({"event": "task_started", "cell": self.cell, "task": name, "total": total, "done": done})

    def advance(self, n: int = 1) -> None:
        self.emit({"event": "advance", "cell": self.cell, "n": n})

    def task_finished(self, name: str) -> None:
        self.emit({"event": "task_finished", "cell": self.cell, "task": name})

    def message(self, text: str) -> None:
        self.emit({"event": "message", "cell": self.cell, "text": text})


def run_job(job: JobSpec, emit: Emit) -> list[str]:
    """Run the job's cells on one model load; returns the ids of the cells that finished."""
    model = ModelConfig.model_validate(job.model)
    finished: list[str] = []
    with BackendSession(model) as session:
        for cell in job.cells:
            if not cell.fresh and not cell.merge_journals and Path(cell.output).exists():
                # finished by an earlier attempt of this job (a retry after a worker died)
                emit({"event": "cell_done", "cell": cell.id, "results": cell.output, "skipped": True})
                finished.append(cell.id)
                continue
            emit({"event": "cell_started", "cell": cell.id, "pid": os.getpid(), "host": socket.gethostname()})
            opts = RunOptions(
                limit=cell.limit,
                tasks=cell.tasks,
                seed=cell.seed,
                output=Path(cell.output),
                fresh=cell.fresh,
                shard=cell.shard,
                merge_journals=[Path(p) for p in cell.merge_journals],
                annotations=cell.annotations,
                command=["llmbench", "study", f"cell={cell.id}"],
                repeat_of=cell.repeat_of,
                cache=cell.repeat_of is None,
            )
            try:
                result, path = _run(cell, model, opts, emit, session)
            except LLMBenchError as exc:
                if exc.exit_code == 130:  # Ctrl-C: the journal holds what finished; stop the job
                    raise
                emit({"event": "cell_failed", "cell": cell.id, "error": str(exc)})
                continue
            except Exception as exc:  # one broken cell must not lose the job's other cells
                emit({"event": "cell_failed", "cell": cell.id, "error": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc()})  # fmt: skip
                continue
            finished.append(cell.id)
            emit({"event": "cell_done", "cell": cell.id, "results": str(path),
                  "samples": len(result.samples), "load_time_s": result.performance.load_time_s})  # fmt: skip
    return finished


def _run(cell: CellSpec, model: ModelConfig, opts: RunOptions, emit: Emit, session: BackendSession) -> Any:
    from llmbench.run.pipeline import run_suite

    suite = load_suite(cell.suite)
    if cell.combined is not None and suite.config.combined is None:
        config = suite.config.model_copy(update={"combined": CombinedSpec.model_validate(cell.combined)})
        suite = suite.model_copy(update={"config": config})
    return run_suite(suite, model, opts, EventProgress(cell.id, emit), session)


def _emit_line(event: dict[str, Any]) -> None:
    sys.stdout.write(EVENT_PREFIX + json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Worker process entry point: the job file in, event lines out (other output goes to stderr)."""
    from llmbench.run import interrupts

    args = argv if argv is not None else sys.argv[1:]
    job = JobSpec.model_validate_json(Path(args[0]).read_text(encoding="utf-8"))
    try:
        with interrupts.handling():
            run_job(job, _emit_line)
    except LLMBenchError as exc:
        _emit_line({"event": "job_failed", "error": str(exc)})
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
