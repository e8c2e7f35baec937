"""The journal: appended and flushed per sample, read back on resume, tolerant of a torn last line."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench.errors import UserInputError
from llmbench.results import SampleRecord
from llmbench.run.journal import Journal

HEADER = {"run_id": "r", "suite_hash": "s", "model": {"name": "m"}, "settings": {"limit": 2}}


def record(i: int) -> SampleRecord:
    return SampleRecord(task="t", id=str(i), output=f"out {i}", score=1.0, status="correct")


def test_records_survive_without_close(tmp_path: Path) -> None:
    j = Journal(tmp_path / "r.journal.jsonl", HEADER)
    j.open(resume=False)
    j.append("t/0/0", record(0))
    j.append("t/1/0", record(1))
    # no close(): as after kill -9, what was appended is on disk
    done = Journal(tmp_path / "r.journal.jsonl", HEADER).open(resume=True)
    assert set(done) == {"t/0/0", "t/1/0"} and done["t/1/0"].output == "out 1"


def test_torn_last_line_is_dropped_and_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "r.journal.jsonl"
    j = Journal(path, HEADER)
    j.open(resume=False)
    j.append("t/0/0", record(0))
    j.close()
    with open(path, "a") as fh:
        fh.write('{"request_id": "t/1/0", "sample": {"task": "t", "id"')
    j2 = Journal(path, HEADER)
    assert set(j2.open(resume=True)) == {"t/0/0"}
    j2.append("t/1/0", record(1))
    j2.close()
    assert set(Journal(path, HEADER).open(resume=True)) == {"t/0/0", "t/1/0"}


def test_resume_refuses_a_changed_run(tmp_path: Path) -> None:
    path = tmp_path / "r.journal.jsonl"
    Journal(path, HEADER).open(resume=False)
    changed = HEADER | {"settings": {"limit": 5}}
    with pytest.raises(UserInputError, match=r"cannot resume.*settings changed"):
        Journal(path, changed).open(resume=True)


def test_fresh_run_truncates_old_journal(tmp_path: Path) -> None:
    path = tmp_path / "r.journal.jsonl"
    j = Journal(path, HEADER)
    j.open(resume=False)
    j.append("t/0/0", record(0))
    j.close()
    Journal(path, HEADER).open(resume=False)
    assert Journal(path, HEADER).open(resume=True) == {}


def test_a_named_unfinished_run_resumes_by_itself_and_fresh_starts_over(tmp_path: Path) -> None:
    from llmbench.run.pipeline import RunOptions, _resumes

    results = tmp_path / "run.json"
    journal = Journal(Journal.path_for(results), HEADER)
    named = RunOptions(output=results)
    assert not _resumes(named, results, journal)  # nothing to resume yet
    journal.open(resume=False)
    journal.append("t/0/0", record(0))
    journal.close()
    assert _resumes(named, results, journal)  # killed before its results file: it continues
    assert not _resumes(RunOptions(output=results, fresh=True), results, journal)
    assert not _resumes(RunOptions(results_dir=tmp_path), results, journal)  # unnamed runs get new names
    results.write_text("{}")
    assert not _resumes(named, results, journal)  # a finished run is run again from the start
    with pytest.raises(UserInputError, match="--fresh and --resume"):
        _resumes(RunOptions(output=results, fresh=True, resume=True), results, journal)


def test_an_unasked_resume_that_does_not_match_points_to_fresh(tmp_path: Path) -> None:
    path = tmp_path / "r.journal.jsonl"
    Journal(path, HEADER).open(resume=False)
    changed = HEADER | {"settings": {"limit": 5}}
    with pytest.raises(UserInputError, match="unfinished run of this name") as info:
        Journal(path, changed).open(resume=True, explicit=False)
    assert "--fresh" in (info.value.hint or "")
