"""The journal: appended and flushed per sample, read back on resume, tolerant of a torn last line,
held by one process at a time, and pinning what a resume must not change."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from llmbench.errors import UserInputError
from llmbench.results.io import write_results
from llmbench.results.schema import PerfPoint, SampleRecord
from llmbench.run import journal
from llmbench.run.journal import Journal, JournalLockedError, is_held, read_journal, read_journal_samples
from llmbench.run.options import RunOptions, resolve_paths, resume_target
from llmbench.run.resume import resumes
from tests.factories import make_run

HEADER = {"run_id": "r", "suite_hash": "s", "model": {"name": "m"}, "settings": {"limit": 2}}


def record(i: int) -> SampleRecord:
    return SampleRecord(task="t", id=str(i), output=f"out {i}", score=1.0, status="correct")


def test_records_survive_without_close(tmp_path: Path) -> None:
    j = Journal(tmp_path / "r.journal.jsonl", HEADER)
    j.open(resume=False)
    j.append("t/0/0", record(0))
    j.append("t/1/0", record(1))
    # no close(): as after kill -9, what was appended is on disk
    done = read_journal(tmp_path / "r.journal.jsonl").samples
    assert set(done) == {"t/0/0", "t/1/0"} and done["t/1/0"].output == "out 1"


def test_samples_reach_the_disk_in_groups_and_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every sample is handed to the OS at once (readable by another process), but fsync, which waits for
    the device, runs at most once a second while samples stream in, and at close: never once per sample."""
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    monkeypatch.setattr(journal, "SYNC_EVERY_NS", 10**18)  # no second passes, however slow the host
    path = tmp_path / "r.journal.jsonl"
    j = Journal(path, HEADER)
    j.open(resume=False)
    after_open = len(synced)
    for i in range(200):
        j.append(f"t/{i}/0", record(i))
        assert f'"t/{i}/0"' in path.read_text().splitlines()[-1]  # already in the file, no close needed
    assert len(synced) == after_open
    j.close()
    assert len(synced) == after_open + 1 and set(read_journal(path).samples) == {
        f"t/{i}/0" for i in range(200)
    }


def test_torn_last_line_is_dropped_and_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "r.journal.jsonl"
    j = Journal(path, HEADER)
    j.open(resume=False)
    j.append("t/0/0", record(0))
    j.close()
    with open(path, "a") as fh:
        fh.write('{"request_id": "t/1/0", "sample": {"task": "t", "id"')
    j2 = Journal(path, HEADER)
    assert set(j2.open(resume=True).samples) == {"t/0/0"}
    j2.append("t/1/0", record(1))
    j2.close()
    assert set(read_journal(path).samples) == {"t/0/0", "t/1/0"}


def test_resume_refuses_a_changed_run(tmp_path: Path) -> None:
    path = tmp_path / "r.journal.jsonl"
    first = Journal(path, HEADER)
    first.open(resume=False)
    first.close()
    changed = HEADER | {"settings": {"limit": 5}}
    with pytest.raises(UserInputError, match=r"cannot resume.*settings changed.*limit 2 -> 5"):
        Journal(path, changed).open(resume=True)


def test_fresh_run_truncates_old_journal(tmp_path: Path) -> None:
    path = tmp_path / "r.journal.jsonl"
    j = Journal(path, HEADER)
    j.open(resume=False)
    j.append("t/0/0", record(0))
    j.close()
    Journal(path, HEADER).open(resume=False)
    assert read_journal(path).samples == {}


def test_a_named_unfinished_run_resumes_by_itself_and_fresh_starts_over(tmp_path: Path) -> None:
    results = tmp_path / "run.json"
    journal = Journal(Journal.path_for(results), HEADER)
    named = RunOptions(output=results)
    assert not resumes(named, results, journal.path)  # nothing to resume yet
    journal.open(resume=False)
    journal.append("t/0/0", record(0))
    journal.close()
    assert resumes(named, results, journal.path)  # killed before its results file: it continues
    assert not resumes(RunOptions(output=results, fresh=True), results, journal.path)


def test_a_finished_named_run_is_not_run_again_without_fresh(tmp_path: Path) -> None:
    results = tmp_path / "run.json"
    journal = Journal(Journal.path_for(results), HEADER)
    journal.open(resume=False)
    journal.append("t/0/0", record(0))
    journal.close()
    results.write_text("{}")
    with pytest.raises(UserInputError, match="this run is finished") as info:
        resumes(RunOptions(output=results), results, journal.path)
    assert "--fresh" in (info.value.hint or "")
    assert "t/0/0" in read_journal(journal.path).samples  # its journaled samples are kept
    assert not resumes(RunOptions(output=results, fresh=True), results, journal.path)


