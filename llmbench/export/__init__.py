"""Exporters: results files copied to where a team already looks (MLflow, W&B, a Hugging Face dataset),
registered by the name `llmbench export --to` uses."""

from __future__ import annotations

from llmbench.export.base import Exported, Exporter, ExportItem, ExportOptions, StudyRef, exporters

__all__ = ["ExportItem", "ExportOptions", "Exported", "Exporter", "StudyRef", "exporters"]
