"""What an exporter is: a Protocol, the results file it is handed, what it reports back, and the registry.

An exporter copies results files somewhere a team already looks (an MLflow server, a W&B project, a
Hugging Face dataset). It is registered by the name `--to` uses; third-party ones come in through the
`llmbench.exporters` entry-point group. Each needs its own optional packages, imported inside it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol

from llmbench.errors import MissingDependencyError
from llmbench.registry import Registry
from llmbench.results.schema import RunResult, SampleRecord


@dataclass(frozen=True)
class StudyRef:
    """The study a results file is a cell of (from the study manifest beside it)."""

    name: str
    cell: str
    study_hash: str


@dataclass(frozen=True)
class ExportItem:
    """One results file to export: where it is, what it holds (without its samples: most exporters need none
    and a folder of large files would not fit in memory), and its samples and HTML report, read on demand."""

    path: Path
    run: RunResult
    samples: Callable[[], list[SampleRecord]]
    report_html: Callable[[], str]
    study: StudyRef | None = None


@dataclass(frozen=True)
class ExportOptions:
    """Where to export; each exporter reads what it needs: an MLflow tracking URI, a folder (the W&B offline
    runs' root, the dataset folder), an MLflow experiment or W&B project name."""

    tracking_uri: str | None = None
    directory: Path | None = None
    experiment: str | None = None


@dataclass(frozen=True)
class Exported:
    """What one results file became: `created` is False when it was already there (nothing was written)."""

    results_file: Path
    run_id: str
    location: str
    created: bool = True


class Exporter(Protocol):
    """Built from the options (it checks its packages and destination first), then exports results files."""

    def __init__(self, options: ExportOptions) -> None: ...

    def export(self, items: Sequence[ExportItem]) -> list[Exported]:
        """Export every item; an item already exported is reported with `created=False`, not written again."""
        ...


def require(module: str, extra: str, *, purpose: str) -> ModuleType:
    """Import an exporter's optional package, or raise the one-line error with its install hint."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(module, extra, purpose=purpose) from None


exporters: Registry[type[Exporter]] = Registry("exporter")
exporters.add_lazy("mlflow", "llmbench.export.mlflow:MlflowExporter")
exporters.add_lazy("wandb", "llmbench.export.wandb:WandbExporter")
exporters.add_lazy("hf-dataset", "llmbench.export.hfdataset:HfDatasetExporter")
exporters.add_entry_points("llmbench.exporters")
