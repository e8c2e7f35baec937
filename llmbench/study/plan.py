"""A study's plan: every (model, suite, seed, repeat) cell, what it needs, and what is already done.

Cells of one model that measure quality form one job (the model is loaded once for all of them); each
performance cell is a job of its own that has the host to itself. Cell names and results paths depend
only on the study, so a rerun finds what an earlier run finished and resumes what it left unfinished.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from llmbench.backends.base import backends
from llmbench.config.models import ModelConfig, resolve_model
from llmbench.config.suite import Suite, load_suite
from llmbench.config.yamlio import node_line_of
from llmbench.data.readers import jsonl_lines
from llmbench.errors import ConfigError, LLMBenchError, validation_line
from llmbench.run.journal import Journal
from llmbench.run.options import slug
from llmbench.study.spec import ModelVariant, Study, SuiteEntry

CellState = Literal["done", "partial", "pending", "stale", "running", "failed"]


@dataclass
class Cell:
    """One (model, suite, seed, repeat): one results file."""

    id: str
    model: ModelConfig
    suite: Suite
    entry: SuiteEntry
    seed: int
    repeat: int
    kind: Literal["quality", "perf"]
    gpus: int
    output: Path
    state: CellState = "pending"
    samples_done: int = 0

    @property
    def journal(self) -> Path:
        return Journal.path_for(self.output)

    @property
    def n_tasks(self) -> int:
        return len([t for t in self.suite.config.tasks if not self.entry.tasks or t.name in self.entry.tasks])


@dataclass
class Job:
    """Cells that share one model load, placed on one GPU set; `exclusive`: the host to itself."""

    id: str
    model: ModelConfig
    cells: list[Cell]
    gpus: int
    exclusive: bool

    @property
    def todo(self) -> list[Cell]:
        return [c for c in self.cells if c.state != "done"]


@dataclass
class Plan:
    study: Study
    results_dir: Path
    cells: list[Cell] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)

    def cell(self, cell_id: str) -> Cell:
        return next(c for c in self.cells if c.id == cell_id)


def gpus_needed(model: ModelConfig) -> int:
    """GPUs a model's engine spans on one host: tensor x pipeline (x data) parallel; none for remote APIs."""
    cls = backends.get(model.backend)
    if not getattr(cls, "uses_gpu", True) or model.api.base_url or model.device == "cpu":
        return 0
    return model.tensor_parallel_size * model.pipeline_parallel_size * model.data_parallel_size


def build_plan(study: Study, results_dir: Path | None = None) -> Plan:
    plan = Plan(study, study.results_dir(results_dir))
    models = _models(study)
    suites = [(entry, _suite(study, i, entry)) for i, entry in enumerate(study.config.suites)]
    for model in models:
        need = gpus_needed(model)
        for entry, suite in suites:
            perf = any(
                t.perf is not None for t in suite.config.tasks if not entry.tasks or t.name in entry.tasks
            )
            for seed in study.config.seeds:
                for r in range(1, entry.repeat + 1):
                    cid = f"{slug(suite.name)}-{slug(model.name)}-seed{seed}" + (
                        f"-r{r}" if entry.repeat > 1 else ""
                    )
                    cell = Cell(
                        cid, model, suite, entry, seed, r, "perf" if perf else "quality", need,
                        plan.results_dir / f"{cid}.json",
                    )  # fmt: skip
                    cell.state, cell.samples_done = cell_state(cell)
                    plan.cells.append(cell)
    plan.jobs = make_jobs(plan.cells)
    return plan


def make_jobs(cells: list[Cell]) -> list[Job]:
    """Quality cells of a model: one job; each performance cell: a job of its own, after all quality jobs."""
    quality: dict[str, list[Cell]] = {}
    perf: list[Job] = []
    for c in cells:
        if c.kind == "quality":
            quality.setdefault(c.model.name, []).append(c)
        else:
            # a remote API's figures are the server's: it does not need this host to itself
            perf.append(Job(c.id, c.model, [c], c.gpus, exclusive=c.gpus > 0))
    jobs = [
        Job(f"quality-{name}", cs[0].model, cs, cs[0].gpus, exclusive=False) for name, cs in quality.items()
    ]
    return jobs + perf


