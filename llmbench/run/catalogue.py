"""What llmbench knows (suites, model aliases, plugins by kind) and the check of users' YAML files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llmbench.errors import ConfigError, UserInputError


@dataclass
class Catalogue:
    suites: list[tuple[str, list[str], str | None]]  # name, task names, why it does not load (or None)
    models: list[tuple[str, str, str]]  # alias, model, backend
    backends: list[str]
    scorers: list[str]
    datasets: list[str]


@dataclass
class Checked:
    """A YAML file that validated: a suite (`detail` counts its tasks) or a model config."""

    kind: str  # "suite" | "model" | "study"
    name: str
    detail: str
    path: Path

    def __str__(self) -> str:
        return f"ok  {self.kind} {self.name}: {self.detail}  ({self.path})"


def catalogue() -> Catalogue:
    from llmbench.backends import backends
    from llmbench.config.models import MODELS_DIR, list_models, load_model_config
    from llmbench.config.suite import list_suites, load_suite
    from llmbench.data import generators
    from llmbench.scoring import scorers

    suites: list[tuple[str, list[str], str | None]] = []
    for name in list_suites():
        try:
            suites.append((name, [t.name for t in load_suite(name).config.tasks], None))
        except UserInputError as exc:
            suites.append((name, [], str(exc)))
    models = []
    for name in list_models():
        cfg = load_model_config(MODELS_DIR / f"{name}.yaml")
        models.append((name, cfg.model, cfg.backend))
    return Catalogue(suites, models, backends.names(), scorers.names(), generators.names())


def validate(files: Sequence[Path]) -> list[Checked]:
    """Validate suites and model configs; raises ConfigError (exit 2) at the first bad one."""
    from llmbench.config.models import load_model_config
    from llmbench.config.suite import load_suite
    from llmbench.config.yamlio import load_yaml
    from llmbench.run.prepare import check_suite

    checked = []
    for path in files:
        data, _ = load_yaml(path)
        if isinstance(data, dict) and "tasks" in data:
            suite = load_suite(path)
            check_suite(suite, list(suite.config.tasks))  # scorers known, data files there
            checked.append(Checked("suite", suite.name, f"{len(suite.config.tasks)} task(s)", path))
        elif isinstance(data, dict) and "models" in data and "suites" in data:
            from llmbench.study.plan import build_plan
            from llmbench.study.spec import load_study

            plan = build_plan(load_study(path))  # resolves every model and suite it names
            detail = f"{len(plan.cells)} cell(s), {len(plan.jobs)} job(s)"
            checked.append(Checked("study", plan.study.name, detail, path))
        elif isinstance(data, dict) and "model" in data:
            cfg = load_model_config(path)
            checked.append(Checked("model", cfg.name, f"{cfg.model} via {cfg.backend}", path))
        else:
            raise ConfigError(
                f"{path}:1: neither a suite (needs 'tasks'), a model config (needs 'model') nor a study (needs 'models' and 'suites')"
            )
    return checked