def test_an_unasked_resume_that_does_not_match_points_to_fresh(tmp_path: Path) -> None:
    path = tmp_path / "r.journal.jsonl"
    first = Journal(path, HEADER)
    first.open(resume=False)
    first.close()
    changed = HEADER | {"settings": {"limit": 5}}
    with pytest.raises(UserInputError, match="unfinished run of this name") as info:
        Journal(path, changed).open(resume=True, explicit=False)
    assert "--fresh" in (info.value.hint or "")


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    path = tmp_path / "r.journal.jsonl"
    first = Journal(path, HEADER)
    first.open(resume=False)
    first.append("t/0/0", record(0))
    assert is_held(path)
    with pytest.raises(JournalLockedError, match=f"llmbench process {os.getpid()} is writing") as info:
        Journal(path, HEADER).open(resume=True)
    assert info.value.exit_code == 2
    with pytest.raises(JournalLockedError):
        Journal(path, HEADER).open(resume=False)  # nor may a fresh run truncate it
    assert set(read_journal(path).samples) == {"t/0/0"}
    first.close()
    assert not is_held(path)
    assert set(Journal(path, HEADER).open(resume=True).samples) == {"t/0/0"}


def test_the_lock_goes_with_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "r.journal.jsonl"
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from llmbench.run.journal import Journal\n"
        f"Journal(Path({str(path)!r}), {HEADER!r}).open(resume=False)\n"
        "os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False, timeout=1800)
    assert not is_held(path)
    assert Journal(path, HEADER).open(resume=True).header == HEADER


def test_an_empty_journal_is_started_afresh_with_this_runs_header(tmp_path: Path) -> None:
    path = tmp_path / "r.journal.jsonl"
    path.write_text("")  # a run killed before its header reached the disk
    other = HEADER | {"settings": {"limit": 9}}
    adopter = Journal(path, other)
    assert adopter.open(resume=True).header == other
    adopter.close()
    with pytest.raises(UserInputError, match="settings changed"):
        Journal(path, HEADER).open(resume=True)  # the header now pins the first adopter's settings


def test_samples_without_a_header_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.journal.jsonl"
    path.write_text('{"request_id": "t/0/0", "sample": {"task": "t", "id": "0"}}\n')
    with pytest.raises(UserInputError, match="no header"):
        Journal(path, HEADER).open(resume=True)


def test_a_task_whose_data_changed_is_refused_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "r.journal.jsonl"
    j = Journal(path, HEADER)
    state = j.open(resume=False)
    j.pin_task("t", {"data": "aaa", "scorer": "s"}, state.tasks)
    j.append("t/0/0", record(0))
    j.close()
    j2 = Journal(path, HEADER)
    state = j2.open(resume=True)
    j2.pin_task("t", {"data": "aaa", "scorer": "s"}, state.tasks)  # unchanged: fine
    with pytest.raises(UserInputError, match="task 't' data changed since the run started"):
        j2.pin_task("t", {"data": "bbb", "scorer": "s"}, state.tasks)


def test_sweep_points_are_journaled(tmp_path: Path) -> None:
    path = tmp_path / "r.journal.jsonl"
    j = Journal(path, HEADER)
    j.open(resume=False)
    point = PerfPoint(input_tokens=8, output_tokens=4, concurrency=1, n_requests=2)
    j.append_point("sweep/0", point)
    j.close()
    assert read_journal(path).points == {"sweep/0": point}


def test_an_unnamed_run_beside_an_unfinished_one_says_so(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "math-tiny-20260101T000000Z.journal.jsonl", HEADER)
    journal.open(resume=False)
    journal.append("t/0/0", record(0))
    with pytest.raises(UserInputError):  # held: a live run; it is not offered for resuming either
        resolve_paths("math", "tiny", RunOptions(results_dir=tmp_path, resume=True))
    journal.close()
    with pytest.raises(UserInputError, match="an unfinished run of math on tiny exists") as info:
        resolve_paths("math", "tiny", RunOptions(results_dir=tmp_path))
    assert "llmbench run --resume --output" in (info.value.hint or "") and "--fresh" in (
        info.value.hint or ""
    )
    path, _ = resolve_paths("math", "tiny", RunOptions(results_dir=tmp_path, resume=True))
    assert path == tmp_path / "math-tiny-20260101T000000Z.json"
    path, _ = resolve_paths("math", "tiny", RunOptions(results_dir=tmp_path, fresh=True))
    assert not journal.path.exists() and path != tmp_path / "math-tiny-20260101T000000Z.json"


