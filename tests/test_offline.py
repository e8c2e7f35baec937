"""`llmbench score`: completions produced elsewhere, scored over the whole task, and per-line verdicts printed."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from llmbench import api
from llmbench.config.suite import Suite, load_suite
from llmbench.errors import DataError
from llmbench.report import print_verdicts
from llmbench.run.offline import MISSING_OUTPUT, score_samples_file

SUITE = """\
name: offline
tasks:
  - name: sums
    dataset: {local: sums.jsonl, reference_field: answer}
    prompt: {template: "{{ question }}"}
    scorer: {name: math}
  - name: echo
    dataset: {local: sums.jsonl, reference_field: answer}
    prompt: {template: "{{ question }}"}
    scorer: {name: exact}
"""
PROBLEMS = [{"id": f"p{i}", "question": f"{i} + {i}?", "answer": f"#### {2 * i}"} for i in range(1, 7)]


@pytest.fixture
def suite(tmp_path: Path) -> Suite:
    (tmp_path / "sums.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    (tmp_path / "offline.yaml").write_text(SUITE)
    return load_suite(tmp_path / "offline.yaml")


def write_lines(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def answers(ids: list[int], task: str = "sums") -> list[dict[str, Any]]:
    return [{"task": task, "id": f"p{i}", "output": f"The answer is {2 * i}."} for i in ids]


def test_a_complete_samples_file_scores_every_problem_without_errors(
    suite: Suite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    result = score_samples_file(
        suite, write_lines(tmp_path / "s.jsonl", answers([1, 2, 3, 4, 5, 6])), ["sums"]
    )
    task = result.tasks[0]
    assert task.metrics["accuracy"].value == 1.0 and task.n_samples == 6
    assert result.summary.errors == 0 and result.summary.missing == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_problems_without_a_line_count_as_failed_errors_and_are_announced(
    suite: Suite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    samples = write_lines(tmp_path / "s.jsonl", answers([1, 2, 4, 5]))
    with caplog.at_level(logging.WARNING, logger="llmbench.run.offline"):
        result = score_samples_file(suite, samples, ["sums"])
    task = result.tasks[0]
    assert task.metrics["accuracy"].value == pytest.approx(4 / 6)  # over all six problems, not the four
    assert (task.n_samples, task.counts["correct"], task.counts["error"], task.n_errors) == (6, 4, 2, 2)
    missing = [r for r in result.samples if r.status == "error"]
    assert [(r.id, r.error, r.score) for r in missing] == [
        ("p3", MISSING_OUTPUT, 0.0),
        ("p6", MISSING_OUTPUT, 0.0),
    ]
    assert (result.summary.errors, result.summary.missing) == (2, 2)
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "2 of 6 problems have no line" in warning and "p3, p6" in warning


def test_a_missing_problem_gets_as_many_failed_samples_as_the_most_sampled_one(
    suite: Suite, tmp_path: Path
) -> None:
    lines = answers([1, 2, 3, 4, 5]) * 3  # three samples per problem, p6 missing
    result = score_samples_file(suite, write_lines(tmp_path / "s.jsonl", lines), ["sums"])
    p6 = [r for r in result.samples if r.id == "p6"]
    assert [r.sample_index for r in p6] == [0, 1, 2] and {r.status for r in p6} == {"error"}
    assert result.tasks[0].metrics["accuracy"].value == pytest.approx(5 / 6)


def test_summary_errors_count_scorer_errors_as_well_as_missing_lines(tmp_path: Path) -> None:
    records = [
        {"id": "good", "schema": {"type": "object"}, "reference": {"a": 1}},
        {
            "id": "bad_schema",
            "schema": {"type": "nonsense"},
            "reference": {"a": 1},
        },  # the scorer cannot judge
        {"id": "absent", "schema": {"type": "object"}, "reference": {"a": 1}},
    ]
    (tmp_path / "shapes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "shapes.yaml").write_text(
        "name: shapes\ntasks:\n  - name: shapes\n    dataset: {local: shapes.jsonl, reference_field: reference}\n"
        '    prompt: {template: "{{ id }}"}\n    scorer: {name: json}\n'
    )
    lines = [
        {"task_id": "good", "completion": '{"a": 1}'},
        {"task_id": "bad_schema", "completion": '{"a": 1}'},
    ]
    result = score_samples_file(
        load_suite(tmp_path / "shapes.yaml"), write_lines(tmp_path / "s.jsonl", lines), []
    )
    statuses = {r.id: r.status for r in result.samples}
    assert statuses == {"good": "correct", "bad_schema": "error", "absent": "error"}
    assert (result.summary.errors, result.summary.missing) == (2, 1)


def test_a_task_with_no_line_at_all_is_skipped_with_a_warning(
    suite: Suite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="llmbench.run.offline"):
        result = score_samples_file(suite, write_lines(tmp_path / "s.jsonl", answers([1, 2, 3, 4, 5, 6])), [])
    assert [t.name for t in result.tasks] == ["sums"]
    assert "task 'echo' has no line" in caplog.text


def printed(scorer: str, tmp_path: Path, lines: list[dict[str, Any]]) -> list[str]:
    buffer = io.StringIO()
    verdicts = api.score_lines(scorer, write_lines(tmp_path / "l.jsonl", lines))
    print_verdicts(verdicts, Console(file=buffer, width=100))
    return buffer.getvalue().splitlines()


def test_score_lines_prints_the_math_verdict_with_its_extracted_answer(tmp_path: Path) -> None:
    out = printed(
        "math", tmp_path, [{"id": "a", "output": "The answer is therefore 42.", "reference": "#### 42"}]
    )
    assert (
        out[0].split()[:3] == ["a", "correct", "1.000"]
        and 'extracted="42"' in out[0]
        and "strict=1" in out[0]
    )


def test_score_lines_prints_json_field_metrics_and_the_wrong_and_extra_fields(tmp_path: Path) -> None:
    lines = [
        {"id": "j1", "output": '{"a": 1, "b": 3, "x": 9}', "reference": {"a": 1, "b": 2}},
        {"id": "j2", "output": "Sorry, no JSON.", "reference": {"a": 1}},
    ]
    out = printed("json", tmp_path, lines)
    assert out[0].split()[:3] == ["j1", "wrong", "0.000"]
    for part in ("field_accuracy=0.5", "field_precision=0.333333", 'wrong_fields=["$.b"]', '"$.x"'):
        assert part in out[0], part
    assert out[1].split()[:2] == ["j2", "unparsed"] and "no JSON value found" in out[1]


def test_score_lines_prints_the_multilingual_language_verdict(tmp_path: Path) -> None:
    lines = [
        {"id": "l1", "output": "It is Rome.", "answers": ["Rome"], "language": "fr"},
        {
            "id": "l2",
            "output": "The capital of Italy is the city of Rome.",
            "answers": ["Rome"],
            "language": "fr",
        },
    ]
    out = printed("multilingual", tmp_path, lines)
    assert out[0].split()[:2] == ["l1", "correct"] and 'language_verdict="undetermined"' in out[0]
    assert "language_undetermined=1" in out[0] and 'matched_answer="Rome"' in out[0]
    assert out[1].split()[:2] == ["l2", "wrong"] and 'language_verdict="mismatch"' in out[1]
    assert "language_match=0" in out[1]


def test_tool_calls_in_a_samples_file_are_scored_as_the_calls_a_server_reported(tmp_path: Path) -> None:
    tools = load_suite(Path(__file__).parent.parent / "suites" / "tools.yaml")
    openai_call = {
        "id": "call_0",
        "type": "function",
        "function": {"name": "get_weather_forecast", "arguments": '{"city": "Lisbon", "days": 3}'},
    }
    lines = [
        {"task": "tool_calls", "id": "simple_01", "output": None, "tool_calls": [openai_call]},
        {
            "task": "tool_calls",
            "id": "multiple_01",
            "output": "",
            "tool_calls": [{"name": "get_stock_quote", "arguments": {"symbol": "ACME", "exchange": "NYSE"}}],
        },
        {"task": "tool_calls", "id": "irrelevance_01", "output": "Michelangelo."},
        {
            "task": "tool_calls",
            "id": "simple_02",
            "output": "",
            "tool_calls": [{"name": "get_weather_forecast", "arguments": {"city": "Tokyo"}}],
        },  # the wrong function
    ]
    result = score_samples_file(tools, write_lines(tmp_path / "calls.jsonl", lines), ["tool_calls"])
    verdicts = {r.id: r.score for r in result.samples if r.error != MISSING_OUTPUT}
    assert verdicts == {"simple_01": 1.0, "multiple_01": 1.0, "irrelevance_01": 1.0, "simple_02": 0.0}
    kept = next(r for r in result.samples if r.id == "simple_01")
    assert kept.tool_calls == [{"name": "get_weather_forecast", "arguments": '{"city": "Lisbon", "days": 3}',
                                "id": "call_0"}]  # fmt: skip


@pytest.mark.parametrize("calls", ["get_weather", [{"arguments": {}}], [{"function": {"name": ""}}], [17]])
def test_malformed_tool_calls_are_one_line_naming_the_line(tmp_path: Path, calls: object) -> None:
    tools = load_suite(Path(__file__).parent.parent / "suites" / "tools.yaml")
    path = write_lines(
        tmp_path / "bad.jsonl", [{"task": "tool_calls", "id": "simple_01", "tool_calls": calls}]
    )
    with pytest.raises(DataError, match=r"bad\.jsonl:1: tool_calls"):
        score_samples_file(tools, path, ["tool_calls"])


def test_score_lines_reads_tool_calls_beside_the_output(tmp_path: Path) -> None:
    data = Path(__file__).parent.parent / "suites" / "data" / "tools" / "tools_mini.jsonl"
    question = next(q for q in map(json.loads, data.read_text().splitlines()) if q["id"] == "multiple_01")
    call = {"name": "get_stock_quote", "arguments": '{"symbol": "ACME", "exchange": "NYSE"}'}
    path = write_lines(tmp_path / "l.jsonl", [
        question | {"id": "a", "tool_calls": [call]},
        question | {"id": "b", "output": "I cannot."},
    ])  # fmt: skip
    got = dict(api.score_lines("tools", path))
    assert got["a"].value == 1.0 and got["b"].value == 0.0
