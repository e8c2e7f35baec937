"""Export to Weights & Biases, offline: each results file becomes an offline run a user uploads later
with `wandb sync`. The W&B run id is derived from the llmbench run id, so exporting a file twice finds
its offline run and adds nothing, and a synced run keeps its identity on the server.

wandb.init creates the run folder before the summary and the artifact are logged, so a folder alone
does not mean the export finished: a marker file written once `finish()` returned does. A folder
without it (the export failed or was interrupted) is removed and the run exported again.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmbench.errors import LLMBenchError
from llmbench.export import flatten
from llmbench.export.base import Exported, ExportItem, ExportOptions, require
from llmbench.results.schema import RunResult

DEFAULT_PROJECT = "llmbench"
MAX_TAG = 64  # W&B refuses longer tags
MARKER = "llmbench-export.json"  # in the offline run folder: the export finished
# The exporting host is not the benchmark's host: its machine facts and metrics would mislead.
_QUIET = {
    "silent": True,
    "console": "off",
    "disable_git": True,
    "disable_code": True,
    "save_code": False,
    "x_disable_stats": True,
    "x_disable_meta": True,
    "x_disable_machine_info": True,
    "x_save_requirements": False,
}


class WandbExporter:
    """One offline W&B run per results file, under `<directory>/wandb/` (the current folder by default)."""

    def __init__(self, options: ExportOptions) -> None:
        self.wandb: Any = require("wandb", "wandb", purpose="--to wandb")
        self.root = options.directory or Path(".")
        self.project = options.experiment or DEFAULT_PROJECT

    def export(self, items: Sequence[ExportItem]) -> list[Exported]:
        self.root.mkdir(parents=True, exist_ok=True)
        return [self._export_one(item) for item in items]

    def _export_one(self, item: ExportItem) -> Exported:
        run = item.run
        run_id = wandb_id(run)
        done = self.existing(run_id)
        if done is not None:
            return Exported(item.path, run.run_id, str(done), created=False)
        wandb = self.wandb
        fields = getattr(wandb.Settings, "model_fields", {})
        settings = wandb.Settings(mode="offline", **{k: v for k, v in _QUIET.items() if k in fields})
        try:
            live = wandb.init(
                project=self.project,
                dir=str(self.root),
                id=run_id,
                name=flatten.run_title(run),
                notes=f"llmbench run {run.run_id}, started {run.created_at}",
                group=item.study.name if item.study is not None else None,
                job_type=run.suite_name,
                tags=run_tags(item),
                config=flatten.params(run) | flatten.tags(item),
                settings=settings,
            )
        except Exception as exc:  # wandb raises its own types (UsageError, CommError); one line for all
            raise LLMBenchError(f"wandb could not start an offline run: {exc}") from None
        finished = False
        try:
            live.summary.update(flatten.metrics(run))
            live.log_artifact(self._artifact(item, run_id))
            where = Path(live.dir).parent  # the offline run folder `wandb sync` uploads
            finished = True
        finally:
            live.finish(exit_code=0 if finished else 1)
        marker = {"llmbench_run_id": run.run_id, "results_sha256": flatten.file_sha256(item.path)}
        (where / MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        return Exported(item.path, run.run_id, str(where))

    def _artifact(self, item: ExportItem, run_id: str) -> Any:
        artifact = self.wandb.Artifact(f"llmbench-{run_id}", type="llmbench-results")
        artifact.add_file(str(item.path), name=f"results/{item.path.name}")
        # W&B copies added files into its staging area, so the temporary report may go once added
        with tempfile.TemporaryDirectory(prefix="llmbench-export-") as tmp:
            report = Path(tmp) / "report.html"
            report.write_text(item.report_html(), encoding="utf-8")
            artifact.add_file(str(report), name="report/report.html")
        return artifact

    def existing(self, run_id: str) -> Path | None:
        """The run folder a finished export wrote for this W&B run id; folders of this id that an export
        left half-written (no marker) are removed, so that neither they nor a second copy get synced."""
        found = sorted((self.root / "wandb").glob(f"*run-*-{run_id}"))
        done = [folder for folder in found if (folder / MARKER).is_file()]
        for folder in found:
            if folder not in done:
                shutil.rmtree(folder, ignore_errors=True)
        return done[-1] if done else None


def wandb_id(run: RunResult) -> str:
    """A W&B run id for a llmbench run: readable, within W&B's characters and length, and unique (the hash
    of the run id and start tells apart runs given the same name, and names that read alike once cleaned)."""
    return f"{re.sub(r'[^A-Za-z0-9_-]', '-', run.run_id)[:48]}-{flatten.identity_hash(run)}"


def run_tags(item: ExportItem) -> list[str]:
    run = item.run
    tags = ["llmbench", f"suite:{run.suite_name}", f"backend:{run.backend.backend}"]
    if item.study is not None:
        tags += [f"study:{item.study.name}", f"cell:{item.study.cell}"]
    if run.settings.variant is not None:
        tags.append(f"variant:{run.settings.variant}")
    return [t[:MAX_TAG] for t in tags]
