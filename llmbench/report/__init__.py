"""Renderers of a comparison: terminal, Markdown, CSV, JSON and a self-contained HTML report."""

from __future__ import annotations

from llmbench.report.csv import render_csv
from llmbench.report.html import render_html
from llmbench.report.jsonout import render_json
from llmbench.report.markdown import render_markdown
from llmbench.report.terminal import print_comparison

__all__ = ["print_comparison", "render_csv", "render_html", "render_json", "render_markdown"]
