"""What the `llmbench` commands print, and where: results on standard output (`out`), progress, notes and
failures on standard error (`console`), so that standard output stays valid JSON or CSV."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from llmbench import api
from llmbench.errors import UserInputError
from llmbench.results.io import write_atomic

if TYPE_CHECKING:
    from llmbench.config.models import ModelConfig
    from llmbench.report.progress_bar import RichProgress
    from llmbench.report.renderers import Renderer
    from llmbench.run.options import RunOptions
    from llmbench.study.runner import StudyOutcome

# Written to a log or a file (CI, `> table.txt`) rather than a terminal, tables get 160 columns instead of
# Rich's 80, which cut a sweep's thirteen columns to "51…"; COLUMNS, where set, still decides.
LOG_WIDTH = 160


def _console(*, stderr: bool = False, soft_wrap: bool = False) -> Console:
    c = Console(stderr=stderr, soft_wrap=soft_wrap)
    if not c.is_terminal and "COLUMNS" not in os.environ:
        c.width = LOG_WIDTH
    return c


console = _console(stderr=True)
out = _console(soft_wrap=True)


def silence_libraries() -> None:
    """`--quiet`: the libraries' own logs and loading bars too, errors excepted (set before they are imported).

    A variable the user set keeps its value, so `VLLM_LOGGING_LEVEL=INFO llmbench run -q ...` still logs.
    """
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if os.environ["PYTHONWARNINGS"] == "ignore":
        warnings.simplefilter("ignore")  # this process read PYTHONWARNINGS when it started


QUIET_ENVIRONMENT = {
    "VLLM_LOGGING_LEVEL": "ERROR",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # Hugging Face's bars, and vLLM's weight-loading bar (see vllm_engine)
    "TQDM_DISABLE": "1",  # any other tqdm bar that does not choose for itself
    "TORCH_CPP_LOG_LEVEL": "ERROR",  # torch's C++ warnings (NUMA binding, ...)
    "PYTHONWARNINGS": "ignore",  # deprecation warnings, in the engine's own processes too
}


def progress_for(v: api.Variant) -> RichProgress:
    """A variant's progress bar, announced by a line naming its model and backend."""
    from llmbench.report import progress_bar

    console.print(f"[bold]{v.label}[/]: running on {v.model.name} via {v.model.backend}")
    return progress_bar(console)


def quiet_progress(v: api.Variant) -> RichProgress:
    """A variant's progress, kept but not drawn (`--quiet`)."""
    from llmbench.report import progress_bar

    return progress_bar(console, enabled=False)


def show_study(outcome: StudyOutcome, markdown: Path | None, html_out: Path | None) -> None:
    """The leaderboard (also as Markdown or HTML files), the manifest's path, and exit 1 on a failed cell."""
    from llmbench.report.study_tables import print_leaderboard, render_leaderboard_markdown

    board = outcome.leaderboard
    if board is not None:
        print_leaderboard(board, out)
        study_files = [outcome.manifest_path, *(p for c in outcome.plan.cells for p in (c.output, c.journal))]
        for written in (markdown, html_out):
            refuse_to_overwrite(written, study_files)
        if markdown is not None:
            write_atomic(markdown, render_leaderboard_markdown(board))
        if html_out is not None:
            out.print(f"report: {api.study_report(outcome, html_out)}")
    if outcome.manifest_path is not None:
        out.print(f"manifest: {outcome.manifest_path}")
    if outcome.failed:
        for cell, error in outcome.failed.items():
            console.print(f"[bold red]failed:[/] {cell}: {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def show_comparison(compared: api.Compared, renderer: Renderer, fmt: str, output: Path | None) -> None:
    """Drawn on the terminal where the format can, else its text to standard output or to `output`."""
    if output is None and compared.leaderboard is not None and renderer.show_board is not None:
        renderer.show_board(compared.leaderboard, out)
    elif output is None and compared.leaderboard is None and renderer.show is not None:
        renderer.show(compared.comparison, out)
    elif output is None:
        out.print(api.render(fmt, compared), highlight=False, markup=False, soft_wrap=True)
    else:
        write_atomic(output, api.render(fmt, compared))  # a bad path or a full disk: one line, exit 2


def refuse_to_overwrite(output: Path | None, inputs: Iterable[str | Path | None]) -> None:
    """Bad input: an output file that is one of the files read (a folder stands for those under it), which
    writing the output would replace."""
    if output is None:
        return
    from llmbench.analysis.select import expand

    given = [Path(p) for p in inputs if p is not None]
    read = expand(p for p in given if p.exists())  # what does not exist is not overwritten; reading says so
    if any(_same_file(output, path) for path in read):
        raise UserInputError(
            f"{output}: is one of the files read; writing the output there would replace it",
            hint="give the output another name",
        )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def show_gate_verdict(findings: list[api.Finding], scope: list[str]) -> None:
    """The candidates the gate checked only in part, each regression it found or that there is none;
    on standard error."""
    for line in scope:
        console.print(line, style="dim", highlight=False, markup=False, soft_wrap=True)
    for finding in findings:
        console.print(str(finding), highlight=False, markup=False, soft_wrap=True)
    if not findings:
        console.print("gate: no significant regression against the baseline", highlight=False)


def show_run(suite: Path | None, cfg: ModelConfig | None, opts: RunOptions, *, quiet: bool) -> None:
    """One run; with `quiet` only its failures (on standard error) and the results path are printed."""
    from llmbench.report import print_run_errors, print_run_summary, progress_bar

    with progress_bar(console, enabled=not quiet) as progress:
        result, path = api.run(suite, cfg, opts, progress)
    if quiet:
        print_run_errors(result, console)
    else:
        print_run_summary(result, out)
    out.print(f"results: {path}")


def show_repeats(
    suite: Path, cfg: ModelConfig, opts: RunOptions, *, repeat: int, batch_sizes: list[int], quiet: bool
) -> None:
    """One run per repeat and batch size, each with its own progress bar, then the flip rate across them."""
    from llmbench.report import print_flip_rate

    each = quiet_progress if quiet else progress_for
    rep = api.repeat(suite, cfg, repeat=repeat, batch_sizes=batch_sizes, opts=opts, progress_for=each)
    for p in rep.paths:
        out.print(f"results: {p}")
    print_flip_rate(rep.flips, rep.label, out)
