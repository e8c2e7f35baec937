"""Bad input that would cost a machine is refused at the edge: one line, exit code 2, nothing half-written."""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmbench.analysis.history import load_history
from llmbench.config.suite import DatasetSpec, GenerationSpec, PerfSweep, ScorerSpec, load_suite
from llmbench.data.base import DataContext
from llmbench.data.readers import LocalSource
from llmbench.errors import ConfigError, DataError, ResultsFileError, UserInputError
from llmbench.results.io import read_results, write_results
from tests.test_results import make_result

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmbench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1800,
        env=dict(os.environ) | (env or {}),
    )


def one_line_exit_2(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    # Progress lines and warnings may come before it; the failure itself is one line.
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "name: bomb\n" + "\n".join(lines) + "\ntasks: [*l8]\n"


# ------------------------------------------------------------------ YAML


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    assert bomb.stat().st_size < 1000
    with pytest.raises(ConfigError, match="aliases expand to more than"):
        load_suite(bomb)
    one_line_exit_2(cli("validate", str(bomb)), "bomb.yaml", "aliases expand")


def test_a_mapping_alias_bomb_through_merge_keys_is_refused_too(tmp_path: Path) -> None:
    lines = ["a0: &a0 {x: 1, y: 2, z: 3, w: 4, v: 5, u: 6, t: 7, s: 8}"]
    for i in range(1, 8):
        keys = ", ".join(f"k{j}: *a{i - 1}" for j in range(8))
        lines.append(f"a{i}: &a{i} {{{keys}}}")
    path = tmp_path / "m.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="aliases expand"):
        load_suite(path)


def test_a_self_referring_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("name: loop\ntasks: &t [*t]\n")
    with pytest.raises(ConfigError, match="refers to itself"):
        load_suite(path)


def test_modest_aliases_still_work(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "name: ok\ngeneration: &g {max_new_tokens: 8}\ntasks:\n"
        "  - {name: a, dataset: {builtin: arithmetic}, scorer: {name: exact}, generation: *g}\n"
    )
    assert load_suite(path).config.tasks[0].generation.max_new_tokens == 8


# ------------------------------------------------------------------ numbers


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (GenerationSpec, {"max_new_tokens": 10**35}),
        (GenerationSpec, {"max_new_tokens": 1e35}),
        (GenerationSpec, {"seed": 10**29}),
        (GenerationSpec, {"seed": -1}),
        (GenerationSpec, {"temperature": float("nan")}),
        (GenerationSpec, {"temperature": float("inf")}),
        (GenerationSpec, {"n": 10**12}),
        (GenerationSpec, {"top_k": 10**40}),
        (PerfSweep, {"input_tokens": [10**15]}),
        (PerfSweep, {"output_tokens": [10**9]}),
        (PerfSweep, {"concurrency": [10**10]}),
        (PerfSweep, {"request_rates": [float("inf")]}),
        (PerfSweep, {"requests_per_point": 10**18}),
        (PerfSweep, {"slo_ttft_ms": float("nan")}),
        (ScorerSpec, {"name": "code", "options": {"timeout_s": float("inf")}}),
        (ScorerSpec, {"name": "code", "options": {"k": [10**40]}}),
        (ScorerSpec, {"name": "code", "options": {"k": 10**400}}),  # beyond a float: no OverflowError
        (ScorerSpec, {"name": "code", "options": {"k": -(10**5000)}}),
    ],
)
def test_absurd_numbers_are_refused_by_validation(model: type, fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        model(**fields)


def test_an_absurd_number_in_a_suite_is_one_line_naming_its_place(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\ngeneration:\n  max_new_tokens: 100000000000000000000000000000000000\n"
        "  seed: 1e29\ntasks:\n  - {name: a, dataset: {builtin: arithmetic}, scorer: {name: exact}}\n"
    )
    one_line_exit_2(cli("validate", str(path)), "s.yaml:3", "max_new_tokens")


@pytest.mark.parametrize("digits", [400, 5000])  # past a float's range; past Python's int-from-text limit
def test_a_number_too_long_for_any_config_is_one_line_naming_its_place(tmp_path: Path, digits: int) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\ntasks:\n"
        f"  - {{name: a, dataset: {{builtin: arithmetic, options: {{n: 1{'0' * digits}}}}}, scorer: {{name: exact}}}}\n"
    )
    one_line_exit_2(cli("validate", str(path)), "s.yaml:3:", f"a number of {digits + 1} characters")


