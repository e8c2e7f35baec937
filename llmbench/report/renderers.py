"""Output formats of a comparison, registered by the name `--format` uses: table, markdown, csv, json, html,
vllm-bench (the perf points of the runs, as `vllm bench serve --save-result` writes them).

A renderer turns a comparison (and the runs behind it) into text for a file or a pipe; one that can also
draw on a terminal (rich tables) says so with `show`, and the CLI uses that when no `--output` is given.
Over many runs `compare` shows a leaderboard instead: a renderer draws it with `board` (text) and
`show_board` (terminal); one without them gets the per-metric comparison. A new format is one `renderers.add(...)` away, and third-party ones come in through the
`llmbench.renderers` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Console

from llmbench.analysis.compare import Comparison
from llmbench.analysis.leaderboard import Leaderboard
from llmbench.registry import Registry
from llmbench.results.schema import RunResult


@dataclass(frozen=True)
class Renderer:
    """`text` renders for a file or a pipe; `show`, where given, draws on a terminal instead."""

    text: Callable[[Comparison, Sequence[RunResult]], str]
    show: Callable[[Comparison, Console], None] | None = None
    # The comparison comes as a function: only a format that shows it too (HTML) pays for building it.
    board: Callable[[Leaderboard, Callable[[], Comparison], Sequence[RunResult]], str] | None = None
    show_board: Callable[[Leaderboard, Console], None] | None = None


def _board_markdown(
    board: Leaderboard, comparison: Callable[[], Comparison], runs: Sequence[RunResult]
) -> str:
    from llmbench.report.leaderboard_table import render_markdown

    return render_markdown(board)


def _board_terminal(board: Leaderboard, console: Console) -> None:
    from llmbench.report.leaderboard_table import print_leaderboard

    print_leaderboard(board, console)


def _board_csv(board: Leaderboard, comparison: Callable[[], Comparison], runs: Sequence[RunResult]) -> str:
    from llmbench.report.leaderboard_table import render_csv

    return render_csv(board)


def _board_json(board: Leaderboard, comparison: Callable[[], Comparison], runs: Sequence[RunResult]) -> str:
    from llmbench.report.leaderboard_table import render_json

    return render_json(board)


def _board_html(board: Leaderboard, comparison: Callable[[], Comparison], runs: Sequence[RunResult]) -> str:
    from llmbench.report.html import render_html

    return render_html(runs, comparison(), board)


def _markdown(comparison: Comparison, runs: Sequence[RunResult]) -> str:
    from llmbench.report.markdown import render_markdown

    return render_markdown(comparison)


def _terminal(comparison: Comparison, console: Console) -> None:
    from llmbench.report.terminal import print_comparison

    print_comparison(comparison, console)


def _csv(comparison: Comparison, runs: Sequence[RunResult]) -> str:
    from llmbench.report.csv import render_csv

    return render_csv(comparison)


def _json(comparison: Comparison, runs: Sequence[RunResult]) -> str:
    from llmbench.report.jsonout import render_json

    return render_json(comparison)


def _html(comparison: Comparison, runs: Sequence[RunResult]) -> str:
    from llmbench.report.html import render_html

    return render_html(runs, comparison)


def _vllm_bench(comparison: Comparison, runs: Sequence[RunResult]) -> str:
    from llmbench.report.vllmbench import render_vllm_bench

    return render_vllm_bench(runs)


renderers: Registry[Renderer] = Registry("format")
# a table written to a file is Markdown
renderers.add("table", Renderer(_markdown, _terminal, _board_markdown, _board_terminal))
renderers.add("markdown", Renderer(_markdown, board=_board_markdown))
renderers.add("csv", Renderer(_csv, board=_board_csv))
renderers.add("json", Renderer(_json, board=_board_json))
renderers.add("html", Renderer(_html, board=_board_html))
renderers.add("vllm-bench", Renderer(_vllm_bench))  # perf points as `vllm bench serve --save-result` keys
renderers.add_entry_points("llmbench.renderers")


def render(fmt: str, comparison: Comparison, runs: Sequence[RunResult]) -> str:
    """The comparison as text in format `fmt`; an unknown format is a UserInputError naming the known ones."""
    return renderers.get(fmt).text(comparison, runs)
