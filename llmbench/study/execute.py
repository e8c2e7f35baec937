"""Running a plan's jobs: in this process one after another, or as worker processes on GPU sets.

The driver alone writes the manifest; workers report events (cell started, samples done, cell done or
failed) and write their own journals and results files. A worker that dies leaves its journals: the
next run of the study resumes them.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmbench.study.devices import worker_devices, worker_environment
from llmbench.study.manifest import StudyManifest, write_manifest
from llmbench.study.placement import Demand, Placed, next_placement
from llmbench.study.plan import Cell, Job, Plan
from llmbench.study.worker import EVENT_PREFIX, CellSpec, JobSpec, run_job


class StudyProgress:
    """What the study reports as it goes; the CLI renders it, tests ignore it."""

    def started(self, tasks_per_cell: dict[str, int]) -> None: ...
    def event(self, event: dict[str, Any]) -> None: ...
    def message(self, text: str) -> None: ...


class Driver:
    """Keeps the manifest in step with the workers' events."""

    def __init__(self, plan: Plan, manifest: StudyManifest, progress: StudyProgress) -> None:
        self.plan, self.manifest, self.progress = plan, manifest, progress
        self.failed: dict[str, str] = {}

    def save(self) -> None:
        write_manifest(self.manifest, self.plan.results_dir)

    def placed(
        self, job: Job, placed: Placed, node: str | None = None, devices: Sequence[str] | None = None
    ) -> None:
        for cell in job.todo:
            entry = self.manifest.cell(cell.id)
            entry.placed_on, entry.exclusive, entry.node = list(placed.gpus), placed.exclusive, node
            entry.devices = list(devices) if devices is not None else None
        self.save()

    def handle(self, event: dict[str, Any]) -> None:
        kind, cid = event.get("event"), event.get("cell")
        entry = self.manifest.cell(cid) if cid else None
        if entry is not None:
            if kind == "cell_started":
                entry.state, entry.error = "running", None
                entry.attempts += 1
                entry.worker = f"{event.get('host')}:{event.get('pid')}"
                entry.node = event.get("node") or entry.node
            elif kind == "cell_done":
                entry.state, entry.error = "done", None
                entry.samples_done = int(event.get("samples", entry.samples_done))
                self.plan.cell(entry.id).state = "done"
            elif kind == "cell_failed":
                entry.state, entry.error = "failed", str(event.get("error"))
                self.failed[entry.id] = entry.error
            elif kind == "advance":
                entry.samples_done += int(event.get("n", 1))
            if kind in ("cell_started", "cell_done", "cell_failed"):
                self.save()
        self.progress.event(event)

    def job_ended(self, job: Job, error: str | None) -> None:
        """A job whose process ended: cells it left running or untouched are unfinished (or failed)."""
        for cell in job.cells:
            entry = self.manifest.cell(cell.id)
            if entry.state in ("running", "pending", "partial", "stale"):
                entry.state = "failed" if error else "partial"
                entry.error = error
                if error:
                    self.failed[cell.id] = error
        self.save()


def repeat_group_of(cell: Cell) -> str | None:
    """The group a repeated cell belongs to (`CellSpec.repeat_of`): its results folder and its cell id
    without `-rN`, so repeats of another night, in another folder, stay apart; None for a cell run once."""
    if cell.entry.repeat < 2:
        return None
    return f"{cell.output.parent.resolve()}:{cell.id.removesuffix(f'-r{cell.repeat}')}"


