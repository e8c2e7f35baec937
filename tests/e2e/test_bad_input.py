"""Bad input of every kind: one clear line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.helpers import llmbench

pytestmark = pytest.mark.e2e


def check(r, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) <= 2, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


def test_suite_typo_names_line_and_key(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ntasks:\n  - name: a\n    dataset: {local: d.jsonl}\n    scorer: {name: exact}\n    wieght: 2\n"
    )
    check(llmbench("run", str(suite), "--model", "tiny-qwen2"), "s.yaml:6", "unknown key 'wieght'", "weight")


def test_yaml_syntax_error(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ntasks: [\n")
    check(llmbench("validate", str(suite)), "YAML syntax error")


def test_wrong_type(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ntasks:\n  - name: a\n    dataset: {local: d.jsonl}\n    scorer: {name: exact}\n    weight: heavy\n"
    )
    check(llmbench("validate", str(suite)), "s.yaml:6", "weight")


def test_missing_required_field(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ntasks:\n  - name: a\n    scorer: {name: exact}\n")  # no dataset
    check(llmbench("validate", str(suite)), "s.yaml:3", "needs a dataset")
    model = tmp_path / "m.yaml"
    model.write_text("name: m\nbackend: vllm\nmodell: org/x\n")  # 'model' misspelt, so missing
    check(
        llmbench("run", "suites/math.yaml", "--model", str(model)), "m.yaml:1", "missing required key 'model'"
    )


def test_unknown_model_alias() -> None:
    check(llmbench("run", "suites/math.yaml", "--model", "qwen9"), "unknown model 'qwen9'")


def test_unknown_backend() -> None:
    check(
        llmbench("run", "suites/math.yaml", "--model", "tiny-qwen2", "--backend", "vllmm"),
        "unknown backend 'vllmm'",
        "vllm",
    )


def test_unknown_scorer(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ntasks:\n  - name: a\n    dataset: {local: d.jsonl}\n    scorer: {name: maths}\n"
    )
    check(llmbench("validate", str(suite)), "unknown scorer 'maths'", "math")


def test_missing_data_file(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ntasks:\n  - name: a\n    dataset: {local: nothere.jsonl}\n    scorer: {name: exact}\n"
    )
    check(
        llmbench(
            "run",
            str(suite),
            "--model",
            "tiny-qwen2",
            "--backend",
            "reference",
            "--results-dir",
            str(tmp_path),
        ),
        "nothere.jsonl: data file not found",
    )


def test_unreachable_hf_dataset_offline(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ntasks:\n  - name: a\n    dataset: {hf: openai/gsm8k, config: main}\n    scorer: {name: math}\n"
    )
    check(
        llmbench(
            "run",
            str(suite),
            "--model",
            "tiny-qwen2",
            "--backend",
            "reference",
            "--results-dir",
            str(tmp_path),
        ),
        "openai/gsm8k",
        "could not be loaded",
    )


def test_corrupt_results_file_to_compare(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "run_id": ')
    check(llmbench("compare", str(bad)), "bad.json", "not a valid results file")


def test_older_or_newer_schema_explained(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"schema_version": 0}))
    check(llmbench("compare", str(old)), "schema version 0")


def test_unknown_option_is_exit_2() -> None:
    r = llmbench("run", "suites/math.yaml", "--model", "tiny-qwen2", "--limitt", "3")
    assert r.returncode == 2 and "No such option" in r.stderr


def test_debug_shows_traceback() -> None:
    r = llmbench("--debug", "run", "suites/math.yaml", "--model", "qwen9")
    assert r.returncode == 2 and "Traceback" in r.stderr


def test_a_misspelt_alias_gets_a_did_you_mean() -> None:
    check(
        llmbench("run", "suites/math.yaml", "--model", "qwen2.5-7c"),
        "unknown model",
        "did you mean qwen2.5-7b",
    )


def test_a_model_path_that_does_not_exist_says_so(tmp_path: Path) -> None:
    r = llmbench("run", "suites/math.yaml", "--model", str(tmp_path / "no-model"))
    check(r, "no such file or directory")
    assert "unknown model" not in r.stderr


def test_an_unknown_scorer_names_its_file_and_line(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    (tmp_path / "d.jsonl").write_text('{"id": "1", "prompt": "x", "answer": "y"}\n')
    suite.write_text(
        "name: s\ntasks:\n  - name: a\n    dataset: {local: d.jsonl}\n    scorer: {name: maths}\n"
    )
    for r in (
        llmbench("validate", str(suite)),
        llmbench("run", str(suite), "-m", "tiny-qwen2", "-b", "reference"),
    ):
        check(r, "s.yaml:5", "unknown scorer 'maths'", "did you mean 'math'")


def test_validate_checks_that_data_files_exist(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ntasks:\n  - name: a\n    dataset: {local: nothere.jsonl}\n    scorer: {name: exact}\n"
    )
    check(llmbench("validate", str(suite)), "s.yaml:4", "nothere.jsonl: data file not found")


def test_usage_errors_are_one_line() -> None:
    for r in (
        llmbench("run", "suites/math.yaml", "--model", "tiny-qwen2", "--limitt", "3"),
        llmbench("run", "suites/math.yaml", "--model", "tiny-qwen2", "--limit", "0"),
        llmbench("bogus"),
    ):
        check(r, "error:")
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_resume_and_fresh_together_are_a_conflict(tmp_path: Path) -> None:
    check(llmbench("run", "--resume", "--fresh", "-o", str(tmp_path / "r.json")), "--fresh and --resume")


def test_the_interrupted_hint_only_where_a_run_was_interrupted(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "run_id": ')
    assert (
        "was the run interrupted" not in llmbench("compare", str(bad)).stderr
    )  # results files are written whole
    journal = tmp_path / "r.journal.jsonl"
    journal.write_text('{"header": {}}\n{"opened": {"pid": 1}}\n')
    r = llmbench("compare", str(journal))
    check(r, "unfinished run's journal", "llmbench run --resume --output")
