"""The Python API: every CLI command as a function that returns data and prints nothing.

    from llmbench import api

    result, path = api.run("suites/math.yaml", "tiny-qwen2", api.RunOptions(limit=5))
    compared = api.compare([path, "results/other.json"])
    print(api.render("markdown", compared))

Errors are `llmbench.errors` exceptions (a one-line message and a hint); progress goes to a
`llmbench.run.progress_events.Progress` when one is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from llmbench.analysis.views import Compared, compare
from llmbench.errors import UserInputError
from llmbench.results.io import write_atomic
from llmbench.run.catalogue import Catalogue, Checked, catalogue, validate
from llmbench.run.gen_cache import cache_clear, cache_info, cache_prune  # the generation cache
from llmbench.run.options import RunOptions
from llmbench.run.progress_events import Progress
from llmbench.run.resume import finished_run  # a --resume of a finished run: its results, nothing to rerun
from llmbench.run.variants import Variant, repeat_group, variants
from llmbench.telemetry.doctor import doctor  # what this host offers a run; imports nothing heavy

if TYPE_CHECKING:
    from llmbench.analysis.gate import Regression
    from llmbench.analysis.history import History
    from llmbench.analysis.parity import FlipRate, ParityReport
    from llmbench.config.models import ModelConfig
    from llmbench.config.suite import Suite
    from llmbench.export import Exported
    from llmbench.results.schema import RunResult
    from llmbench.scoring.base import Score
    from llmbench.study.execute import StudyProgress
    from llmbench.study.runner import StudyOptions, StudyOutcome
    from llmbench.view.server import ViewServer

__all__ = [
    "Catalogue",
    "Checked",
    "Compared",
    "Finding",
    "Repeats",
    "RunOptions",
    "Variant",
    "cache_clear",
    "cache_info",
    "cache_prune",
    "catalogue",
    "compare",
    "doctor",
    "export",
    "finished_run",
    "gate",
    "gate_scope",
    "history",
    "model",
    "parity",
    "render",
    "repeat",
    "report",
    "run",
    "run_variants",
    "score",
    "score_lines",
    "study",
    "study_report",
    "suite",
    "validate",
    "variants",
    "view",
]

ProgressFor = Callable[["Variant"], AbstractContextManager[Progress]]


def model(
    spec: str | ModelConfig,
    *,
    backend: str | None = None,
    base_url: str | None = None,
    api_key_env: str | None = None,
    timeouts: Mapping[str, float | None] | None = None,
    threads: int | None = None,
) -> ModelConfig:
    """A model config from an alias, directory, YAML or Hugging Face id; `base_url`/`api_key_env` point it
    at an OpenAI-compatible server (the openai backend unless `backend` says otherwise), `timeouts` (seconds
    by `first_token`, `idle`, `request`; None keeps the config's) override the config's for API servers,
    `threads` pins torch's CPU threads. An unknown backend fails here, before anything loads."""
    from llmbench.backends import backends
    from llmbench.config.models import ModelConfig, resolve_model

    cfg = (
        spec if isinstance(spec, ModelConfig) else resolve_model(spec, backend=backend, served=bool(base_url))
    )
    overrides = {k: v for k, v in {"base_url": base_url, "api_key_env": api_key_env}.items() if v}
    if overrides:
        cfg = cfg.model_copy(
            update={"api": cfg.api.model_copy(update=overrides), "backend": backend or "openai"}
        )
    if update := {f"{k}_timeout_s": v for k, v in (timeouts or {}).items() if v is not None}:
        cfg = cfg.model_copy(update={"api": cfg.api.model_validate(cfg.api.model_dump() | update)})
    if threads is not None:
        cfg = cfg.model_copy(update={"threads": threads})
    backends.get(cfg.backend)
    return cfg


def suite(spec: str | Path | Suite) -> Suite:
    """A loaded suite from a path or a name under suites/."""
    from llmbench.config.suite import Suite, load_suite

    return spec if isinstance(spec, Suite) else load_suite(spec)


def run(
    suite_spec: str | Path | Suite | None,
    model_spec: str | ModelConfig | None,
    opts: RunOptions | None = None,
    progress: Progress | None = None,
) -> tuple[RunResult, Path]:
    """Run a suite on a model; returns the results and the file they were written to.

    With `opts.resume` and a named run (`output` or `run_id`), suite and model may be None: the run's
    journal says which they were, and its settings fill every option left unset.
    """
    from llmbench.run.options import check_options, resume_target
    from llmbench.run.pipeline import run_suite

    opts = opts or RunOptions()
    check_options(opts)
    if suite_spec is None or model_spec is None:
        if not opts.resume:
            raise UserInputError("give a SUITE and --model (or --resume --output PATH to continue a run)")
        suite_spec, model_spec = resume_target(opts)
    return run_suite(suite(suite_spec), model(model_spec), opts, progress)


def run_variants(
    suite_spec: str | Path | Suite,
    runs: Sequence[Variant],
    opts: RunOptions | None = None,
    progress_for: ProgressFor | None = None,
) -> list[Path]:
    """Run one suite once per variant, each to `<results_dir>/<suite>-<model>-<label>.json`."""
    from llmbench.run.pipeline import run_suite

    loaded = suite(suite_spec)
    opts = opts or RunOptions()
    paths = []
    for v in runs:
        out = opts.results_dir / f"{loaded.name}-{v.model.name}-{v.label}.json"
        with progress_for(v) if progress_for else nullcontext(Progress()) as progress:
            again = opts.fresh or out.exists()  # a finished variant of an earlier call runs anew
            paths.append(run_suite(loaded, v.model, replace(opts, output=out, fresh=again), progress)[1])
    return paths


@dataclass
class Repeats:
    paths: list[Path]
    flips: FlipRate
    label: str


def repeat(
    suite_spec: str | Path | Suite,
    cfg: ModelConfig,
    *,
    repeat: int = 1,
    batch_sizes: Sequence[int] = (),
    opts: RunOptions | None = None,
    progress_for: ProgressFor | None = None,
) -> Repeats:
    """Run the suite `repeat` times per batch size and measure how often greedy outputs and verdicts flip."""
    from llmbench.analysis.compare import load_runs
    from llmbench.analysis.parity import flip_rate

    label = f"{repeat} repeat(s) x batch sizes {','.join(map(str, batch_sizes)) or 'default'}"
    opts = replace(opts or RunOptions(), cache=False)  # each repeat generates anew: that is what it measures
    if repeat > 1:  # one group of repeats for compare to merge: their spread is the gate's noise band
        opts = replace(opts, repeat_of=repeat_group())
    paths = run_variants(
        suite_spec, variants(cfg, repeat=repeat, batch_sizes=batch_sizes), opts, progress_for
    )
    return Repeats(paths, flip_rate(load_runs(paths)), label)


def parity(
    sources: Sequence[Path],
    *,
    model_spec: str | None = None,
    backends: Sequence[str] = ("transformers", "vllm"),
    opts: RunOptions | None = None,
    progress_for: ProgressFor | None = None,
) -> ParityReport:
    """Two results files, or one suite that is first run on each of two backends: prompt-token match,
    verdict flips and paired significance."""
    from llmbench.analysis.compare import load_runs
    from llmbench.analysis.parity import parity as compare_pair

    files = list(sources)
    if len(files) == 1 and Path(files[0]).suffix in (".yaml", ".yml"):  # a suite, to be run first
        if model_spec is None:
            raise UserInputError("parity on a suite needs --model")
        if len(backends) != 2:
            raise UserInputError(f"--backends needs exactly two names, got '{','.join(backends)}'")
        pair = [Variant(name, model(model_spec, backend=name)) for name in backends]
        files = run_variants(files[0], pair, opts, progress_for)
    runs = load_runs(files)
    if len(runs) != 2:
        raise UserInputError(f"parity compares exactly two runs, got {len(runs)}")
    return compare_pair(runs[0], runs[1])


def render(fmt: str, compared: Compared) -> str:
    """The leaderboard or comparison as text in a registered format (table, markdown, csv, json, html)."""
    from llmbench.report.renderers import render as render_text
    from llmbench.report.renderers import renderers

    renderer = renderers.get(fmt)
    if compared.leaderboard is not None and renderer.board is not None:
        return renderer.board(compared.leaderboard, lambda: compared.comparison, compared.runs)
    return render_text(fmt, compared.comparison, compared.runs)


def gate_alpha(gate_config: Path | None = None) -> float:
    """The significance level of the gate's thresholds (configs/gates.yaml by default)."""
    from llmbench.analysis.gate import load_thresholds

    return load_thresholds(gate_config).alpha


@dataclass
class Finding:
    model_name: str
    regression: Regression

    def __str__(self) -> str:
        return f"REGRESSION {self.model_name}: {self.regression}"


def gate(
    compared: Compared,
    gate_config: Path | None = None,
    history: Path | None = None,
    notes: list[str] | None = None,
) -> list[Finding]:
    """Regressions of each candidate against the baseline and, given a `history` folder of good nights, their
    median (configs/gates.yaml); a candidate merged from repeats takes its noise bands from their spread
    where the nights give none. `notes` gets the family of tests and each decision with its noise band."""
    from llmbench.analysis.gate import gate_candidates, load_thresholds
    from llmbench.analysis.history import load_history

    t = load_thresholds(gate_config)
    reports = gate_candidates(
        compared.baseline, compared.candidates, t, load_history(history) if history else [], compared.repeats
    )
    notes = notes if notes is not None else []
    notes += [line for _, report in reports for line in report.lines(t.alpha)]
    return [Finding(c.model_name, reg) for c, report in reports for reg in report.regressions]


def gate_scope(compared: Compared) -> list[str]:
    """One line per candidate the gate checks only in part or not at all (another suite or backend)."""
    from llmbench.analysis.gate import ungated

    if compared.baseline is None:
        return []
    lines = []
    for cand in compared.candidates:
        why = ungated(compared.baseline, cand)
        if why is not None:
            lines.append(f"gate: {cand.model_name} · {cand.backend.backend} · {cand.suite_name} {why}")
    return lines


def report(
    files: Sequence[str | Path], output: str | Path, *, keep_repeats: bool = False, all_runs: bool = False
) -> Path:
    """Write one self-contained HTML report (leaderboard, plots, every table) for results files."""
    output = Path(output)
    compared = compare(files, keep_repeats=keep_repeats, all_runs=all_runs, view="leaderboard")
    return write_atomic(output, render("html", compared))  # a full disk is one line, no half-written report


def view(paths: Sequence[str | Path], *, port: int = 0, debug: bool = False) -> ViewServer:
    """A local web app over results files or folders, listening on 127.0.0.1 (port 0: a free one).

    Call `serve_until_interrupted()` (or `serve_forever()` in a thread) on what is returned; `.url` is its
    address. An internal error is one line on stderr; `debug` adds its traceback."""
    from llmbench.view.server import make_server

    return make_server([Path(p) for p in paths], port, debug=debug)


def export(
    files: Sequence[str | Path],
    to: str,
    *,
    tracking_uri: str | None = None,
    directory: str | Path | None = None,
    experiment: str | None = None,
) -> list[Exported]:
    """Export results files (folders stand for the files in them) with the exporter `to` (mlflow, wandb,
    hf-dataset); what each file became, `created=False` where an earlier export already holds it."""
    from llmbench.export import ExportOptions, exporters
    from llmbench.export.items import load_items

    options = ExportOptions(tracking_uri, Path(directory) if directory is not None else None, experiment)
    exporter = exporters.get(to)(options)  # a missing package or destination fails before any file is read
    items = load_items([Path(f) for f in files], lambda p: render("html", compare([p], view="leaderboard")))
    return exporter.export(items)


def history(
    directory: str | Path,
    *,
    metric: str | None = None,
    plot: str | Path | None = None,
    gate_config: Path | None = None,
    html: str | Path | None = None,
) -> History:
    """A metric's trend over a folder of runs, and each gated figure's trend with the noise band of the last
    nights (thresholds and window of `gate_config`); with `plot`, the metric's trend is also written as SVG,
    with `html`, a page that plots each gated figure's trend with its band."""
    from llmbench.analysis.gate_config import load_thresholds
    from llmbench.analysis.history import history as load
    from llmbench.analysis.history import trend_svg
    from llmbench.report.history_html import render_history_html

    h = load(Path(directory), metric, load_thresholds(gate_config))
    if plot is not None:
        write_atomic(Path(plot), trend_svg(h.trend, h.metric))
    if html is not None:
        write_atomic(Path(html), render_history_html(h))
    return h


def score(
    suite_spec: str | Path | Suite,
    samples: str | Path,
    *,
    tasks: Sequence[str] = (),
    output: str | Path | None = None,
    command: Sequence[str] = (),
    fresh: bool = False,
    results_dir: str | Path = "results",
) -> tuple[RunResult, Path]:
    """Score a JSONL of completions made elsewhere against a suite's tasks; writes a results file
    assembled as `run` assembles its own (the same run-level fingerprint keys), named as `run` names
    its own: never over another's results file without `fresh`."""
    from llmbench.results.io import write_results
    from llmbench.run.offline import check_output, output_path, score_samples_file

    output = Path(output) if output is not None else None
    check_output(output, fresh)
    result = score_samples_file(suite(suite_spec), Path(samples), tasks, command)
    return result, write_results(result, output_path(result, output, Path(results_dir)))


def score_lines(scorer: str, samples: str | Path) -> Iterator[tuple[str, Score]]:
    """One scorer over lines that carry their own output and reference: (id, score) per line."""
    from llmbench.run.offline import score_lines as lines

    return lines(scorer, Path(samples))


def study(
    path: str | Path, opts: StudyOptions | None = None, progress: StudyProgress | None = None
) -> StudyOutcome:
    """Run a study (models x suites x seeds): what is finished is kept, what is unfinished resumes; with
    `opts.dry_run` only the plan. Returns the plan, placement, manifest and leaderboard."""
    from llmbench.study.runner import StudyOptions, require_ray, run_study

    opts = opts or StudyOptions()
    if opts.ray is not None and not opts.dry_run:
        require_ray()
    return run_study(Path(path), opts, progress)


def study_report(outcome: StudyOutcome, output: str | Path) -> Path:
    """The HTML report of a study's finished cells with its leaderboard on top."""
    from llmbench.report.study_tables import with_leaderboard

    files = [c.output for c in outcome.plan.cells if c.state == "done" and c.output.exists()]
    if not files or outcome.leaderboard is None:
        raise UserInputError("no cell of the study has finished: nothing to report")
    text = with_leaderboard(render("html", compare(files)), outcome.leaderboard, outcome.plan.study.name)
    return write_atomic(Path(output), text)
