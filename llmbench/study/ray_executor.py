"""Running a study on a Ray cluster: each job a Ray task that asks for the GPUs it needs.

Cells write their journals and results files under the study's results directory, which every node
must see (a shared path; on one host, any folder). A task whose worker or node dies is retried by Ray
on a live node and resumes each cell from its journal, so nothing finished is run or scored twice; the
task also returns its results files, which the driver writes where a node's copy did not reach.
Quality cells run side by side; performance cells run after them, one at a time. With `shards: N` a
quality job is split by stable sample ids into N tasks, and one more task merges the shards' journals
into each cell's results file, the same as an unsharded run of those samples.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmbench.config.suite import REPO_ROOT
from llmbench.errors import UserInputError
from llmbench.study.devices import PCI_ORDER
from llmbench.study.execute import Driver, job_spec
from llmbench.study.plan import Job
from llmbench.study.worker import JobSpec, run_job

TASK_RETRIES = 3  # a worker or node that dies: the task runs again elsewhere, resuming from the journals


def shard_path(output: str, index: int, n: int) -> str:
    p = Path(output)
    return str(p.parent / "shards" / f"{p.stem}.shard-{index + 1}-of-{n}.json")


def _ray_job(spec_json: str, events: Any) -> dict[str, str]:
    """The Ray task: run the job where Ray placed it; events go back to the driver through a queue."""
    import ray

    spec = JobSpec.model_validate_json(spec_json)
    node = ray.util.get_node_ip_address()
    gpus = [str(g) for g in ray.get_gpu_ids()]
    for cell in spec.cells:
        placement = dict(cell.annotations.get("placement", {}))
        cell.annotations["placement"] = placement | {"gpus": gpus, "node": node, "executor": "ray"}

    def emit(event: dict[str, Any]) -> None:
        events.put(event | {"node": node})

    finished = run_job(spec, emit)
    out: dict[str, str] = {}
    for cell in spec.cells:
        if cell.id in finished and Path(cell.output).exists():
            out[cell.output] = Path(cell.output).read_text(encoding="utf-8")
    return out


def connect(address: str, num_gpus: int | None = None) -> bool:
    """Join the cluster at `address`, or start one here for 'local'; True when this call started it."""
    import ray

    env = {
        "env_vars": {
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
            **PCI_ORDER,  # Ray's GPU ids are NVML's: CUDA must count in the same order
        }
    }
    if ray.is_initialized():
        return False
    if address == "local":
        ray.init(
            num_gpus=num_gpus,
            include_dashboard=False,
            runtime_env=env,
            log_to_driver=False,
            object_store_memory=128 * 1024**2,
            # Ray lowers its workers' priority (nice 15) by default; a run that takes timings should not
            # wait behind every other process of the host.
            _system_config={"worker_niceness": 0},
        )
    else:
        ray.init(address=address, runtime_env=env, log_to_driver=False)
    return True


def run_on_ray(jobs: Sequence[Job], address: str, driver: Driver, num_gpus: int | None = None) -> None:
    import ray
    from ray.util.queue import Queue

    started = connect(address, num_gpus)
    pending: dict[Any, tuple[Job, str]] = {}
    try:
        if not _check_fits(jobs, ray.nodes()):
            driver.progress.message("the Ray cluster has no GPUs: every cell runs on CPUs")
            jobs = [replace(j, gpus=0) for j in jobs]
        events = Queue(actor_options={"num_cpus": 0})
        task = ray.remote(max_retries=TASK_RETRIES, retry_exceptions=False, num_cpus=1)(_ray_job)
        shards = driver.plan.study.config.shards
        quality = [j for j in jobs if not j.exclusive]
        for job in quality:
            for stage, spec in _stages(job, driver, shards):
                ref = task.options(num_gpus=job.gpus).remote(spec.model_dump_json(), events)
                pending[ref] = (job, stage)
        _wait(pending, events, driver, task, shards)
        for job in (j for j in jobs if j.exclusive):  # performance: one at a time, nothing else running
            spec = job_spec(job, None, [], driver.plan)
            for cell in spec.cells:
                cell.annotations["placement"] = {"exclusive": True}
            _wait(
                {task.options(num_gpus=job.gpus).remote(spec.model_dump_json(), events): (job, "whole")},
                events,
                driver,
                task,
                shards,
            )
    except BaseException:
        for ref in pending:  # Ctrl-C or a driver error: stop this study's tasks on the cluster
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


def _stages(job: Job, driver: Driver, shards: int) -> list[tuple[str, JobSpec]]:
    spec = job_spec(job, None, [], driver.plan)
    if shards <= 1 or not spec.cells:
        return [("whole", spec)]
    out = []
    for i in range(shards):
        part = spec.model_copy(deep=True)
        part.id = f"{spec.id}.shard-{i + 1}-of-{shards}"
        for cell in part.cells:
            cell.shard = (i, shards)
            cell.output = shard_path(cell.output, i, shards)
            cell.id = f"{cell.id}#shard{i + 1}"
        out.append((f"shard{i}", part))
    return out


def _merge_spec(job: Job, driver: Driver, shards: int) -> JobSpec:
    spec = job_spec(job, None, [], driver.plan)
    for cell in spec.cells:
        cell.merge_journals = [
            shard_path(cell.output, i, shards).removesuffix(".json") + ".journal.jsonl" for i in range(shards)
        ]
    return spec


def _wait(pending: dict[Any, tuple[Job, str]], events: Any, driver: Driver, task: Any, shards: int) -> None:
    import ray

    shard_done: dict[str, int] = {}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
        _drain(events, driver)
        for ref in ready:
            job, stage = pending.pop(ref)
            try:
                files = ray.get(ref)
            except Exception as exc:  # retries spent, or the job raised
                _drain(events, driver)
                driver.job_ended(
                    job, f"ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                )
                continue
            _drain(events, driver)
            for path, text in files.items():  # a node without the shared path: its results come back here
                if not Path(path).exists():
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                    Path(path).write_text(text, encoding="utf-8")
            if stage.startswith("shard"):
                shard_done[job.id] = shard_done.get(job.id, 0) + 1
                if shard_done[job.id] == shards:
                    merge = _merge_spec(job, driver, shards)
                    pending[task.options(num_gpus=job.gpus).remote(merge.model_dump_json(), events)] = (
                        job,
                        "merge",
                    )
                continue
            driver.job_ended(job, None)
    _drain(events, driver)


def _drain(events: Any, driver: Driver) -> None:
    while not events.empty():
        event = events.get()
        cell = str(event.get("cell", ""))
        if "#shard" in cell:  # a shard's own events: the cell is done when its shards are merged
            if event.get("event") == "cell_failed":
                driver.handle(event | {"cell": cell.split("#")[0]})
            else:
                driver.progress.event(event)
            continue
        driver.handle(event)


def _check_fits(jobs: Sequence[Job], nodes: list[dict[str, Any]]) -> bool:
    """Whether the cluster has GPUs at all; raises when a job needs more than its largest node has."""
    most = max((int(n.get("Resources", {}).get("GPU", 0)) for n in nodes if n.get("Alive")), default=0)
    if most == 0:
        return False
    for job in jobs:
        if job.gpus > most:
            raise UserInputError(
                f"job {job.id} needs {job.gpus} GPU(s); the largest node of the Ray cluster has {most}",
                hint="vLLM spans nodes itself with distributed_executor_backend: ray in the model config",
            )
    return True
