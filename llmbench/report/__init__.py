"""Renderers: of a comparison (terminal, Markdown, CSV, JSON, self-contained HTML), registered by format
name in `renderers`; and, for the terminal, of a run, parity, history, the catalogue and progress."""

from __future__ import annotations

from llmbench.report.csv import render_csv
from llmbench.report.history_table import print_history
from llmbench.report.html import render_html
from llmbench.report.jsonout import render_json
from llmbench.report.listing import print_catalogue, print_verdicts
from llmbench.report.markdown import render_markdown
from llmbench.report.parity_table import print_flip_rate, print_parity
from llmbench.report.progress_bar import RichProgress as progress_bar
from llmbench.report.renderers import Renderer, render, renderers
from llmbench.report.summary import print_run_errors, print_run_summary
from llmbench.report.terminal import print_comparison

__all__ = [
    "Renderer",
    "print_catalogue",
    "print_comparison",
    "print_flip_rate",
    "print_history",
    "print_parity",
    "print_run_errors",
    "print_run_summary",
    "print_verdicts",
    "progress_bar",
    "render",
    "render_csv",
    "render_html",
    "render_json",
    "render_markdown",
    "renderers",
]
