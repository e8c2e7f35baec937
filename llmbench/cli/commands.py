"""The `llmbench` command: parse arguments, call the library, print. No logic lives here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from llmbench import api
from llmbench.cli.cache_commands import app as cache_app
from llmbench.cli.error_lines import exit_code_for, finished
from llmbench.cli.flags import (
    AllRunsOpt,
    ApiKeyEnvOpt,
    BackendOpt,
    BackendsOpt,
    BaselineOpt,
    BaseUrlOpt,
    BatchSizesOpt,
    BoardHtmlOpt,
    BoardMarkdownOpt,
    CacheOpt,
    DeadlineOpt,
    DeepOpt,
    DetailOpt,
    DoctorJsonOpt,
    DryRunOpt,
    ExperimentOpt,
    ExportDirOpt,
    ExportToOpt,
    FailOnRegressionOpt,
    FirstTokenTimeoutOpt,
    FormatOpt,
    FreshOpt,
    GateConfigOpt,
    GateHistoryOpt,
    GpusOpt,
    HistoryDirArg,
    HistoryHtmlOpt,
    IdleTimeoutOpt,
    KeepRepeatsOpt,
    LimitOpt,
    MaxCostOpt,
    MaxNewTokensOpt,
    MaxTtftOpt,
    MaxVramOpt,
    MetricOpt,
    MinTokensOpt,
    OutputOpt,
    ParityDirOpt,
    ParityModelOpt,
    PlotOpt,
    PortOpt,
    QuietOpt,
    RayOpt,
    RepeatOpt,
    ReportOutputOpt,
    RequestTimeoutOpt,
    ResultsArg,
    ResultsDirOpt,
    ResumeOpt,
    RunIdOpt,
    RunModelOpt,
    RunQuietOpt,
    RunSeedOpt,
    RunSuiteArg,
    SamplesOpt,
    ScoreFreshOpt,
    ScoreOutputOpt,
    ScorerOpt,
    ScoreSuiteArg,
    SeedOpt,
    SetOpt,
    StudyArg,
    StudyDirOpt,
    SuiteOrFilesArg,
    TaskOpt,
    ThreadsOpt,
    TrackingUriOpt,
    WarmupOpt,
    WriteToOpt,
    YamlFilesArg,
    int_list,
)
from llmbench.cli.show import (
    console,
    out,
    progress_for,
    refuse_to_overwrite,
    show_comparison,
    show_gate_verdict,
    show_repeats,
    show_run,
    show_study,
    silence_libraries,
)
from llmbench.errors import UserInputError
from llmbench.run.options import RunOptions
from llmbench.run.overrides import parse_sets

app = typer.Typer(
    name="llmbench",
    help="Reproducible LLM benchmarks: quality suites and performance telemetry, in one results file.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(cache_app)
_state = {"debug": False}


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False) -> None:
    _state["debug"] = debug


@app.command()
def run(
    suite: RunSuiteArg = None,
    model: RunModelOpt = None,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    first_token_timeout: FirstTokenTimeoutOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
    request_timeout: RequestTimeoutOpt = None,
    threads: ThreadsOpt = None,
    limit: LimitOpt = None,
    tasks: TaskOpt = None,
    seed: RunSeedOpt = None,
    max_new_tokens: MaxNewTokensOpt = None,
    set_items: SetOpt = None,
    output: OutputOpt = None,
    results_dir: ResultsDirOpt = Path("results"),
    resume: ResumeOpt = False,
    run_id: RunIdOpt = None,
    fresh: FreshOpt = False,
    warmup: WarmupOpt = True,
    cache: CacheOpt = True,
    quiet: RunQuietOpt = False,
    repeat: RepeatOpt = 1,
    batch_sizes: BatchSizesOpt = None,
    deadline_s: DeadlineOpt = None,
    max_cost_usd: MaxCostOpt = None,
) -> None:
    """Run a suite on a model and write a results file."""
    opts = RunOptions.given(locals() | {"sets": parse_sets(set_items or [])}, ["llmbench", *sys.argv[1:]])
    if quiet:
        silence_libraries()
    if (done := api.finished_run(opts)) is not None:  # a resume of a run that finished: nothing to rerun
        out.print(f"this run has finished: its results are in {done} (nothing was rerun)")
        return
    if suite is None or model is None:  # --resume --output PATH: the journal names them
        show_run(None, None, opts, quiet=quiet)
        return
    timeouts = {"first_token": first_token_timeout, "idle": idle_timeout, "request": request_timeout}
    cfg = api.model(
        model, backend=backend, base_url=base_url, api_key_env=api_key_env, threads=threads, timeouts=timeouts
    )
    if repeat > 1 or batch_sizes:
        show_repeats(suite, cfg, opts, repeat=repeat, batch_sizes=int_list(batch_sizes), quiet=quiet)
    else:
        show_run(suite, cfg, opts, quiet=quiet)


@app.command()
def study(
    study_file: StudyArg,
    dry_run: DryRunOpt = False,
    gpus: GpusOpt = None,
    ray: RayOpt = None,
    results_dir: StudyDirOpt = None,
    max_vram: MaxVramOpt = None,
    max_ttft_ms: MaxTtftOpt = None,
    min_tokens_per_s: MinTokensOpt = None,
    markdown: BoardMarkdownOpt = None,
    html_out: BoardHtmlOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Run a study (models x suites x seeds), resume what is unfinished, print the leaderboard."""
    from llmbench.report.study_progress import RichStudyProgress
    from llmbench.report.study_tables import print_plan
    from llmbench.study.runner import StudyOptions

    constraints = {"max_vram_mib": max_vram, "max_ttft_ms": max_ttft_ms, "min_tokens_per_s": min_tokens_per_s}
    opts = StudyOptions(
        results_dir=results_dir,
        gpus=gpus,
        ray=ray,
        dry_run=dry_run,
        constraints={k: v for k, v in constraints.items() if v is not None},
    )
    with RichStudyProgress(console, enabled=not quiet and not dry_run) as progress:
        outcome = api.study(study_file, opts, progress)
    if dry_run:
        print_plan(outcome, out)
    show_study(outcome, markdown, html_out)


