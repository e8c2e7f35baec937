"""The Python API: every CLI command as a function that returns data and prints nothing.

    from llmbench import api

    result, path = api.run("suites/math.yaml", "tiny-qwen2", api.RunOptions(limit=5))
    compared = api.compare([path, "results/other.json"])
    print(api.render("markdown", compared))

Errors are `llmbench.errors` exceptions (a one-line message and a hint); progress goes to a
`llmbench.run.progress.Progress` when one is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from llmbench.catalogue import Catalogue, Checked, catalogue, validate
from llmbench.errors import UserInputError
from llmbench.results import write_atomic
from llmbench.run.options import RunOptions
from llmbench.run.progress import Progress

if TYPE_CHECKING:
    from llmbench.analysis.compare import Comparison
    from llmbench.analysis.gate import Regression
    from llmbench.analysis.history import History
    from llmbench.analysis.parity import FlipRate, ParityReport
    from llmbench.config import ModelConfig, Suite
    from llmbench.results import RunResult
    from llmbench.scoring.base import Score
    from llmbench.study.execute import StudyProgress
    from llmbench.study.runner import StudyOptions, StudyOutcome

__all__ = [
    "Catalogue",
    "Checked",
    "Compared",
    "Finding",
    "Repeats",
    "RunOptions",
    "Variant",
    "catalogue",
    "compare",
    "gate",
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
    "suite",
    "validate",
    "variants",
]

ProgressFor = Callable[["Variant"], AbstractContextManager[Progress]]


def model(
    spec: str | ModelConfig,
    *,
    backend: str | None = None,
    base_url: str | None = None,
    api_key_env: str | None = None,
    first_byte_timeout: float | None = None,
    idle_timeout: float | None = None,
) -> ModelConfig:
    """A model config from an alias, directory, YAML or Hugging Face id; `base_url`/`api_key_env` point it
    at an OpenAI-compatible server (the openai backend unless `backend` says otherwise), the timeouts
    override the config's for API servers. An unknown backend fails here, before anything loads."""
    from llmbench.backends import backends
    from llmbench.config import ModelConfig, resolve_model

    cfg = spec if isinstance(spec, ModelConfig) else resolve_model(spec, backend=backend)
    overrides = {k: v for k, v in {"base_url": base_url, "api_key_env": api_key_env}.items() if v}
    if overrides:
        cfg = cfg.model_copy(
            update={"api": cfg.api.model_copy(update=overrides), "backend": backend or "openai"}
        )
    timeouts = {"first_byte_timeout_s": first_byte_timeout, "idle_timeout_s": idle_timeout}
    if any(v is not None for v in timeouts.values()):
        update = {k: v for k, v in timeouts.items() if v is not None}
        cfg = cfg.model_copy(update={"api": cfg.api.model_copy(update=update)})
    backends.get(cfg.backend)
    return cfg


def suite(spec: str | Path | Suite) -> Suite:
    """A loaded suite from a path or a name under suites/."""
    from llmbench.config import Suite, load_suite

    return spec if isinstance(spec, Suite) else load_suite(spec)


def run(
    suite_spec: str | Path | Suite,
    model_spec: str | ModelConfig,
    opts: RunOptions | None = None,
    progress: Progress | None = None,
) -> tuple[RunResult, Path]:
    """Run a suite on a model; returns the results and the file they were written to."""
    from llmbench.run.pipeline import run_suite

    return run_suite(suite(suite_spec), model(model_spec), opts or RunOptions(), progress)


@dataclass(frozen=True)
class Variant:
    """One run of a set that differ in one thing (a repeat, a batch size, a backend)."""

    label: str
    model: ModelConfig