def job_spec(job: Job, placed: Placed | None, devices: Sequence[str], plan: Plan) -> JobSpec:
    """The job as its worker reads it; a placed job's cells record host positions and physical GPUs."""
    composite = plan.study.config.leaderboard.composite
    combined = None
    if composite.judge is not None:  # the study's judge rates every quality cell's answers
        combined = {
            "accuracy_weight": composite.accuracy_weight,
            "rating_weight": composite.rating_weight,
            "judge": composite.judge.model_dump(),
        }
    annotations: dict[str, Any] = {}
    if placed is not None:
        annotations = {
            "placement": {
                "gpus": list(placed.gpus),
                "devices": worker_devices(devices, placed.gpus),  # CUDA_VISIBLE_DEVICES entries
                "host_gpus": len(devices),
                "exclusive": placed.exclusive,  # nothing else ran on any GPU of the host meanwhile
            }
        }
    return JobSpec(
        id=job.id,
        model=job.model.model_dump(mode="json"),
        cells=[
            CellSpec(
                id=c.id,
                suite=str(c.suite.path.resolve()),  # workers (Ray's too) may start elsewhere
                limit=c.entry.limit,
                tasks=list(c.entry.tasks),
                seed=c.seed,
                output=str(c.output.resolve()),
                fresh=c.state == "stale",
                combined=combined,
                annotations=annotations,
                repeat_of=repeat_group_of(c),
            )
            for c in job.todo
        ],
    )


def run_inline(jobs: Sequence[Job], driver: Driver) -> None:
    """One job after another in this process: the CPU host, or a study of API models."""
    for job in jobs:
        run_job(job_spec(job, None, [], driver.plan), driver.handle)
        driver.job_ended(job, None)


def run_pool(jobs: Sequence[Job], devices: Sequence[str], driver: Driver) -> None:
    """Worker processes on disjoint GPU sets, as many at once as the host holds; host GPU i is `devices[i]`."""
    host = list(range(len(devices)))
    waiting = list(jobs)
    running: dict[str, tuple[Job, Placed, subprocess.Popen[str], Path]] = {}
    events: queue.Queue[tuple[str, dict[str, Any] | None]] = queue.Queue()
    try:
        while waiting or running:
            demands = [Demand(j.id, j.gpus, j.exclusive) for j in waiting]
            while (p := next_placement(demands, [r[1] for r in running.values()], host)) is not None:
                job = next(j for j in waiting if j.id == p.job)
                waiting.remove(job)
                demands = [d for d in demands if d.job != p.job]
                running[job.id] = (
                    job,
                    p,
                    *_start(job_spec(job, p, devices, driver.plan), devices, p, events),
                )
                driver.placed(job, p, devices=worker_devices(devices, p.gpus))
                driver.progress.message(
                    f"{job.id}: started on GPU {','.join(worker_devices(devices, p.gpus)) or 'none'}"
                    + (" (host to itself)" if p.exclusive else "")
                )
            job_id, event = events.get()
            if event is not None:
                driver.handle(event)
                continue
            job, _p, proc, spec_file = running.pop(job_id)
            code = proc.wait()
            spec_file.unlink(missing_ok=True)
            driver.job_ended(job, None if code == 0 else f"worker exited with code {code}")
    finally:
        for _job, _p, proc, _f in running.values():  # Ctrl-C: workers stop; their journals stay
            proc.terminate()
        for _job, _p, proc, _f in running.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _start(
    spec: JobSpec,
    devices: Sequence[str],
    placed: Placed,
    events: queue.Queue[tuple[str, dict[str, Any] | None]],
) -> tuple[subprocess.Popen[str], Path]:
    fd, name = tempfile.mkstemp(prefix=f"llmbench-{spec.id}-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(spec.model_dump_json())
    env = worker_environment(os.environ, devices, placed.gpus)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmbench.study.worker", name],
        stdout=subprocess.PIPE,
        stderr=None,  # the workers' own warnings reach the terminal as they are
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,  # Ctrl-C reaches the driver, which stops the workers itself
    )
    threading.Thread(target=_pump, args=(spec.id, proc, events), daemon=True).start()
    return proc, Path(name)


def _pump(
    job_id: str, proc: subprocess.Popen[str], events: queue.Queue[tuple[str, dict[str, Any] | None]]
) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(EVENT_PREFIX):
            with contextlib.suppress(json.JSONDecodeError):  # a line cut by a dying worker
                events.put((job_id, json.loads(line[len(EVENT_PREFIX) :])))
        else:
            sys.stderr.write(line)
    events.put((job_id, None))  # the worker's output ended: it exited
