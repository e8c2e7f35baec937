"""Trace readers: the shipped synthetic traces, the public formats' columns, and hostile files (file:line, exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmbench.config.serving import TraceWorkload
from llmbench.config.suite import SUITES_DIR
from llmbench.data.traces import read_trace
from llmbench.errors import DataError, UserInputError
from llmbench.run.trace_replay import load_trace

TRACES = SUITES_DIR / "traces"
HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_the_shipped_mooncake_trace_reads_sorted_from_zero_with_shared_blocks() -> None:
    trace = read_trace(TRACES / "synthetic-mooncake.jsonl")
    assert trace.format == "mooncake" and len(trace.records) == 16
    times = [r.arrival_s for r in trace.records]
    assert times[0] == 0.0 and times == sorted(times)
    firsts = [r.hash_ids[:2] for r in trace.records]
    assert firsts.count((0, 1)) >= 2 and firsts.count((10, 11)) >= 2  # two shared "system prompts"


def test_the_shipped_burstgpt_trace_skips_its_failed_request() -> None:
    trace = read_trace(TRACES / "synthetic-burstgpt.csv")
    assert trace.format == "burstgpt" and len(trace.records) == 11 and trace.skipped == 1
    assert all(r.output_tokens > 0 and not r.hash_ids for r in trace.records)


def test_mooncake_timestamps_are_milliseconds_and_unknown_keys_are_ignored(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.jsonl",
        '{"timestamp": 2500, "input_length": 10, "output_length": 2, "extra": "x"}\n\n'
        '{"timestamp": 1000, "input_length": 20, "output_length": 3, "hash_ids": [5, 6]}\n',
    )
    trace = read_trace(path)
    assert [(r.arrival_s, r.input_tokens, r.output_tokens, r.hash_ids, r.line) for r in trace.records] == [
        (0.0, 20, 3, (5, 6), 3),
        (1.5, 10, 2, (), 1),
    ]
    assert len(read_trace(path, max_requests=1).records) == 1


def test_burstgpt_reads_its_columns_in_any_order(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "Response tokens,Timestamp,Request tokens\n4,1.5,30\n5,0.5,20\n")
    trace = read_trace(path)
    assert [(r.arrival_s, r.input_tokens, r.output_tokens) for r in trace.records] == [
        (0.0, 20, 5),
        (1.0, 30, 4),
    ]


def one_line_error(path: Path, line: int, message: str) -> DataError:
    """Reading `path` fails with one line that starts with file:line and says `message`."""
    with pytest.raises(DataError) as caught:
        read_trace(path)
    assert str(caught.value).startswith(f"{path}:{line}: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)
    return caught.value


def mooncake(**changes: Any) -> str:
    """One Mooncake line: a valid request with `changes` (None drops the key)."""
    row = {"timestamp": 0, "input_length": 5, "output_length": 1} | changes
    return json.dumps({k: v for k, v in row.items() if v is not None}) + "\n"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (mooncake() + "not json\n", 2, "not a JSON object"),
        ("[1, 2]\n", 1, "not a JSON object but list"),
        (mooncake(output_length=None), 1, "no 'output_length'"),
        (mooncake(timestamp=-1), 1, "timestamp -1 is out of range"),
        (mooncake(timestamp=float("nan")), 1, "not a JSON object"),
        (mooncake(input_length=True), 1, "input_length must be a whole number"),
        (mooncake(input_length=1.5), 1, "input_length 1.5 is not a whole number"),
        (mooncake(input_length=1e30), 1, "is not a whole number from 1"),
        (mooncake(output_length=0), 1, "output_length 0"),
        (mooncake(hash_ids="a"), 1, "hash_ids must be a list"),
        (mooncake(hash_ids=[-1]), 1, "hash_ids must hold"),
        (mooncake(timestamp="0"), 1, "timestamp must be a number"),
        ("[" * 100_000 + "\n", 1, "nested too deeply"),
        ('{"timestamp": 1' + "0" * 400 + ', "input_length": 5, "output_length": 1}\n', 1, "timestamp ~1e400"),
        (
            '{"timestamp": 0, "input_length": 1' + "0" * 400 + ', "output_length": 1}\n',
            1,
            "input_length ~1e400",
        ),
        ('{"timestamp": 0, "input_length": 5, "output_length": -1' + "0" * 400 + "}\n", 1, "-~1e400"),
        ('{"timestamp": 1e400, "input_length": 5, "output_length": 1}\n', 1, "timestamp inf is out"),
        ('{"timestamp": 0, "input_length": 1e400, "output_length": 1}\n', 1, "input_length inf is not"),
        (mooncake(timestamp=2**53 + 1), 1, "is out of range (0 to 2**53)"),
    ],
)
def test_a_malformed_mooncake_line_is_one_error_naming_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    error = one_line_error(write(tmp_path, "bad.jsonl", text), line, message)
    assert isinstance(error, UserInputError) and error.exit_code == 2


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("Timestamp,Model,Request tokens\n", 1, "the header lacks Response tokens"),
        (HEADER + "0.5,ChatGPT,ten,4,14,API log\n", 2, "Request tokens 'ten' is not a number"),
        (HEADER + "0.5,ChatGPT,10,4,14,API log\n0.7,ChatGPT\n", 3, "2 columns where the header has 6"),
        (HEADER + "inf,ChatGPT,10,4,14,API log\n", 2, "Timestamp inf is out of range"),
        (HEADER + "nan,ChatGPT,10,4,14,API log\n", 2, "Timestamp nan is out of range"),
        (HEADER + "0,ChatGPT,1e400,4,14,API log\n", 2, "Request tokens inf is not a whole number"),
        (HEADER + "0.5,ChatGPT,-3,4,1,API log\n", 2, "Request tokens -3.0 is not a whole number"),
        ("", 1, "empty file"),
    ],
)
def test_a_malformed_burstgpt_row_is_one_error_naming_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    one_line_error(write(tmp_path, "bad.csv", text), line, message)


def test_files_that_are_no_trace_at_all_are_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not UTF-8"):
        read_trace(write(tmp_path, "t.jsonl", b'{"timestamp": 0}\xff\xfe\n'))
    with pytest.raises(DataError, match="cannot tell the trace format"):
        read_trace(write(tmp_path, "t.txt", "x"))
    with pytest.raises(DataError, match="holds no requests"):
        read_trace(write(tmp_path, "empty.jsonl", "\n\n"))
    with pytest.raises(DataError, match=r"holds no requests \(1 skipped\)"):
        read_trace(write(tmp_path, "failed.csv", HEADER + "0.1,GPT-4,10,0,10,API log\n"))
    with pytest.raises(DataError, match="cannot read the trace"):
        read_trace(tmp_path / "missing.jsonl")
    assert read_trace(write(tmp_path, "any.name", HEADER + "0,GPT-4,3,4,7,API log\n"), "burstgpt").records


def test_a_burstgpt_csv_saved_by_excel_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    path = write(tmp_path, "excel.csv", ("\ufeff" + HEADER + "0.5,ChatGPT,10,4,14,API log\n").encode())
    assert [(r.arrival_s, r.input_tokens) for r in read_trace(path).records] == [(0.0, 10)]
    moon = write(tmp_path, "bom.jsonl", ("\ufeff" + mooncake(timestamp=7)).encode())
    assert read_trace(moon).records[0].input_tokens == 5


def test_absolute_unix_timestamps_are_shifted_to_the_first_arrival(tmp_path: Path) -> None:
    epoch_ms = 1_764_547_200_000  # 2025-12-01 in ms: Mooncake's unit
    path = write(tmp_path, "t.jsonl", mooncake(timestamp=epoch_ms + 2500) + mooncake(timestamp=epoch_ms))
    assert [r.arrival_s for r in read_trace(path).records] == [0.0, 2.5]
    csv_path = write(
        tmp_path, "t.csv", HEADER + "1764547203.25,GPT-4,3,4,7,API log\n1764547200,GPT-4,3,4,7,API log\n"
    )
    assert [r.arrival_s for r in read_trace(csv_path).records] == [0.0, 3.25]


def test_a_trace_spanning_more_than_thirty_years_is_a_unit_mistake(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", mooncake(timestamp=5) + mooncake(timestamp=2 * 10**12 + 5))
    error = one_line_error(path, 2, "spans 2e+09 s from its first request (line 1)")
    assert error.exit_code == 2


def test_a_replay_that_would_last_over_a_day_at_its_time_scale_is_refused(tmp_path: Path) -> None:
    two_days_ms = 2 * 86_400_000
    path = write(tmp_path, "t.jsonl", mooncake(timestamp=0) + mooncake(timestamp=two_days_ms))
    assert read_trace(path, time_scale=0.5).records[-1].arrival_s == 172_800.0  # one day at x0.5: allowed
    with pytest.raises(DataError) as caught:
        read_trace(path, time_scale=0.6)
    message = str(caught.value)
    assert message.startswith(f"{path}:2: ") and "\n" not in message
    assert "spans 1.728e+05 s" in message and "time_scale 0.6" in message and "1.037e+05 s" in message
    assert caught.value.exit_code == 2
    assert len(read_trace(path, time_scale=0.6, max_requests=1).records) == 1  # what is replayed counts


def test_the_workloads_time_scale_reaches_the_span_check(tmp_path: Path) -> None:
    write(tmp_path, "t.jsonl", mooncake(timestamp=0) + mooncake(timestamp=3_600_000))  # an hour
    fine = TraceWorkload(kind="trace", path="t.jsonl", time_scale=24)
    assert len(load_trace(fine, tmp_path).records) == 2
    with pytest.raises(DataError, match="time_scale 25 its replay would last 9e\\+04 s, over a day"):
        load_trace(fine.model_copy(update={"time_scale": 25}), tmp_path)
