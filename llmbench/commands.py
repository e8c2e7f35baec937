"""What each CLI command does, as plain functions the CLI calls (and Python users can too)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from llmbench.errors import ConfigError, UserInputError

if TYPE_CHECKING:
    from llmbench.analysis.compare import Comparison
    from llmbench.results import RunResult


def validate(files: Sequence[Path]) -> Iterator[str]:
    """Validate suites and model configs; raises ConfigError (exit 2) at the first bad one."""
    from llmbench.config import load_model_config, load_suite
    from llmbench.yamlio import load_yaml

    for path in files:
        data, _ = load_yaml(path)
        if isinstance(data, dict) and "tasks" in data:
            suite = load_suite(path)
            from llmbench.scoring.base import scorers

            for t in suite.config.tasks:
                if t.scorer is not None:
                    scorers.get(t.scorer.name)
            yield f"ok  suite {suite.name}: {len(suite.config.tasks)} task(s)  ({path})"
        elif isinstance(data, dict) and "model" in data:
            cfg = load_model_config(path)
            yield f"ok  model {cfg.name}: {cfg.model} via {cfg.backend}  ({path})"
        else:
            raise ConfigError(f"{path}:1: neither a suite (needs 'tasks') nor a model config (needs 'model')")


def print_catalogue(console: Console) -> None:
    from llmbench.backends import backends
    from llmbench.config import MODELS_DIR, list_models, list_suites, load_model_config, load_suite
    from llmbench.data import generators
    from llmbench.scoring import scorers

    suites = Table(title="suites")
    suites.add_column("suite")
    suites.add_column("tasks")
    for name in list_suites():
        try:
            s = load_suite(name)
            suites.add_row(name, ", ".join(t.name for t in s.config.tasks))
        except UserInputError as exc:
            suites.add_row(name, f"[red]invalid: {exc}")
    console.print(suites)
    models = Table(title="models (configs/models)")
    for col in ("alias", "model", "backend"):
        models.add_column(col)
    for name in list_models():
        cfg = load_model_config(MODELS_DIR / f"{name}.yaml")
        models.add_row(name, cfg.model, cfg.backend)
    console.print(models)
    console.print(f"backends: {', '.join(backends.names())}")
    console.print(f"scorers: {', '.join(scorers.names())}")
    console.print(f"built-in datasets: {', '.join(generators.names())}")


def compare(
    files: Sequence[Path],
    *,
    fmt: str,
    baseline: Path | None,
    fail_on_regression: bool,
    gate_config: Path | None,
    output: Path | None,
    console: Console,
    keep_repeats: bool = False,
    messages: Console | None = None,
) -> int:
    """Render the comparison; returns the exit code (1 when the gate finds a regression).

    Runs that repeat each other (another seed) become one column unless `keep_repeats`; the baseline is
    never merged. The gate's verdict goes to `messages` (standard error by default), so that the rendered
    comparison on standard output stays valid JSON, CSV or Markdown.
    """
    from llmbench.analysis.compare import build_comparison, load_runs
    from llmbench.analysis.repeats import merge_repeats

    formats = ("table", "markdown", "csv", "json", "html")
    if fmt not in formats:
        raise UserInputError(f"unknown format '{fmt}'", hint=f"use one of {', '.join(formats)}")
    if fail_on_regression and baseline is None:
        raise UserInputError("--fail-on-regression needs --baseline BASE.json")
    runs = load_runs([f for f in files if baseline is None or f.resolve() != baseline.resolve()])
    if not keep_repeats:
        runs = merge_repeats(runs)
    base = load_runs([baseline])[0] if baseline else None
    comparison = build_comparison(([base] if base else []) + runs, baseline=base)
    text = _render(fmt, comparison, ([base] if base else []) + runs, console if output is None else None)
    if text is not None:
        if output is not None:
            output.write_text(text, encoding="utf-8")
        else:
            console.print(text, highlight=False, markup=False, soft_wrap=True)
    if not fail_on_regression or base is None:
        return 0
    from llmbench.analysis.gate import check_regressions, load_thresholds

    messages = messages or Console(stderr=True, soft_wrap=True)
    thresholds = load_thresholds(gate_config)
    failed = False
    for cand in runs:
        for reg in check_regressions(base, cand, thresholds):
            messages.print(f"REGRESSION {cand.model_name}: {reg}", highlight=False, markup=False)
            failed = True
    if not failed:
        messages.print("gate: no significant regression against the baseline", highlight=False)
    return 1 if failed else 0


def _render(fmt: str, comparison: Comparison, runs: list[RunResult], console: Console | None) -> str | None:
    from llmbench import report

    if fmt == "table" and console is not None:
        report.print_comparison(comparison, console)
        return None
    if fmt == "html":
        return report.render_html(runs, comparison)
    renderer = {
        "table": report.render_markdown,
        "markdown": report.render_markdown,
        "csv": report.render_csv,
        "json": report.render_json,
    }[fmt]
    return renderer(comparison)


def html_report(files: Sequence[Path], output: Path, *, keep_repeats: bool = False) -> Path:
    """Write the HTML report; repeats of one run (another seed) are one column unless `keep_repeats`."""
    from llmbench import report
    from llmbench.analysis.compare import build_comparison, load_runs
    from llmbench.analysis.repeats import merge_repeats

    runs = load_runs(files) if keep_repeats else merge_repeats(load_runs(files))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report.render_html(runs, build_comparison(runs)), encoding="utf-8")
    return output


def history(directory: Path, *, metric: str | None, plot: Path | None, console: Console) -> None:
    from llmbench.analysis.history import print_history

    print_history(directory, metric=metric, plot=plot, console=console)


def score_file(
    suite: Path, samples: Path, *, tasks: Sequence[str], output: Path | None, console: Console
) -> Path:
    from llmbench.config import load_suite
    from llmbench.report.summary import print_run_summary
    from llmbench.results import write_results
    from llmbench.run.offline import score_samples_file

    result = score_samples_file(load_suite(suite), samples, tasks)
    print_run_summary(result, console)
    path = output or Path("results") / f"{result.run_id}.json"
    return write_results(result, path)


def score_lines(scorer: str, samples: Path, *, console: Console) -> None:
    """One line per verdict, for any scorer: id, status, value, its metrics and its details, each shortened."""
    import json

    from llmbench.run.offline import score_lines as run_lines

    def brief(value: object, limit: int = 80) -> str:
        text = json.dumps(value, ensure_ascii=False, default=str)
        return text if len(text) <= limit else text[: limit - 3] + "..."

    for sid, score in run_lines(scorer, samples):
        metrics = " ".join(f"{k}={v:g}" for k, v in score.metrics.items())
        details = "; ".join(
            f"{k}={brief(v)}" for k, v in score.details.items() if v not in (None, "", [], {})
        )
        line = "\t".join(part for part in (sid, score.status, f"{score.value:.3f}", metrics, details) if part)
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def run_variants(
    suite: Path,
    variants: Sequence[tuple[str, object]],
    *,
    limit: int | None,
    tasks: Sequence[str],
    seed: int,
    results_dir: Path,
    console: Console,
) -> list[Path]:
    """Run one suite once per (label, model config) and return the results files (parity, determinism)."""
    from llmbench.config import ModelConfig, load_suite
    from llmbench.report.progress import RichProgress
    from llmbench.run.pipeline import RunOptions, run_suite

    loaded = load_suite(suite)
    paths = []
    for label, model in variants:
        assert isinstance(model, ModelConfig)
        out = results_dir / f"{loaded.name}-{model.name}-{label}.json"
        console.print(f"[bold]{label}[/]: running {loaded.name} on {model.name} via {model.backend}")
        with RichProgress(console) as progress:
            _, path = run_suite(
                loaded, model, RunOptions(limit=limit, tasks=tasks, seed=seed, output=out), progress
            )
        paths.append(path)
    return paths


def parity(files: Sequence[Path], console: Console) -> None:
    from llmbench.analysis.compare import load_runs
    from llmbench.analysis.parity import parity as compare_pair
    from llmbench.report.parity import print_parity

    runs = load_runs(files)
    if len(runs) != 2:
        raise UserInputError(f"parity compares exactly two runs, got {len(runs)}")
    print_parity(compare_pair(runs[0], runs[1]), console)


def determinism(files: Sequence[Path], label: str, console: Console) -> None:
    from llmbench.analysis.compare import load_runs
    from llmbench.analysis.parity import flip_rate
    from llmbench.report.parity import print_flip_rate

    print_flip_rate(flip_rate(load_runs(files)), label, console)
