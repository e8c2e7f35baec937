"""The study manifest (study.json beside the cells' results): every cell with its state and results file.

Written by the driver alone, atomically, after every change, so it can be read at any moment.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from llmbench.results.io import write_atomic
from llmbench.study.plan import Cell, Plan

MANIFEST_NAME = "study.json"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class CellEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    model: str
    backend: str
    suite: str
    seed: int
    repeat: int = 1
    kind: str
    gpus_needed: int
    results: str
    journal: str
    state: str
    samples_done: int = 0
    placed_on: list[int] | None = None  # positions among the host's GPUs
    devices: list[str] | None = None  # the physical GPUs at those positions (CUDA_VISIBLE_DEVICES entries)
    exclusive: bool = False
    node: str | None = None
    worker: str | None = None  # host:pid of the process running the cell
    attempts: int = 0
    error: str | None = None


class StudyManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manifest_version: int = 1
    study: str
    study_file: str
    study_hash: str
    updated_at: str = Field(default_factory=_now)
    executor: str = "local"
    host_gpus: list[int] = Field(default_factory=list)
    host_devices: list[str] = Field(default_factory=list)  # host GPU i is physical GPU host_devices[i]
    cells: list[CellEntry] = Field(default_factory=list)

    def cell(self, cell_id: str) -> CellEntry:
        return next(c for c in self.cells if c.id == cell_id)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cells:
            out[c.state] = out.get(c.state, 0) + 1
        return out


def entry_for(cell: Cell) -> CellEntry:
    return CellEntry(
        id=cell.id,
        model=cell.model.name,
        backend=cell.model.backend,
        suite=cell.suite.name,
        seed=cell.seed,
        repeat=cell.repeat,
        kind=cell.kind,
        gpus_needed=cell.gpus,
        results=str(cell.output),
        journal=str(cell.journal),
        state=cell.state,
        samples_done=cell.samples_done,
    )


def new_manifest(
    plan: Plan, executor: str, host: list[int], devices: list[str] | None = None
) -> StudyManifest:
    return StudyManifest(
        study=plan.study.name,
        study_file=str(plan.study.path),
        study_hash=plan.study.content_hash,
        executor=executor,
        host_gpus=host,
        host_devices=devices or [],
        cells=[entry_for(c) for c in plan.cells],
    )


def write_manifest(manifest: StudyManifest, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    manifest.updated_at = _now()
    path = directory / MANIFEST_NAME
    return write_atomic(path, manifest.model_dump_json(indent=2))  # the umask decides, as for results


def read_manifest(directory: Path) -> StudyManifest | None:
    path = directory / MANIFEST_NAME
    if not path.exists():
        return None
    return StudyManifest.model_validate_json(path.read_text(encoding="utf-8"))
