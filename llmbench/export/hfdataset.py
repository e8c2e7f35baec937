"""Export the samples as a Hugging Face dataset folder: Parquet files and a dataset card.

A config per suite, a split per results file (named from its run id and a hash of its id and start):
    DIR/README.md                           card: YAML front matter (configs, features, splits) + a table
    DIR/data/<suite>/<split>.parquet        one row per sample, with the run's identity in the file metadata
`datasets.load_dataset(DIR, "<suite>")` reads it as it is, and `huggingface-cli upload` pushes it to the Hub.
The card is rebuilt from every Parquet file in the folder, so exporting more files later adds their splits.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmbench.errors import UserInputError
from llmbench.export import flatten
from llmbench.export.base import Exported, ExportItem, ExportOptions, require
from llmbench.export.hfcard import FIELDS, render_card
from llmbench.results.io import write_atomic as _write_text
from llmbench.results.schema import RunResult, SampleRecord

META_KEY = b"llmbench"


class HfDatasetExporter:
    """The samples of every results file as Parquet splits under `directory`, with a card."""

    def __init__(self, options: ExportOptions) -> None:
        self.pa: Any = require("pyarrow", "hf-dataset", purpose="--to hf-dataset")
        self.pq: Any = require("pyarrow.parquet", "hf-dataset", purpose="--to hf-dataset")
        if options.directory is None:
            raise UserInputError("--to hf-dataset needs --output DIR (the dataset folder)")
        self.root = options.directory

    def export(self, items: Sequence[ExportItem]) -> list[Exported]:
        done = [self._export_one(item) for item in items]
        splits = [self._split_facts(p) for p in sorted((self.root / "data").glob("*/*.parquet"))]
        _write_text(self.root / "README.md", render_card([s for s in splits if s is not None]))
        return done

    def _export_one(self, item: ExportItem) -> Exported:
        run = item.run
        path = self.root / "data" / config_name(run.suite_name) / f"{split_name(run)}.parquet"
        facts: dict[str, Any] = {
            "run_id": run.run_id,
            "model": run.model_name,
            "backend": run.backend.backend,
            "suite": run.suite_name,
            "created_at": run.created_at,
            "suite_score": run.suite_score.value if run.suite_score is not None else None,
            "results_file": item.path.name,
            "results_sha256": flatten.file_sha256(item.path),
            "study": item.study.name if item.study is not None else None,
            "study_cell": item.study.cell if item.study is not None else None,
        }
        before = self._split_facts(path) if path.exists() else None
        if before is not None and before.get("results_sha256") == facts["results_sha256"]:
            return Exported(item.path, run.run_id, str(path), created=False)
        rows = [
            _row(run.run_id, run.model_name, run.backend.backend, run.suite_name, s) for s in item.samples()
        ]
        table = self.pa.Table.from_pylist(rows, schema=self._schema())
        facts["num_bytes"] = table.nbytes  # the size `datasets` records for a split (in memory, not on disk)
        table = table.replace_schema_metadata({META_KEY: json.dumps(facts).encode()})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            self.pq.write_table(table, tmp)
            os.replace(tmp, path)  # a reader never sees half a file
        finally:
            tmp.unlink(missing_ok=True)
        return Exported(item.path, run.run_id, str(path))

    def _schema(self) -> Any:
        pa = self.pa
        types = {
            "string": pa.string(),
            "int64": pa.int64(),
            "float64": pa.float64(),
            "strings": pa.list_(pa.string()),
            "messages": pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
        }
        return pa.schema([(name, types[kind]) for name, kind in FIELDS])

    def _split_facts(self, path: Path) -> dict[str, Any] | None:
        """The run a Parquet file holds (from its metadata), with its config, split and row count."""
        try:
            meta = self.pq.read_metadata(path)
            facts = json.loads((meta.metadata or {}).get(META_KEY, b"null"))
        except (OSError, ValueError, self.pa.ArrowException):
            return None  # not one of ours: left as it is and out of the card
        if not isinstance(facts, dict):
            return None
        return facts | {
            "config": path.parent.name,
            "split": path.stem,
            "path": path.relative_to(self.root).as_posix(),
            "rows": meta.num_rows,
        }


def config_name(suite: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", suite).strip("_") or "suite"


def split_name(run: RunResult) -> str:
    """A split name the Hub accepts (`\\w+`): the run id with other characters as `_`, and a hash of the run
    id and start, since a run id is a file name where the user chose it (two runs may share one)."""
    name = re.sub(r"\W+", "_", run.run_id).strip("_")[:80]
    return f"{name}_{flatten.identity_hash(run)}"


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _row(run_id: str, model: str, backend: str, suite: str, s: SampleRecord) -> dict[str, Any]:
    chat = isinstance(s.prompt, list)
    return {
        "run_id": run_id,
        "model": model,
        "backend": backend,
        "suite": suite,
        "task": s.task,
        "id": s.id,
        "sample_index": s.sample_index,
        "prompt": None if chat else s.prompt,
        "messages": [{"role": m.get("role"), "content": m.get("content")} for m in s.prompt]
        if isinstance(s.prompt, list)
        else None,
        "output": s.output,
        "reference": _json(s.reference),
        "score": s.score,
        "status": s.status,
        "metrics": _json(s.metrics),
        "details": _json(s.details),
        "metadata": _json(s.metadata),
        "tokens_in": s.tokens_in,
        "tokens_out": s.tokens_out,
        "reasoning_tokens": s.reasoning_tokens,
        "finish_reason": s.finish_reason,
        "ttft_ms": s.ttft_ms,
        "latency_ms": s.latency_ms,
        "tpot_ms": s.tpot_ms,
        "prompt_hash": s.prompt_hash,
        "output_hash": s.output_hash,
        "batch_size": s.batch_size,
        "error": s.error,
        "warnings": list(s.warnings),
    }