def test_sane_numbers_still_validate() -> None:
    GenerationSpec(max_new_tokens=32768, seed=2**32 - 1, temperature=1.5, n=200)
    PerfSweep(input_tokens=[128, 131072, "max"], concurrency=[1, 256], request_rates=[0.5, 20.0])


# ------------------------------------------------------------------ data files


def load_local(tmp_path: Path, name: str) -> object:
    return LocalSource().load(DatasetSpec(local=name), DataContext(suite_dir=tmp_path))


def test_a_line_beyond_the_limit_is_refused_without_reading_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("llmbench.data.readers.MAX_LINE_BYTES", 1024)
    (tmp_path / "d.jsonl").write_text('{"id": 1}\n' + json.dumps({"id": 2, "text": "x" * 5000}) + "\n")
    with pytest.raises(DataError, match=r"d.jsonl:2: a line longer than"):
        load_local(tmp_path, "d.jsonl")


def test_invalid_utf8_in_a_data_file_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_bytes(b'{"id": 1}\n{"id": "\xff\xfe"}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: not valid UTF-8"):
        load_local(tmp_path, "d.jsonl")
    (tmp_path / "d.json").write_bytes(b'[{"id": "\xff"}]')
    with pytest.raises(DataError, match="not valid UTF-8"):
        load_local(tmp_path, "d.json")


@pytest.mark.parametrize(
    "content",
    [
        b"this is not gzip at all\n",
        # mtime=0: the header holds no clock, so every test worker collects the same parameters
        gzip.compress(b"".join(b'{"id": %d}\n' % i for i in range(1000)), mtime=0)[:200],  # cut short
        gzip.compress(b'{"id": 1}\n', mtime=0)[:10] + b"\x00" * 40,  # corrupt deflate stream
    ],
    ids=["not-gzip", "cut-short", "corrupt-deflate"],
)
def test_a_corrupt_gzip_data_file_is_one_line(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "d.jsonl.gz").write_bytes(content)
    with pytest.raises(DataError, match="cannot be read"):
        load_local(tmp_path, "d.jsonl.gz")


def test_a_deeply_nested_data_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(DataError, match="nested too deeply"):
        load_local(tmp_path, "d.jsonl")


def test_a_directory_named_like_a_data_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "d.json").mkdir()
    with pytest.raises(DataError, match="not a file"):
        load_local(tmp_path, "d.json")


def test_bad_data_through_the_cli_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_bytes(b'{"id": "1", "text": "\xc3\x28"}\n')
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ntasks:\n  - name: a\n    dataset: {local: d.jsonl, reference_field: text}\n"
        "    scorer: {name: exact}\n"
    )
    (tmp_path / "samples.jsonl").write_text('{"task": "a", "id": "1", "output": "x"}\n')
    one_line_exit_2(
        cli(
            "score", str(suite), "--samples", str(tmp_path / "samples.jsonl"), "-o", str(tmp_path / "r.json")
        ),
        "d.jsonl:1",
        "UTF-8",
    )


def test_score_over_an_existing_output_is_exit_2_unless_fresh(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"id": "1", "q": "yes?", "answer": "yes"}\n')
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ntasks:\n  - name: a\n    dataset: {local: d.jsonl, reference_field: answer}\n"
        "    prompt: {template: '{{ q }}'}\n    scorer: {name: exact}\n"
    )
    (tmp_path / "samples.jsonl").write_text('{"task": "a", "id": "1", "output": "yes"}\n')
    earlier = tmp_path / "r.json"
    earlier.write_text("{}")
    args = ("score", str(suite), "--samples", str(tmp_path / "samples.jsonl"), "-o", str(earlier))
    one_line_exit_2(cli(*args), "a results file exists here", "--fresh")
    assert earlier.read_text() == "{}"
    assert cli(*args, "--fresh").returncode == 0 and json.loads(earlier.read_text())["run_id"]


