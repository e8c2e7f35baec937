"""Markdown table cells that stay one cell, in one row, whatever the text holds (model names, run ids, notes)."""

from __future__ import annotations


def table_cell(value: object) -> str:
    """`value` as one Markdown table cell: line breaks become spaces (a break would end the row), and
    backslashes and pipes are escaped (a pipe would end the cell, a backslash before it would undo that)."""
    text = " ".join(str(value).splitlines())
    return text.replace("\\", "\\\\").replace("|", "\\|")
