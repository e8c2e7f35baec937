"""The `llmbench` command: parse arguments, call the library, print. No logic lives here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from llmbench.errors import LLMBenchError, UserInputError

app = typer.Typer(
    name="llmbench",
    help="Reproducible LLM benchmarks: quality suites and performance telemetry, in one results file.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
out = Console(soft_wrap=True)
_state = {"debug": False}

# Options shared across commands, declared once.
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="alias from configs/models, a model directory, a config YAML or a Hugging Face id",
    ),
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend", "-b", help="transformers | vllm | openai | reference (default: the model config's)"
    ),
]
BaseUrlOpt = Annotated[
    str | None, typer.Option("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
]
ApiKeyEnvOpt = Annotated[
    str | None,
    typer.Option("--api-key-env", help="name of the environment variable that holds the API key"),
]
FirstByteTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--first-byte-timeout",
        min=0.001,
        max=86400,
        help="seconds an API server may take to begin an answer (default: the model config's, 120)",
    ),
]
IdleTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--idle-timeout",
        min=0.001,
        max=86400,
        help="seconds an API server may stay silent between two chunks of an answer (default 30)",
    ),
]
LimitOpt = Annotated[int | None, typer.Option("--limit", "-n", min=1, help="at most N samples per task")]
TaskOpt = Annotated[list[str] | None, typer.Option("--task", "-t", help="run only this task (repeatable)")]
SeedOpt = Annotated[
    int, typer.Option("--seed", min=0, max=(1 << 32) - 1, help="base seed for sampling and generated data")
]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table | markdown | csv | json | html")]
ResultsArg = Annotated[list[Path], typer.Argument(help="results files (JSON)", show_default=False)]
KeepRepeatsOpt = Annotated[
    bool,
    typer.Option(
        "--keep-repeats", help="one column per file, even for runs that repeat each other with another seed"
    ),
]


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False) -> None:
    _state["debug"] = debug


def _model(  # type: ignore[no-untyped-def]
    spec: str,
    backend: str | None,
    base_url: str | None,
    api_key_env: str | None,
    first_byte_timeout: float | None = None,
    idle_timeout: float | None = None,
):
    from llmbench.config import resolve_model

    model = resolve_model(spec, backend=backend)
    if base_url or api_key_env:
        api = model.api.model_copy(
            update={k: v for k, v in {"base_url": base_url, "api_key_env": api_key_env}.items() if v}
        )
        model = model.model_copy(update={"api": api, "backend": backend or "openai"})
    timeouts = {"first_byte_timeout_s": first_byte_timeout, "idle_timeout_s": idle_timeout}
    if any(v is not None for v in timeouts.values()):
        api = model.api.model_copy(update={k: v for k, v in timeouts.items() if v is not None})
        model = model.model_copy(update={"api": api})
    from llmbench.backends import backends

    backends.get(model.backend)  # an unknown backend fails here, before anything loads
    return model


@app.command()
def run(
    suite: Annotated[Path, typer.Argument(help="suite YAML, e.g. suites/math.yaml")],
    model: ModelOpt,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    first_byte_timeout: FirstByteTimeoutOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
    limit: LimitOpt = None,
    task: TaskOpt = None,
    seed: SeedOpt = 0,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="results file (default results/<suite>-<model>-<time>.json)"),
    ] = None,
    results_dir: Annotated[Path, typer.Option("--results-dir", help="where results files go")] = Path(
        "results"
    ),
    resume: Annotated[
        bool, typer.Option("--resume", help="continue an interrupted run from its journal")
    ] = False,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id", help="name the run; an unfinished run of that name continues where it stopped"
        ),
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="discard an unfinished run's journal and start over")
    ] = False,
    warmup: Annotated[
        bool, typer.Option("--warmup/--no-warmup", help="one untimed request before the first timed one")
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    repeat: Annotated[
        int, typer.Option("--repeat", min=1, help="run N times and report the greedy flip rate")
    ] = 1,
    batch_sizes: Annotated[
        str | None,
        typer.Option("--batch-sizes", help="e.g. 1,16: one run per batch size, flip rate across them"),
    ] = None,
) -> None:
    """Run a suite on a model and write a results file."""
    from llmbench.config import load_suite
    from llmbench.report.progress import RichProgress
    from llmbench.report.summary import print_run_summary
    from llmbench.run.pipeline import RunOptions, run_suite

    cfg = _model(model, backend, base_url, api_key_env, first_byte_timeout, idle_timeout)
    if repeat > 1 or batch_sizes:
        from llmbench import commands

        sizes = _int_list(batch_sizes) if batch_sizes else [None]
        variants = [
            (
                f"{'bs' + str(b) + '-' if b else ''}r{i + 1}",
                cfg.model_copy(update={"batch_size": b, "max_num_seqs": b}) if b else cfg,
            )
            for b in sizes
            for i in range(repeat)
        ]
        paths = commands.run_variants(
            suite,
            variants,
            limit=limit,
            tasks=task or [],
            seed=seed,
            results_dir=results_dir,
            console=console,
        )
        for p in paths:
            out.print(f"results: {p}")
        commands.determinism(paths, f"{repeat} repeat(s) x batch sizes {batch_sizes or 'default'}", out)
        return
    loaded = load_suite(suite)
    opts = RunOptions(
        limit=limit,
        tasks=task or [],
        seed=seed,
        output=output,
        results_dir=results_dir,
        resume=resume,
        fresh=fresh,
        run_id=run_id,
        warmup=warmup,
        command=["llmbench", *sys.argv[1:]],
    )
    with RichProgress(console, enabled=not quiet) as progress:
        result, path = run_suite(loaded, cfg, opts, progress)
    print_run_summary(result, out)
    out.print(f"results: {path}")


@app.command()
def parity(
    suite_or_files: Annotated[
        list[Path], typer.Argument(help="a suite YAML (runs it on each backend) or two results files")
    ],
    model: Annotated[str | None, typer.Option("--model", "-m", help="model to run (with a suite)")] = None,
    backends_: Annotated[
        str, typer.Option("--backends", help="two backends, comma-separated")
    ] = "transformers,vllm",
    limit: LimitOpt = None,
    task: TaskOpt = None,
    seed: SeedOpt = 0,
    results_dir: Annotated[Path, typer.Option("--results-dir", help="where the two results files go")] = Path(
        "results"
    ),
) -> None:
    """Same samples on two backends: prompt-token match, verdict flips, paired significance."""
    from llmbench import commands

    files = suite_or_files
    if len(files) == 1 and files[0].suffix in (".yaml", ".yml"):
        if model is None:
            raise UserInputError("parity on a suite needs --model")
        names = [b.strip() for b in backends_.split(",") if b.strip()]
        if len(names) != 2:
            raise UserInputError(f"--backends needs exactly two names, got '{backends_}'")
        variants = [(name, _model(model, name, None, None)) for name in names]
        files = commands.run_variants(
            files[0],
            variants,
            limit=limit,
            tasks=task or [],
            seed=seed,
            results_dir=results_dir,
            console=console,
        )
    commands.parity(files, out)


@app.command()
def compare(
    files: ResultsArg,
    fmt: FormatOpt = "table",
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="reference run: shown first, with deltas")
    ] = None,
    fail_on_regression: Annotated[
        bool, typer.Option("--fail-on-regression", help="exit 1 on a significant regression vs --baseline")
    ] = False,
    gate_config: Annotated[
        Path | None, typer.Option("--gate-config", help="thresholds YAML (default configs/gates.yaml)")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to a file instead of the terminal")
    ] = None,
    keep_repeats: KeepRepeatsOpt = False,
) -> None:
    """Compare results files: one column per run (repeats merged), significance and regressions marked."""
    from llmbench import commands

    code = commands.compare(
        files,
        fmt=fmt,
        baseline=baseline,
        fail_on_regression=fail_on_regression,
        gate_config=gate_config,
        output=output,
        console=out,
        keep_repeats=keep_repeats,
    )
    raise typer.Exit(code)


@app.command()
def report(
    files: ResultsArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write")] = Path("report.html"),
    keep_repeats: KeepRepeatsOpt = False,
) -> None:
    """Write one self-contained HTML report (tables and plots) for results files."""
    from llmbench import commands

    commands.html_report(files, output, keep_repeats=keep_repeats)
    out.print(f"report: {output}")


@app.command()
def history(
    directory: Annotated[Path, typer.Argument(help="folder of results files from repeated (nightly) runs")],
    metric: Annotated[
        str | None, typer.Option("--metric", help="e.g. gsm8k.accuracy or performance.ttft_ms.p50")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="also write the trend as an SVG")] = None,
) -> None:
    """Show a metric's trend over a folder of runs."""
    from llmbench import commands

    commands.history(directory, metric=metric, plot=plot, console=out)


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="suite or model YAML files")]) -> None:
    """Check suites and model configs; exit code 2 on the first bad file."""
    from llmbench import commands

    for line in commands.validate(files):
        out.print(line)


