"""The one JSON Lines reader: data files, completions to score and journals all read through it."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench.data.readers import jsonl_lines, read_jsonl
from llmbench.errors import DataError


def test_a_torn_last_line_ends_a_journal_with_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"b": 2}\n{"c": ')
    lines = list(jsonl_lines(path, tolerate_torn_last_line=True))
    assert [line.value for line in lines[:3]] == [{"a": 1}, None, {"b": 2}]
    assert lines[-1].torn and lines[-1].lineno == 4 and lines[-1].offset == len(b'{"a": 1}\n\n{"b": 2}\n')


def test_a_torn_line_followed_by_more_is_corrupt_even_for_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": \n{"c": 3}\n')
    with pytest.raises(DataError, match=r"j.jsonl:2: invalid JSON line"):
        list(jsonl_lines(path, tolerate_torn_last_line=True))


def test_a_data_file_tolerates_no_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": ')
    with pytest.raises(DataError, match=r"d.jsonl:2: invalid JSON line"):
        list(read_jsonl(path))