def run_settings(cell: Cell) -> dict[str, object]:
    """What `run_suite` records as the run's settings (and checks on resume)."""
    return {
        "limit": cell.entry.limit,
        "tasks": list(cell.entry.tasks),
        "seed": cell.seed,
        "backend": cell.model.backend,
    }


def cell_state(cell: Cell) -> tuple[CellState, int]:
    """done (its results file matches the study), partial (a matching journal), stale (another config), or pending."""
    expected_model = cell.model.model_dump(mode="json")
    if cell.output.exists():
        try:
            data = json.loads(cell.output.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return "stale", 0
        same = (
            data.get("suite_hash") == cell.suite.content_hash
            and data.get("model") == expected_model
            and data.get("settings", {}).get("seed") == cell.seed
            and data.get("settings", {}).get("limit") == cell.entry.limit
            and data.get("settings", {}).get("tasks") == list(cell.entry.tasks)
        )
        return ("done", len(data.get("samples", []))) if same else ("stale", 0)
    if cell.journal.exists():
        header, n = _journal_header(cell.journal)
        if header is None:
            return "pending", 0
        same = (
            header.get("suite_hash") == cell.suite.content_hash
            and header.get("model") == expected_model
            and header.get("settings") == run_settings(cell)
        )
        return ("partial", n) if same else ("stale", 0)
    return "pending", 0


def _journal_header(path: Path) -> tuple[dict[str, object] | None, int]:
    """A journal's header and how many samples it holds, read without validating them; none where unreadable."""
    header, samples = None, set()
    try:
        for line in jsonl_lines(path, tolerate_torn_last_line=True, any_line_length=True):
            entry = line.value
            if isinstance(entry, dict) and "header" in entry and header is None:
                header = entry["header"]
            elif isinstance(entry, dict) and "request_id" in entry:
                samples.add(entry["request_id"])
    except (OSError, LLMBenchError):
        return None, 0
    return header, len(samples)


def _where(study: Study, *loc: int | str) -> str:
    line, _ = node_line_of(study.node, loc)
    return f"{study.path}:{line}" if line else str(study.path)


def _models(study: Study) -> list[ModelConfig]:
    models: list[ModelConfig] = []
    for i, variant in enumerate(study.config.models):
        try:
            models.append(resolve_variant(variant))
        except LLMBenchError as exc:
            raise ConfigError(f"{_where(study, 'models', i)}: {exc.message}", hint=exc.hint) from None
    names = [m.name for m in models]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(
            f"{_where(study, 'models')}: two models are named '{dup[0]}'",
            hint="give each variant its own `name`",
        )
    return models


def resolve_variant(variant: ModelVariant) -> ModelConfig:
    """The model config of a study entry: the base alias with the variant's changes, validated."""
    from pydantic import ValidationError

    base = resolve_model(variant.base, backend=variant.backend)
    backends.get(base.backend)  # an unknown backend fails here, naming the entry
    if not variant.set and variant.name is None:
        name = base.name if variant.backend is None else f"{base.name}-{variant.backend}"
        return base.model_copy(update={"name": name})
    if variant.set and variant.name is None:
        raise ConfigError(
            f"the variant of '{variant.base}' changes {', '.join(variant.set)}: give it a `name`"
        )
    try:
        return ModelConfig.model_validate(base.model_dump() | variant.set | {"name": variant.name})
    except ValidationError as exc:
        raise ConfigError(validation_line(exc, prefix="set.")) from None


def _suite(study: Study, i: int, entry: SuiteEntry) -> Suite:
    try:
        suite = load_suite(entry.suite)
    except LLMBenchError as exc:
        raise ConfigError(f"{_where(study, 'suites', i)}: {exc.message}", hint=exc.hint) from None
    names = {t.name for t in suite.config.tasks}
    unknown = [t for t in entry.tasks if t not in names]
    if unknown:
        raise ConfigError(
            f"{_where(study, 'suites', i)}: suite {suite.name} has no task '{unknown[0]}'",
            hint=f"tasks: {', '.join(sorted(names))}",
        )
    return suite