def test_a_bad_samples_file_for_score_is_exit_2(tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_bytes(b"\xff\xff\n")
    one_line_exit_2(cli("score", "--scorer", "exact", "--samples", str(samples)), "UTF-8")
    samples.unlink()
    samples.mkdir()
    one_line_exit_2(cli("score", "--scorer", "exact", "--samples", str(samples)), "not a file")


# ------------------------------------------------------------------ results files


def test_a_deeply_nested_results_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"schema_version": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ResultsFileError, match="nested too deeply"):
        read_results(path)
    one_line_exit_2(cli("compare", str(path)), "deep.json")


def test_a_directory_named_json_is_not_a_results_file(tmp_path: Path) -> None:
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(ResultsFileError, match="cannot be read"):
        read_results(tmp_path / "dir.json")


def test_invalid_utf8_results_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(b'{"schema_version": 1, "run_id": "\xff"}')
    with pytest.raises(ResultsFileError, match="not a valid results file"):
        read_results(path)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_in_a_results_file_are_refused(tmp_path: Path, constant: str) -> None:
    path = write_results(make_result(), tmp_path / "r.json")
    text = path.read_text()
    path.write_text(text.replace('"ttft_ms": 1.5', f'"ttft_ms": {constant}', 1))
    assert constant in path.read_text()
    with pytest.raises(ResultsFileError):
        read_results(path)


@pytest.mark.parametrize("version", [True, 1.0, "1", [1]])
def test_a_schema_version_that_is_not_an_integer_is_refused(tmp_path: Path, version: object) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(make_result().model_dump() | {"schema_version": version}))
    with pytest.raises(ResultsFileError, match="schema version"):
        read_results(path)


def test_history_skips_bad_files_with_a_warning_and_shows_the_rest(tmp_path: Path) -> None:
    write_results(make_result(), tmp_path / "good.json")
    (tmp_path / "dir.json").mkdir()
    (tmp_path / "deep.json").write_text("[" * 100_000)
    (tmp_path / "nan.json").write_text('{"schema_version": NaN}')
    (tmp_path / "utf.json").write_bytes(b"\xff")
    skipped: list[str] = []
    assert len(load_history(tmp_path, skipped=skipped)) == 1
    assert len(skipped) == 4
    proc = cli("history", str(tmp_path), "--metric", "t.accuracy")
    assert proc.returncode == 0, proc.stderr
    assert "skipped" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------ full disks


def test_a_full_disk_is_one_line_naming_the_path_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out" / "r.json"
    write_results(make_result(), target)
    before = target.read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ResultsFileError, match="no space left") as err:
        write_results(make_result(), target)
    assert err.value.exit_code == 2 and str(target) in str(err.value)
    assert target.read_bytes() == before  # the old file is intact
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]  # no temporary file left


