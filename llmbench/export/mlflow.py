"""Export to MLflow: one run per results file, found again by its llmbench run id (so exporting twice adds nothing).

The run starts when the results file says it did; its parameters, metrics and tags come from
`llmbench.export.flatten`, fitted to MLflow's limits; the results file and its HTML report are artifacts.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from llmbench.errors import LLMBenchError, UserInputError
from llmbench.export import flatten
from llmbench.export.base import Exported, ExportItem, ExportOptions, require
from llmbench.results.schema import RunResult

DEFAULT_EXPERIMENT = "llmbench"
RUN_ID_TAG = "llmbench.run_id"
CREATED_TAG = "llmbench.created_at"
# MLflow's own limits (mlflow.utils.validation), kept here so that a change there is one line here.
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
CONNECT_TIMEOUT_S = 10.0
PER_BATCH = 100  # parameters and tags per log_batch request (metrics: 1000)
_NOT_IN_KEY = re.compile(r"[^\w./\- :]")
_TRUNCATED = " …[truncated]"


class MlflowExporter:
    """One MLflow run per results file, in `experiment` on the tracking server at `destination`."""

    def __init__(self, options: ExportOptions) -> None:
        require("mlflow", "mlflow", purpose="--to mlflow")
        uri = options.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise UserInputError("--to mlflow needs --tracking-uri URI (or MLFLOW_TRACKING_URI)")
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        self.experiment = options.experiment or DEFAULT_EXPERIMENT

    def export(self, items: Sequence[ExportItem]) -> list[Exported]:
        from mlflow.exceptions import MlflowException

        self._check_reachable()
        experiment_id = self._experiment_id()
        done = []
        for item in items:
            try:
                done.append(self._export_one(experiment_id, item))
            except (
                MlflowException
            ) as exc:  # files exported before stay; a run left unfinished is replaced next time
                raise LLMBenchError(f"{item.path}: MLflow at {self.uri}: {_first_line(exc)}") from None
        return done

    def _check_reachable(self) -> None:
        """An HTTP server that does not answer fails in seconds (MLflow's client would retry for minutes)."""
        if not self.uri.startswith(("http://", "https://")):
            return
        import httpx

        try:
            httpx.get(f"{self.uri.rstrip('/')}/health", timeout=CONNECT_TIMEOUT_S)
        except httpx.HTTPError as exc:  # any answer, even 401 or 404, means a server is there
            raise UserInputError(
                f"MLflow at {self.uri} does not answer ({type(exc).__name__})",
                hint="is the tracking server running, and is --tracking-uri its address?",
            ) from None

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None:
                return str(found.experiment_id)
            return str(self.client.create_experiment(self.experiment))
        except MlflowException as exc:
            raise UserInputError(f"MLflow at {self.uri}: {_first_line(exc)}") from None

    def _export_one(self, experiment_id: str, item: ExportItem) -> Exported:
        run = item.run
        existing = self._find(experiment_id, run)
        if existing is not None and existing.info.status == "FINISHED":
            return Exported(item.path, run.run_id, self._location(experiment_id, existing), created=False)
        if existing is not None:  # an export cut short: its parameters may differ, so it is replaced
            self.client.delete_run(existing.info.run_id)
        start_ms = _epoch_ms(run.created_at)
        created = self.client.create_run(
            experiment_id,
            start_time=start_ms,
            tags={k: _fit(v, MAX_TAG_VALUE) for k, v in flatten.tags(item).items()},
            run_name=flatten.run_title(run),
        )
        run_id = created.info.run_id
        self._log(run_id, item, start_ms)
        with tempfile.TemporaryDirectory(prefix="llmbench-export-") as tmp:
            report = Path(tmp) / "report.html"
            report.write_text(item.report_html(), encoding="utf-8")
            self.client.log_artifact(run_id, str(item.path), artifact_path="results")
            self.client.log_artifact(run_id, str(report), artifact_path="report")
        end_ms = start_ms + round(1000 * run.summary.wall_s) if run.summary.wall_s is not None else None
        with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints a "view run" line; ours says it once
            self.client.set_terminated(run_id, "FINISHED", end_time=end_ms)
        return Exported(item.path, run.run_id, self._location(experiment_id, created))

    def _find(self, experiment_id: str, run: RunResult) -> Any:
        """The MLflow run an earlier export made of this run: same run id and same start."""
        wanted = (
            f"tags.`{RUN_ID_TAG}` = {_quote(run.run_id)} and tags.`{CREATED_TAG}` = {_quote(run.created_at)}"
        )
        found = self.client.search_runs([experiment_id], filter_string=wanted, max_results=1)
        return found[0] if found else None

    def _log(self, run_id: str, item: ExportItem, timestamp_ms: int) -> None:
        from mlflow.entities import Metric, Param

        params = [Param(_key(k), _fit(v, MAX_PARAM_VALUE)) for k, v in flatten.params(item.run).items()]
        metrics = [Metric(_key(k), v, timestamp_ms, 0) for k, v in flatten.metrics(item.run).items()]
        params = list({p.key: p for p in params}.values())  # two keys made alike by _key: the last wins
        metrics = list({m.key: m for m in metrics}.values())
        for i in range(0, len(params), PER_BATCH):
            self.client.log_batch(run_id, params=params[i : i + PER_BATCH])
        for i in range(0, len(metrics), 10 * PER_BATCH):
            self.client.log_batch(run_id, metrics=metrics[i : i + 10 * PER_BATCH])

    def _location(self, experiment_id: str, run: Any) -> str:
        base = self.uri.rstrip("/")
        if base.startswith(("http://", "https://")):
            return f"{base}/#/experiments/{experiment_id}/runs/{run.info.run_id}"
        return f"{base} run {run.info.run_id}"


def _key(name: str) -> str:
    """A key MLflow accepts: letters, digits and `_ - . / : space`, at most 250 characters."""
    return _NOT_IN_KEY.sub("_", name)[:MAX_KEY]


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _fit(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - len(_TRUNCATED)] + _TRUNCATED


def _epoch_ms(iso: str) -> int:
    try:
        return round(datetime.fromisoformat(iso).timestamp() * 1000)
    except ValueError:
        raise UserInputError(f"created_at '{iso}' is not an ISO date") from None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