def test_an_unnamed_run_never_takes_the_name_of_a_run_of_the_same_second(tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    finished = set()
    for s in range(6):  # every second the calls below may fall in has a finished run already
        stamp = (now + timedelta(seconds=s)).strftime("%Y%m%dT%H%M%SZ")
        done = write_results(make_run("m", {"t": [1.0]}), tmp_path / f"math-tiny-{stamp}.json")
        Journal(Journal.path_for(done), HEADER).open(resume=False)
        finished.add(done)
    path, run_id = resolve_paths("math", "tiny", RunOptions(results_dir=tmp_path))
    assert path.name.endswith("-2.json") and run_id == path.stem
    assert path.with_name(path.name.removesuffix("-2.json") + ".json") in finished
    running = Journal(Journal.path_for(path), HEADER)
    running.open(resume=False, new=True)
    third, _ = resolve_paths("math", "tiny", RunOptions(results_dir=tmp_path))
    running.close()
    if third.name.split("-")[2] == path.name.split("-")[2]:  # the same second
        assert third.name == path.name.replace("-2.json", "-3.json")
    else:
        assert third.name.endswith("-2.json")


def test_a_journal_created_by_another_run_meanwhile_is_refused_not_truncated(tmp_path: Path) -> None:
    path = tmp_path / "math-tiny-20260101T000000Z.journal.jsonl"
    other = Journal(path, HEADER)
    other.open(resume=False)
    other.append("t/0/0", record(0))
    other.close()
    with pytest.raises(UserInputError, match="another run took this name"):
        Journal(path, HEADER | {"run_id": "mine"}).open(resume=False, new=True)
    assert set(read_journal(path).samples) == {"t/0/0"}


def test_runs_of_a_model_whose_name_extends_another_are_not_its_unfinished_runs(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "math-tiny-qwen2-20260101T000000Z.journal.jsonl", HEADER)
    journal.open(resume=False)
    journal.append("t/0/0", record(0))
    journal.close()
    path, _ = resolve_paths("math", "tiny", RunOptions(results_dir=tmp_path, fresh=True))
    assert journal.path.exists() and path.name.startswith("math-tiny-2")
    assert resolve_paths("math", "tiny-qwen2", RunOptions(results_dir=tmp_path, resume=True))[0] == (
        Journal.results_path_for(journal.path)
    )


def test_results_files_get_the_usual_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = write_results(make_run("m", {"t": [1.0]}), tmp_path / "r.json")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_stale_partial_write_is_removed_by_the_next_holder(tmp_path: Path) -> None:
    from llmbench.results.io import remove_partial_writes

    results = tmp_path / "r.json"
    stale = tmp_path / ".r.json.abcd1234.tmp"
    stale.write_text('{"half": ')
    other = tmp_path / ".other.json.abcd1234.tmp"
    other.write_text("{")
    remove_partial_writes(results)
    assert not stale.exists() and other.exists()


def test_a_name_with_glob_characters_removes_only_its_own_partial_writes(tmp_path: Path) -> None:
    from llmbench.results.io import remove_partial_writes

    own = tmp_path / ".r[1].json.abcd1234.tmp"
    own.write_text("{")
    another_runs = tmp_path / ".r1.json.abcd1234.tmp"  # what `r[1]` matches as a pattern
    another_runs.write_text("{")
    remove_partial_writes(tmp_path / "r[1].json")
    assert not own.exists() and another_runs.exists()


def test_a_last_line_cut_just_before_its_newline_is_kept_and_what_follows_starts_a_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "r.journal.jsonl"
    j = Journal(path, HEADER)
    j.open(resume=False)
    j.append("t/0/0", record(0))
    j.close()
    path.write_bytes(path.read_bytes()[:-1])  # the kill (or a full disk) came just before the "\n"
    resumed = Journal(path, HEADER)
    assert set(resumed.open(resume=True).samples) == {"t/0/0"}
    resumed.append("t/1/0", record(1))
    resumed.close()
    assert set(read_journal(path).samples) == {"t/0/0", "t/1/0"}
    again = Journal(path, HEADER)
    assert set(again.open(resume=True).samples) == {"t/0/0", "t/1/0"}
    again.append("t/2/0", record(2))
    again.close()
    assert set(read_journal(path).samples) == {"t/0/0", "t/1/0", "t/2/0"}


SAMPLE = {"task": "t", "id": "9", "output": "x"}
POINT = {"input_tokens": 8, "output_tokens": 4}
HOSTILE_LINES = {
    "opened-not-an-object": ({"opened": 7}, "'opened' is not an object"),
    "task-without-fingerprint": ({"task": "t"}, "'fingerprint' is missing"),
    "task-name-not-a-string": ({"task": ["t"], "fingerprint": {}}, "'task' is not a string"),
    "sample-not-an-object": ({"request_id": "t/9/0", "sample": "x"}, "'sample' is not an object"),
    "sample-missing-its-id": (
        {"request_id": "t/9/0", "sample": {"task": "t"}},
        r"sample\.id: Field required",
    ),
    "sample-score-not-a-number": (
        {"request_id": "t/9/0", "sample": SAMPLE | {"score": "high"}},
        r"sample\.score: ",
    ),
    "request-id-not-a-string": ({"request_id": ["t"], "sample": SAMPLE}, "'request_id' is not a string"),
    "at-not-a-time": ({"request_id": "t/9/0", "at": 5, "sample": SAMPLE}, "'at' is not a time"),
    "perf-not-valid": ({"point": "p/0", "perf": POINT | {"input_tokens": "many"}}, r"perf\.input_tokens: "),
    "point-key-without-number": ({"point": "p/x", "perf": POINT}, "a point named 'p/x'"),
    "header-not-an-object": ({"header": [1]}, "'header' is not an object"),
    "header-settings-bad": (
        {"header": HEADER | {"settings": {"limit": "all"}}},
        "the header's settings.limit is 'all'",
    ),
}


@pytest.mark.parametrize("line, message", HOSTILE_LINES.values(), ids=list(HOSTILE_LINES))
def test_a_malformed_line_is_a_corrupt_journal_naming_its_line_and_fresh(
    tmp_path: Path, line: dict[str, object], message: str
) -> None:
    path = tmp_path / "r.journal.jsonl"
    j = Journal(path, HEADER)
    j.open(resume=False)  # lines 1 and 2: the header and `opened`
    j.append("t/0/0", record(0))
    j.close()
    with open(path, "a") as fh:
        fh.write(json.dumps(line) + "\n")
        fh.write(json.dumps({"request_id": "t/1/0", "sample": record(1).model_dump()}) + "\n")
    where = rf"^corrupt journal: {re.escape(str(path))}:4: {message}"
    for read in (read_journal, lambda p: Journal(p, HEADER).open(resume=True)):
        with pytest.raises(UserInputError, match=where) as raised:
            read(path)
        assert raised.value.exit_code == 2 and "--fresh" in (raised.value.hint or "")
    if "request_id" in line and "at" not in line:  # a shard's journal is read for its samples alone
        with pytest.raises(UserInputError, match=where):
            read_journal_samples(path)


def test_a_resume_by_output_alone_refuses_a_header_whose_model_is_not_a_model(tmp_path: Path) -> None:
    results = tmp_path / "run.json"
    header = HEADER | {"suite_path": "suites/math.yaml", "model": {"name": "m", "backend": 3}}
    Journal(Journal.path_for(results), header).open(resume=False)
    with pytest.raises(UserInputError, match=r"corrupt journal: .*run\.journal\.jsonl: the header's model\."):
        resume_target(RunOptions(output=results, resume=True))


def test_a_journal_with_the_old_timeout_names_resumes_and_a_changed_model_does_not(tmp_path: Path) -> None:
    from llmbench.config.models import ModelConfig

    model = ModelConfig(name="m", backend="openai", model="m", api={"base_url": "http://127.0.0.1:1/v1"})
    today = model.model_dump(mode="json")
    older = json.loads(json.dumps(today))
    older["api"]["timeout_s"] = 600.0  # the names and the default before request_timeout_s
    older["api"]["first_byte_timeout_s"] = older["api"].pop("first_token_timeout_s")
    del older["api"]["request_timeout_s"]
    path = tmp_path / "r.journal.jsonl"
    first = Journal(path, HEADER | {"model": older})
    first.open(resume=False)
    first.close()
    again = Journal(path, HEADER | {"model": today})
    again.open(resume=True)
    again.close()
    other = json.loads(json.dumps(today)) | {"model": "another"}
    with pytest.raises(UserInputError, match="model changed"):
        Journal(path, HEADER | {"model": other}).open(resume=True)
