"""Output formats of a comparison, registered by the name `--format` uses: table, markdown, csv, json, html.

A renderer turns a comparison (and the runs behind it) into text for a file or a pipe; one that can also
draw on a terminal (rich tables) says so with `show`, and the CLI uses that when no `--output` is given.
A new format is one `renderers.add(...)` away, and third-party ones come in through the
`llmbench.renderers` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Console

from llmbench.analysis.compare import Comparison
from llmbench.registry import Registry
from llmbench.results import RunResult


@dataclass(frozen=True)
class Renderer:
    """`text` renders for a file or a pipe; `show`, where given, draws on a terminal instead."""

    text: Callable[[Comparison, Sequence[RunResult]], str]
    show: Callable[[Comparison, Console], None] | None = None


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


renderers: Registry[Renderer] = Registry("format")
renderers.add("table", Renderer(_markdown, _terminal))  # a table written to a file is Markdown
renderers.add("markdown", Renderer(_markdown))
renderers.add("csv", Renderer(_csv))
renderers.add("json", Renderer(_json))
renderers.add("html", Renderer(_html))
renderers.add_entry_points("llmbench.renderers")


def render(fmt: str, comparison: Comparison, runs: Sequence[RunResult]) -> str:
    """The comparison as text in format `fmt`; an unknown format is a UserInputError naming the known ones."""
    return renderers.get(fmt).text(comparison, runs)