@app.command()
def parity(
    suite_or_files: SuiteOrFilesArg,
    model: ParityModelOpt = None,
    backends_: BackendsOpt = "transformers,vllm",
    limit: LimitOpt = None,
    tasks: TaskOpt = None,
    seed: SeedOpt = 0,
    results_dir: ParityDirOpt = Path("results"),
) -> None:
    """Same samples on two backends: prompt-token match, verdict flips, paired significance."""
    from llmbench.report import print_parity

    names = [b.strip() for b in backends_.split(",") if b.strip()]
    opts = RunOptions(limit=limit, tasks=tasks or [], seed=seed, results_dir=results_dir)
    report = api.parity(
        suite_or_files, model_spec=model, backends=names, opts=opts, progress_for=progress_for
    )
    print_parity(report, out)


@app.command()
def compare(
    files: ResultsArg,
    fmt: FormatOpt = "table",
    baseline: BaselineOpt = None,
    fail_on_regression: FailOnRegressionOpt = False,
    gate_config: GateConfigOpt = None,
    history_dir: GateHistoryOpt = None,
    output: WriteToOpt = None,
    keep_repeats: KeepRepeatsOpt = False,
    all_runs: AllRunsOpt = False,
    detail: DetailOpt = None,
) -> None:
    """Compare results: a leaderboard (a row per model and backend, a column per suite and cost figure),
    or every metric side by side (up to three runs of one suite, or --detail); significance and regressions marked."""
    from llmbench.report import renderers

    renderer = renderers.get(fmt)
    if fail_on_regression and baseline is None:
        raise UserInputError("--fail-on-regression needs --baseline BASE.json")
    refuse_to_overwrite(output, [*files, baseline])
    compared = api.compare(
        files,
        baseline=baseline,
        keep_repeats=keep_repeats,
        all_runs=all_runs,
        view="auto" if detail is None else "detail" if detail else "leaderboard",
        alpha=api.gate_alpha(gate_config) if fail_on_regression else None,
    )
    gate_notes: list[str] = []
    findings = (  # a bad gate: before output
        api.gate(compared, gate_config, history_dir, gate_notes) if fail_on_regression else None
    )
    for note in compared.notes:  # on standard error: standard output stays valid JSON/CSV
        console.print(note, style="dim", highlight=False, markup=False)
    show_comparison(compared, renderer, fmt, output)
    if findings is not None:
        show_gate_verdict(findings, api.gate_scope(compared) + gate_notes)
        raise typer.Exit(1 if findings else 0)