@app.command("list")
def list_cmd() -> None:
    """Show the suites, tasks, models, backends and scorers llmbench knows."""
    from llmbench import commands

    commands.print_catalogue(out)


@app.command()
def score(
    suite: Annotated[Path | None, typer.Argument(help="suite YAML whose tasks the samples belong to")] = None,
    samples: Annotated[
        Path,
        typer.Option(
            "--samples", "-s", help="JSONL completions: {task_id, completion} or {task, id, output}"
        ),
    ] = Path("samples.jsonl"),
    task: TaskOpt = None,
    scorer: Annotated[
        str | None, typer.Option("--scorer", help="score lines carrying their own output and reference")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="results file to write")] = None,
) -> None:
    """Score completions produced elsewhere, without a model."""
    from llmbench import commands

    if scorer:
        commands.score_lines(scorer, samples, console=out)
        return
    if suite is None:
        raise UserInputError("give a SUITE, or --scorer NAME for lines with their own references")
    path = commands.score_file(suite, samples, tasks=task or [], output=output, console=out)
    out.print(f"results: {path}")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserInputError(f"expected comma-separated integers, got '{text}'") from None
    if not values or any(v < 1 for v in values):
        raise UserInputError(f"expected positive integers, got '{text}'")
    return values


def main() -> None:
    """Entry point: one clear line and an exit code for every expected failure; --debug shows tracebacks."""
    from llmbench import interrupts

    try:
        with interrupts.handling():
            code = app(standalone_mode=False)  # returns a command's typer.Exit code instead of raising it
            if interrupts.requested():  # pressed as the command finished: its output is complete
                console.print("interrupted (after the command had finished its work)")
                sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except typer.TyperException as exc:  # a usage error: unknown option, missing argument, bad value
        show = getattr(exc, "show", None)  # the usage errors print their command's usage line too
        if callable(show):
            show()
        else:
            console.print(f"[bold red]error:[/] {exc.format_message()}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except LLMBenchError as exc:
        if _state["debug"]:
            console.print_exception()
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if _state["debug"]:
            console.print_exception()
        console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
