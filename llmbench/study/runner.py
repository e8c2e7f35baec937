"""A whole study, one call: plan it, run what is not done (here, on worker processes, or on Ray), rank it."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from llmbench.errors import LLMBenchError, UserInputError
from llmbench.results.io import read_results
from llmbench.run.pipeline import RunInterrupted
from llmbench.study.devices import host_devices
from llmbench.study.execute import Driver, StudyProgress, run_inline, run_pool
from llmbench.study.manifest import StudyManifest, new_manifest, read_manifest, write_manifest
from llmbench.study.placement import Demand, Placed, waves
from llmbench.study.plan import Plan, build_plan
from llmbench.study.spec import load_study
from llmbench.study.study_leaderboard import Leaderboard, build_leaderboard


class StudyInterrupted(LLMBenchError):
    """Ctrl-C: finished cells are kept, unfinished ones resume from their journals on the next run."""

    exit_code = 130


@dataclass
class StudyOptions:
    results_dir: Path | None = None
    gpus: int | None = None  # None: the GPUs this host shows (CUDA_VISIBLE_DEVICES, NVML)
    ray: str | None = None  # a Ray address, or "local"
    dry_run: bool = False
    constraints: dict[str, float] = field(default_factory=dict)  # max_vram_mib, max_ttft_ms, min_tokens_per_s


@dataclass
class StudyOutcome:
    plan: Plan
    host: list[int]
    waves: list[list[Placed]]
    manifest: StudyManifest
    manifest_path: Path | None
    leaderboard: Leaderboard | None
    failed: dict[str, str]
    devices: list[str] = field(default_factory=list)  # host GPU i is physical GPU devices[i]


def nvml_gpu_count() -> int:
    """GPUs NVML sees on this host; 0 without NVML or a driver."""
    from llmbench.telemetry.gpus import load_pynvml

    nvml, _ = load_pynvml()
    if nvml is None:
        return 0
    try:
        return int(nvml.nvmlDeviceGetCount())
    except Exception:
        return 0
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def plan_study(path: Path, opts: StudyOptions) -> StudyOutcome:
    study = load_study(path)
    if opts.constraints:
        spec = study.config.leaderboard
        merged = spec.constraints.model_copy(update=opts.constraints)
        lb = spec.model_copy(update={"constraints": merged})
        study.config = study.config.model_copy(update={"leaderboard": lb})
    plan = build_plan(study, opts.results_dir)
    devices = (
        [] if opts.ray else host_devices(os.environ.get("CUDA_VISIBLE_DEVICES"), opts.gpus, nvml_gpu_count)
    )
    host = list(range(len(devices)))
    todo = [j for j in plan.jobs if j.todo]
    placement = (
        waves([Demand(j.id, j.gpus if host else 0, j.exclusive and bool(host)) for j in todo], host)
        if host
        else []
    )
    manifest = new_manifest(plan, "ray" if opts.ray else "pool" if host else "inline", host, devices)
    return StudyOutcome(plan, host, placement, manifest, None, None, {}, devices)


def run_study(path: Path, opts: StudyOptions, progress: StudyProgress | None = None) -> StudyOutcome:
    """Run every unfinished cell of the study and build its leaderboard; finished cells are not redone."""
    outcome = plan_study(path, opts)
    if opts.dry_run:
        outcome.leaderboard = leaderboard_of(outcome.plan)
        return outcome
    plan, progress = outcome.plan, progress or StudyProgress()
    old = read_manifest(plan.results_dir)
    if old is not None:  # attempts so far survive a restart of the study
        for entry in outcome.manifest.cells:
            prev = next((c for c in old.cells if c.id == entry.id), None)
            entry.attempts = prev.attempts if prev else 0
    driver = Driver(plan, outcome.manifest, progress)
    outcome.manifest_path = plan.results_dir / "study.json"
    driver.save()
    todo = [j for j in plan.jobs if j.todo]
    progress.started({c.id: c.n_tasks for j in todo for c in j.todo})
    try:
        if opts.ray:
            from llmbench.study.ray_executor import run_on_ray

            run_on_ray(todo, opts.ray, driver, num_gpus=opts.gpus)
        elif outcome.host:
            run_pool(todo, outcome.devices, driver)
        else:
            run_inline(todo, driver)
    except (KeyboardInterrupt, RunInterrupted):
        for entry in outcome.manifest.cells:
            if entry.state == "running":
                entry.state = "partial"
        write_manifest(outcome.manifest, plan.results_dir)
        done = sum(1 for c in outcome.manifest.cells if c.state == "done")
        again = f"llmbench study {path}" + (f" --results-dir {opts.results_dir}" if opts.results_dir else "")
        raise StudyInterrupted(
            f"interrupted: {done} of {len(outcome.manifest.cells)} cells finished; unfinished cells keep "
            "their journals",
            hint=f"continue with: {again}",
        ) from None
    write_manifest(outcome.manifest, plan.results_dir)
    outcome.failed = dict(driver.failed)
    outcome.leaderboard = leaderboard_of(plan)
    return outcome


def leaderboard_of(plan: Plan) -> Leaderboard | None:
    runs = [read_results(c.output) for c in plan.cells if c.state == "done" and c.output.exists()]
    if not runs:
        return None
    return build_leaderboard(runs, plan.study.config.leaderboard)


def require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UserInputError(
            "--ray needs the 'ray' package, which is not installed", hint="pip install 'llmbench[ray]'"
        ) from None
