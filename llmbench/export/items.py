"""The results files an export is given, read whole, each with the study cell it belongs to (if any)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from pydantic import ValidationError

from llmbench.analysis.select import expand
from llmbench.errors import UserInputError
from llmbench.export.base import ExportItem, StudyRef
from llmbench.results.io import read_results
from llmbench.results.schema import SampleRecord
from llmbench.study.manifest import MANIFEST_NAME, read_manifest


def load_items(files: Iterable[Path], report_html: Callable[[Path], str]) -> list[ExportItem]:
    """Every results file (folders stand for the files in them, their study manifest left out), read up to its
    samples before anything is exported, so that a bad file fails the export before it starts."""
    given = [Path(f) for f in files]
    if not given:
        raise UserInputError("give at least one results file or folder to export")
    paths = [p for p in expand(given) if p in given or p.name != MANIFEST_NAME]
    items = []
    for path in paths:
        run = read_results(path, with_samples=False)
        items.append(
            ExportItem(path, run, partial(_samples, path), partial(report_html, path), study_of(path))
        )
    return items


def _samples(path: Path) -> list[SampleRecord]:
    return read_results(path).samples


def study_of(path: Path) -> StudyRef | None:
    """The study cell whose results file this is, from the study manifest in the same folder."""
    try:
        manifest = read_manifest(path.parent)
    except (OSError, ValueError, ValidationError):  # an unreadable manifest: the file is exported without it
        return None
    if manifest is None:
        return None
    for cell in manifest.cells:
        if Path(cell.results).name == path.name:
            return StudyRef(manifest.study, cell.id, manifest.study_hash)
    return None