@pytest.mark.parametrize(("full_from", "named"), [(".r.json.", "r.json"), ("", "r.journal.jsonl")])
def test_a_full_disk_during_a_run_is_exit_2(tmp_path: Path, full_from: str, named: str) -> None:
    """The whole CLI, with writes to the results file (or to everything there) failing as a full disk would."""
    results = tmp_path / "results"
    suite = tmp_path / "s.yaml"
    (tmp_path / "d.jsonl").write_text(
        '{"id": "1", "q": "1+1", "a": "2"}\n{"id": "2", "q": "2+2", "a": "4"}\n'
    )
    suite.write_text(
        "name: s\ntasks:\n  - name: a\n    dataset: {local: d.jsonl, reference_field: a}\n"
        "    prompt: {template: '{{ q }}'}\n    scorer: {name: exact}\n"
    )
    boot = (
        "import errno, os, sys, tempfile\n"
        "real = os.fsync\n"
        "def fsync(fd):\n"
        f"    if os.readlink(f'/proc/self/fd/{{fd}}').startswith({str(results / full_from)!r}):\n"
        "        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        "    return real(fd)\n"
        "os.fsync = fsync\n"
        "from llmbench.cli.commands import main\n"
        "sys.argv = ['llmbench'] + sys.argv[1:]\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", boot, "run", str(suite), "-m", "tiny-qwen2", "-b", "reference", "-q",
         "-o", str(results / "r.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    one_line_exit_2(proc, named, "no space left")
    assert not (results / "r.json").exists()
    assert not list(results.glob(".*.tmp"))


def test_an_unwritable_results_path_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a directory")
    with pytest.raises(UserInputError, match="cannot be written"):
        write_results(make_result(), tmp_path / "blocker" / "r.json")


@pytest.mark.parametrize(("size", "named"), [("64k", "r.journal.jsonl"), ("512k", "r.json")])
def test_a_real_small_tmpfs_filling_up_is_exit_2(tmp_path: Path, size: str, named: str) -> None:
    """The same on a real full filesystem, a tmpfs in a private mount namespace: full while the journal
    is written (64 KiB), or only when the results file is (512 KiB: the ~340 KiB journal fits)."""
    import shutil

    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    full = tmp_path / "full"
    full.mkdir()
    rows = "".join(json.dumps({"id": str(i), "q": "x" * 2000, "a": "x" * 2000}) + "\n" for i in range(40))
    (tmp_path / "d.jsonl").write_text(rows)
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ntasks:\n  - name: a\n    dataset: {local: d.jsonl, reference_field: a}\n"
        "    prompt: {template: '{{ q }}'}\n    scorer: {name: exact}\n"
    )
    script = (
        f"mount -t tmpfs -o size={size} tmpfs {full} && exec {sys.executable} -m llmbench run {suite} "
        f"-m tiny-qwen2 -b reference -q -o {full / 'r.json'}"
    )
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user and mount namespaces are refused here")
    proc = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    one_line_exit_2(proc, str(full / named), "no space left")


class _Counted(io.FileIO):
    """A results file opened as results_io opens it, counting the bytes read from it."""

    read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        _Counted.read_bytes += len(data)
        return data


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> type[_Counted]:
    _Counted.read_bytes = 0
    monkeypatch.setattr("llmbench.results.io.open", lambda path, mode: _Counted(path, "r"), raising=False)
    return _Counted


def test_a_results_file_beyond_the_limit_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("llmbench.results.io.MAX_RESULTS_BYTES", 1 << 20)
    path = write_results(make_result(), tmp_path / "r.json")
    with path.open("r+b") as fh:  # samples, then a summary past the end of the padding: no summary to find
        fh.seek(0, os.SEEK_END)
        fh.write(b" " * (3 << 20))
    counted = _count_reads(monkeypatch)
    for with_samples in (False, True):
        with pytest.raises(ResultsFileError, match="larger than"):
            read_results(path, with_samples=with_samples)
    assert counted.read_bytes == 0


def test_a_summary_far_from_the_end_is_found_reading_the_tail_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_result()
    run.summary.warnings = [f"warning {i}: " + "w" * 200 for i in range(1000)]  # 200 KiB after its key
    run.samples = run.samples * 4000
    path = write_results(run, tmp_path / "r.json")
    counted = _count_reads(monkeypatch)
    light = read_results(path, with_samples=False)
    assert light.samples == [] and light.summary == run.summary and light.tasks == run.tasks
    assert counted.read_bytes < path.stat().st_size / 3  # the head and the tail; the samples passed over


def test_a_summary_key_across_two_chunks_of_the_backward_read_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_result()
    run.samples = run.samples * 4000  # megabytes of samples: reading them all would show

    def written(length: int) -> tuple[Path, int]:
        run.summary.warnings = ["w" * length]
        path = write_results(run, tmp_path / "r.json")
        data = path.read_bytes()
        return path, len(data) - data.rindex(b'\n  "summary": ')

    _, distance = written(1000)  # the key's distance from the end, with a warning of 1000 characters
    for shift in range(-16, 17):  # the key ends, straddles, then starts at 64 KiB from the end
        path, d = written(1000 + (1 << 16) - distance + shift)
        assert d == (1 << 16) + shift
        counted = _count_reads(monkeypatch)
        assert read_results(path, with_samples=False).summary == run.summary
        assert counted.read_bytes < path.stat().st_size / 3, shift
        monkeypatch.undo()
