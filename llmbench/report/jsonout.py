"""The comparison as JSON for other tools: columns, rows with cells and deltas, sweeps, cost; no NaN/inf."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from llmbench.analysis.compare import Comparison


def _clean(value: Any) -> Any:
    """Non-finite floats become null so every JSON parser accepts the output."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def comparison_dict(comparison: Comparison) -> dict[str, Any]:
    columns = [
        {
            "label": c.label,
            "run_id": c.run.run_id,
            "model_name": c.run.model_name,
            "backend": c.run.backend.backend,
            "suite": c.run.suite_name,
            "created_at": c.run.created_at,
            "fingerprint": c.run.fingerprint,
        }
        for c in comparison.columns
    ]
    rows = []
    for row in comparison.rows:
        rows.append(
            {
                "section": row.section,
                "suite": row.suite,
                "task": row.task,
                "metric": row.metric,
                "higher_is_better": row.higher_is_better,
                "best": comparison.labels[row.best] if row.best is not None else None,
                "cells": [m.model_dump() if m is not None else None for m in row.cells],
                "deltas": [dataclasses.asdict(d) if d is not None else None for d in row.deltas],
                "fingerprint_diff": row.fingerprint_diff,
                "withheld": row.withheld or None,
            }
        )
    return _clean(
        {
            "columns": columns,
            "baseline": comparison.labels[comparison.baseline] if comparison.baseline is not None else None,
            "baseline_named": comparison.baseline_named,
            "rows": rows,
            "sweeps": [dataclasses.asdict(s) for s in comparison.sweeps],
            "cost": [dataclasses.asdict(c) for c in comparison.cost],
            "fingerprint_warnings": comparison.fingerprint_warnings,
        }
    )


def render_json(comparison: Comparison) -> str:
    return json.dumps(comparison_dict(comparison), indent=2, allow_nan=False)
