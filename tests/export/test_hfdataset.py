"""`--to hf-dataset`: the samples as Parquet splits with a card that `datasets.load_dataset(DIR)` reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmbench import api
from llmbench.errors import UserInputError
from llmbench.export.hfcard import render_card
from tests.export.helpers import needs, two_runs, write_runs


def _card(folder: Path) -> dict:
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_load_dataset_reads_every_sample_of_every_exported_run(tmp_path: Path) -> None:
    datasets = needs("datasets")
    runs = two_runs()
    files = write_runs(tmp_path / "results", runs)
    out = tmp_path / "ds"
    done = api.export(files, "hf-dataset", directory=out)
    assert [d.created for d in done] == [True, True]
    card = _card(out)
    assert [c["config_name"] for c in card["configs"]] == ["code", "math"]
    assert card["configs"][0]["default"] is True

    math = datasets.load_dataset(str(out), "math", cache_dir=str(tmp_path / "cache"))
    (split,) = math.keys()
    rows = math[split]
    assert len(rows) == len(runs[0].samples)
    assert rows[0]["run_id"] == runs[0].run_id and rows[0]["task"] == "gsm8k"
    assert rows[0]["output"] == runs[0].samples[0].output
    assert rows[0]["ttft_ms"] == pytest.approx(runs[0].samples[0].ttft_ms)

    code = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))  # the default config
    first = code[next(iter(code.keys()))][0]
    assert first["messages"] == [{"role": "user", "content": "write add(a, b)"}] and first["prompt"] is None
    assert json.loads(first["reference"]) == {"tests": ["assert add(1, 2) == 3"]}
    assert first["warnings"] == ["usage disagreed with the stream"]


def test_exporting_again_writes_nothing_and_a_new_file_adds_its_split(tmp_path: Path) -> None:
    needs("pyarrow")
    math, code = write_runs(tmp_path / "results", two_runs())
    out = tmp_path / "ds"
    api.export([math], "hf-dataset", directory=out)
    written = next((out / "data" / "math").glob("*.parquet"))
    stamp = written.stat().st_mtime_ns
    again = api.export([math, code], "hf-dataset", directory=out)
    assert [d.created for d in again] == [False, True]
    assert written.stat().st_mtime_ns == stamp
    card = _card(out)
    assert {c["config_name"] for c in card["configs"]} == {"math", "code"}
    assert sorted(p.name for p in out.rglob("*") if p.name.startswith(".")) == []  # no temporary file left
    info = {i["config_name"]: i["splits"][0]["num_examples"] for i in card["dataset_info"]}
    assert info == {"math": 20, "code": 6}


def test_two_runs_given_the_same_run_id_get_splits_of_their_own(tmp_path: Path) -> None:
    needs("pyarrow")
    first = two_runs()[0].model_copy(update={"run_id": "math"})  # `llmbench run --output math.json`, twice
    second = first.model_copy(update={"created_at": "2026-11-21T10:00:00+00:00"})
    files = write_runs(tmp_path / "a", [first]) + write_runs(tmp_path / "b", [second])
    done = api.export(files, "hf-dataset", directory=tmp_path / "ds")
    assert [d.created for d in done] == [True, True] and done[0].location != done[1].location
    assert len(_card(tmp_path / "ds")["configs"][0]["data_files"]) == 2


def test_hf_dataset_needs_a_folder() -> None:
    with pytest.raises(UserInputError, match="--output DIR"):
        api.export(["x.json"], "hf-dataset")


def _gfm_cells(row: str) -> list[str]:
    """A Markdown table row's cells as GitHub's table parser splits them: `\\x` escapes x, `|` ends a cell."""
    cells, cell, chars = [], "", iter(row.strip().removeprefix("|"))
    for ch in chars:
        if ch == "\\":
            cell += ch + next(chars, "")
        elif ch == "|":
            cells.append(cell.strip())
            cell = ""
        else:
            cell += ch
    return cells


def test_the_cards_run_table_keeps_one_row_per_split_whatever_the_names_hold() -> None:
    split = {
        "config": "math", "split": "tiny_math", "backend": "vllm", "created_at": "2026-11-20",
        "rows": 3, "suite_score": 0.5, "path": "data/math/x.parquet",
        "model": "tiny|a\nsecond line\r\nthird", "run_id": "ends-in-backslash\\|after",
    }  # fmt: skip
    card = render_card([split])
    table = card[card.index("| config |") :].splitlines()
    assert len(table) == 3  # header, rule, one row: no line break leaked out of a cell
    cells = _gfm_cells(table[2])
    assert len(cells) == 8
    assert cells[2] == "tiny\\|a second line third"
    assert cells[7] == "ends-in-backslash\\\\\\|after"  # the backslash escaped, so the pipe stays escaped
