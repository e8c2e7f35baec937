"""Results files of older schema versions still read, compare and report: version 1 (written before the blocks
were typed) and version 2 (written before the optional fields of serving workloads and token gaps)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from llmbench import api
from llmbench.report import print_run_summary
from llmbench.results.io import read_results, write_results
from llmbench.results.schema import SCHEMA_VERSION

V1 = Path(__file__).parent / "fixtures" / "results-v1-math-tiny-qwen2.json"
V2 = Path(__file__).parent / "fixtures" / "results-v2-math-tiny-qwen2.json"  # V1 as llmbench cb00c45 wrote it


def test_a_version_1_file_is_upgraded_to_typed_blocks_as_it_is_read() -> None:
    assert json.loads(V1.read_text())["schema_version"] == 1
    run = read_results(V1)
    assert run.schema_version == SCHEMA_VERSION == 4
    assert (run.backend.backend, run.backend.vocab_size, run.backend.gpus) == ("transformers", 691, [])
    assert "vocab_size" not in run.backend.extra and run.backend.extra["torch"]
    assert (run.settings.limit, run.settings.seed, run.summary.samples) == (2, 0, 4)
    assert run.environment.python and run.summary.wall_s


def test_a_version_1_file_compares_and_reports_beside_a_current_file(tmp_path: Path) -> None:
    again = write_results(read_results(V1).model_copy(update={"run_id": "again"}), tmp_path / "v3.json")
    assert json.loads(again.read_text())["schema_version"] == SCHEMA_VERSION
    compared = api.compare([V1, again], baseline=V1)
    assert len(compared.comparison.labels) == 2 and api.gate(compared) == []
    for fmt in ("markdown", "csv", "json"):
        assert "gsm8k" in api.render(fmt, compared)
    assert "<html" in api.report([V1, again], tmp_path / "report.html").read_text()
    buffer = io.StringIO()
    print_run_summary(read_results(V1), Console(file=buffer, width=120))
    assert "math on tiny-qwen2 (transformers)" in buffer.getvalue()


def test_a_version_2_file_reads_as_the_current_version_and_is_written_as_it(tmp_path: Path) -> None:
    data = json.loads(V2.read_text())
    assert data["schema_version"] == 2 and "itl_ms" not in data["samples"][0]
    run = read_results(V2)
    assert run.schema_version == SCHEMA_VERSION and run == read_results(V1)
    assert read_results(V2, with_samples=False).schema_version == SCHEMA_VERSION
    again = write_results(run.model_copy(update={"run_id": "again"}), tmp_path / "again.json")
    assert json.loads(again.read_text())["schema_version"] == SCHEMA_VERSION
    compared = api.compare([V2, again], baseline=V2)
    assert len(compared.comparison.labels) == 2 and api.gate(compared) == []
