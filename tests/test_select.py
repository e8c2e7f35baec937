"""Which results a comparison reads: folders expanded, the latest run of each model, backend and suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench.analysis.select import MANIFEST_NAME, expand, select_runs
from llmbench.errors import UserInputError
from llmbench.results.io import read_results, write_results
from llmbench.study import manifest
from tests.factories import make_run, verdicts


def _write(folder: Path, name: str, **kw: object) -> Path:
    run = make_run(str(kw.pop("model", "m")), {"t": verdicts(20, 0.5, 1)}, **kw)  # type: ignore[arg-type]
    return write_results(run, folder / name)


def test_a_folder_stands_for_the_results_files_under_it(tmp_path: Path) -> None:
    _write(tmp_path / "nightly", "a.json")
    _write(tmp_path / "nightly" / "sub", "b.json", created_at="2026-11-21T10:00:00+00:00")
    (tmp_path / "nightly" / "a.journal.jsonl").write_text("{}\n")
    assert [p.name for p in expand([tmp_path / "nightly"])] == ["a.json", "b.json"]
    with pytest.raises(UserInputError, match="no results files"):
        expand([tmp_path / "empty"] if (tmp_path / "empty").mkdir() is None else [])


def test_the_latest_run_of_each_model_backend_and_suite_is_kept(tmp_path: Path) -> None:
    files = [
        _write(tmp_path, f"{b}-{d}.json", backend=b, created_at=f"2026-11-0{d}T10:00:00+00:00")
        for b in ("vllm", "hf")
        for d in (1, 2, 3)
    ]
    latest = select_runs(files)
    assert sorted((s.run.backend.backend, s.run.created_at[:10]) for s in latest) == [
        ("hf", "2026-11-03"),
        ("vllm", "2026-11-03"),
    ]
    assert all(len(s.run.samples) == 20 for s in latest)  # the chosen runs are read whole
    assert len(select_runs(files, latest_only=False)) == 6


def test_repeats_of_the_latest_run_are_merged_into_one(tmp_path: Path) -> None:
    files = [
        _write(tmp_path, f"s{seed}.json", seed=seed, created_at=f"2026-11-02T10:0{seed}:00+00:00")
        for seed in (1, 2, 3)
    ]
    files.append(_write(tmp_path, "old.json", seed=1, created_at="2026-11-01T10:00:00+00:00"))
    (merged,) = select_runs(files)
    assert merged.run.settings.repeat_run_ids and len(merged.paths) == 3
    assert len(select_runs(files, keep_repeats=True)) == 3


def test_a_header_read_leaves_the_samples_out_and_keeps_the_rest(tmp_path: Path) -> None:
    path = _write(tmp_path, "r.json")
    whole, header = read_results(path), read_results(path, with_samples=False)
    assert header.samples == [] and whole.samples
    assert header.model_copy(update={"samples": whole.samples}) == whole


def test_a_study_folder_stands_for_its_results_not_its_manifest(tmp_path: Path) -> None:
    study = tmp_path / "study"
    _write(study, "cell-a.json")
    _write(study / "nested", "cell-b.json", created_at="2026-11-21T10:00:00+00:00")
    manifest.write_manifest(manifest.StudyManifest(study="s", study_file="s.yaml", study_hash="h"), study)
    (study / "nested" / MANIFEST_NAME).write_text((study / MANIFEST_NAME).read_text())
    assert MANIFEST_NAME == manifest.MANIFEST_NAME
    assert [p.name for p in expand([study])] == ["cell-a.json", "cell-b.json"]
    assert expand([study / MANIFEST_NAME]) == [study / MANIFEST_NAME]  # named as a file: read, and refused
