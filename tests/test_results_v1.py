"""A version-1 results file (written by llmbench before the blocks were typed) still reads, compares and reports."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from llmbench import api
from llmbench.report import print_run_summary
from llmbench.results import SCHEMA_VERSION
from llmbench.results_io import read_results, write_results

V1 = Path(__file__).parent / "fixtures" / "results-v1-math-tiny-qwen2.json"


def test_a_version_1_file_is_upgraded_to_typed_blocks_as_it_is_read() -> None:
    assert json.loads(V1.read_text())["schema_version"] == 1
    run = read_results(V1)
    assert run.schema_version == SCHEMA_VERSION == 2
    assert (run.backend.backend, run.backend.vocab_size, run.backend.gpus) == ("transformers", 691, [])
    assert "vocab_size" not in run.backend.extra and run.backend.extra["torch"]
    assert (run.settings.limit, run.settings.seed, run.summary.samples) == (2, 0, 4)
    assert run.environment.python and run.summary.wall_s


def test_a_version_1_file_compares_and_reports_beside_a_version_2_file(tmp_path: Path) -> None:
    again = write_results(read_results(V1).model_copy(update={"run_id": "again"}), tmp_path / "v2.json")
    assert json.loads(again.read_text())["schema_version"] == 2
    compared = api.compare([V1, again], baseline=V1)
    assert len(compared.comparison.labels) == 2 and api.gate(compared) == []
    for fmt in ("markdown", "csv", "json"):
        assert "gsm8k" in api.render(fmt, compared)
    assert "<html" in api.report([V1, again], tmp_path / "report.html").read_text()
    buffer = io.StringIO()
    print_run_summary(read_results(V1), Console(file=buffer, width=120))
    assert "math on tiny-qwen2 (transformers)" in buffer.getvalue()