@app.command()
def report(
    files: ResultsArg,
    output: ReportOutputOpt = Path("report.html"),
    keep_repeats: KeepRepeatsOpt = False,
    all_runs: AllRunsOpt = False,
) -> None:
    """Write one self-contained HTML report (leaderboard, tables and plots) for results files."""
    refuse_to_overwrite(output, files)
    out.print(f"report: {api.report(files, output, keep_repeats=keep_repeats, all_runs=all_runs)}")


@app.command()
def view(files: ResultsArg, port: PortOpt = 0) -> None:
    """Browse runs, samples and two-run diffs in a local web app (127.0.0.1); Ctrl-C stops it."""
    server = api.view(files, port=port, debug=_state["debug"])
    out.print(f"llmbench view: {server.url} (Ctrl-C stops it)", highlight=False)
    server.serve_until_interrupted()
    out.print("llmbench view: stopped")


@app.command()
def export(
    files: ResultsArg,
    to: ExportToOpt,
    tracking_uri: TrackingUriOpt = None,
    output: ExportDirOpt = None,
    experiment: ExperimentOpt = None,
) -> None:
    """Export results files: MLflow runs, W&B offline runs, or the samples as a Hugging Face dataset."""
    done = api.export(files, to, tracking_uri=tracking_uri, directory=output, experiment=experiment)
    for item in done:
        state = "exported" if item.created else "already exported"
        out.print(f"{state}: {item.results_file} -> {item.location}", highlight=False, soft_wrap=True)


@app.command()
def history(
    directory: HistoryDirArg,
    metric: MetricOpt = None,
    plot: PlotOpt = None,
    gate_config: GateConfigOpt = None,
    html: HistoryHtmlOpt = None,
) -> None:
    """Show a metric's trend over a folder of runs, then each gated figure's trend with its noise band."""
    from llmbench.report import print_history

    print_history(api.history(directory, metric=metric, plot=plot, gate_config=gate_config, html=html), out)
    for name, path in (("plot", plot), ("html", html)):
        if path is not None:
            out.print(f"{name}: {path}")


@app.command()
def validate(files: YamlFilesArg) -> None:
    """Check suites, model configs and studies; exit code 2 on the first bad file."""
    for checked in api.validate(files):
        out.print(str(checked))


@app.command()
def doctor(json_out: DoctorJsonOpt = False, deep: DeepOpt = False) -> None:
    """What this host offers llmbench: GPUs, memory holders, drivers, libraries, backends, cached models."""
    from llmbench.report.host_report import print_host_report

    report = api.doctor(deep=deep)
    if json_out:
        out.print_json(data=report.as_dict())
    else:
        print_host_report(report, out)


@app.command("list")
def list_cmd() -> None:
    """Show the suites, tasks, models, backends and scorers llmbench knows."""
    from llmbench.report import print_catalogue

    print_catalogue(api.catalogue(), out)


@app.command()
def score(
    suite: ScoreSuiteArg = None,
    samples: SamplesOpt = Path("samples.jsonl"),
    tasks: TaskOpt = None,
    scorer: ScorerOpt = None,
    output: ScoreOutputOpt = None,
    fresh: ScoreFreshOpt = False,
) -> None:
    """Score completions produced elsewhere, without a model."""
    from llmbench.report import print_run_summary, print_verdicts

    if scorer:
        print_verdicts(api.score_lines(scorer, samples), out)
        return
    if suite is None:
        raise UserInputError("give a SUITE, or --scorer NAME for lines with their own references")
    result, path = api.score(
        suite, samples, tasks=tasks or [], output=output, command=["llmbench", *sys.argv[1:]], fresh=fresh
    )
    print_run_summary(result, out)
    out.print(f"results: {path}")


def main() -> None:
    """Entry point: one clear line and an exit code for every expected failure; --debug shows tracebacks."""
    from llmbench.run import interrupts

    try:
        with interrupts.handling():
            code = app(standalone_mode=False)  # returns a command's typer.Exit code instead of raising it
            sys.exit(finished(code, console))
    except (Exception, KeyboardInterrupt) as exc:
        sys.exit(exit_code_for(exc, console, debug=_state["debug"]))