def variants(cfg: ModelConfig, *, repeat: int = 1, batch_sizes: Sequence[int] = ()) -> list[Variant]:
    """`repeat` runs per batch size (or of the config as it is), labelled `bs16-r2` or `r2`."""
    sizes: Sequence[int | None] = batch_sizes or [None]
    return [
        Variant(
            f"{'bs' + str(b) + '-' if b else ''}r{i + 1}",
            cfg.model_copy(update={"batch_size": b, "max_num_seqs": b}) if b else cfg,
        )
        for b in sizes
        for i in range(repeat)
    ]


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
            paths.append(run_suite(loaded, v.model, replace(opts, output=out), progress)[1])
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
    if len(files) == 1 and _is_suite(files[0]):
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


def _is_suite(path: Path) -> bool:
    return Path(path).suffix in (".yaml", ".yml")


@dataclass
class Compared:
    """A comparison and the runs behind it: the baseline (if named) first, then the candidates."""

    comparison: Comparison
    runs: list[RunResult]
    baseline: RunResult | None
    candidates: list[RunResult]


def compare(
    files: Sequence[str | Path], *, baseline: str | Path | None = None, keep_repeats: bool = False
) -> Compared:
    """Compare results files; runs that repeat each other (another seed) become one column unless
    `keep_repeats`; the baseline is never merged."""
    from llmbench.analysis.compare import build_comparison, load_runs
    from llmbench.analysis.repeats import merge_repeats

    base_path = Path(baseline).resolve() if baseline is not None else None
    runs = load_runs([Path(f) for f in files if base_path is None or Path(f).resolve() != base_path])
    if not keep_repeats:
        runs = merge_repeats(runs)
    base = load_runs([Path(baseline)])[0] if baseline is not None else None
    shown = ([base] if base else []) + runs
    return Compared(build_comparison(shown, baseline=base), shown, base, runs)


def render(fmt: str, compared: Compared) -> str:
    """A comparison as text in a registered format (table, markdown, csv, json, html)."""
    from llmbench.report.renderers import render as render_text

    return render_text(fmt, compared.comparison, compared.runs)


@dataclass
class Finding:
    model_name: str
    regression: Regression

    def __str__(self) -> str:
        return f"REGRESSION {self.model_name}: {self.regression}"


def gate(compared: Compared, gate_config: Path | None = None) -> list[Finding]:
    """Significant regressions of each candidate against the baseline (thresholds: configs/gates.yaml)."""
    from llmbench.analysis.gate import check_regressions, load_thresholds

    if compared.baseline is None:
        raise UserInputError("--fail-on-regression needs --baseline BASE.json")
    thresholds = load_thresholds(gate_config)
    return [
        Finding(cand.model_name, reg)
        for cand in compared.candidates
        for reg in check_regressions(compared.baseline, cand, thresholds)
    ]


def report(files: Sequence[str | Path], output: str | Path, *, keep_repeats: bool = False) -> Path:
    """Write one self-contained HTML report (tables and plots) for results files."""
    output = Path(output)
    text = render("html", compare(files, keep_repeats=keep_repeats))
    return write_atomic(output, text)  # a full disk is one line, and no half-written report


def history(directory: str | Path, *, metric: str | None = None, plot: str | Path | None = None) -> History:
    """A metric's trend over a folder of runs; with `plot`, the trend is also written there as SVG."""
    from llmbench.analysis.history import history as load
    from llmbench.analysis.history import trend_svg

    h = load(Path(directory), metric)
    if plot is not None:
        write_atomic(Path(plot), trend_svg(h.trend, h.metric))
    return h


def score(
    suite_spec: str | Path | Suite,
    samples: str | Path,
    *,
    tasks: Sequence[str] = (),
    output: str | Path | None = None,
) -> tuple[RunResult, Path]:
    """Score a JSONL of completions made elsewhere against a suite's tasks; writes a results file."""
    from llmbench.results import write_results
    from llmbench.run.offline import score_samples_file

    result = score_samples_file(suite(suite_spec), Path(samples), tasks)
    path = Path(output) if output is not None else Path("results") / f"{result.run_id}.json"
    return result, write_results(result, path)


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
