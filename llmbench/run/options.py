"""What a run is asked to do (RunOptions) and where it writes: its run id, results path and journal, and how `--resume` finds an unfinished run."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmbench.errors import UserInputError


@dataclass
class RunOptions:
    limit: int | None = None
    tasks: Sequence[str] = ()
    seed: int = 0
    output: Path | None = None
    results_dir: Path = Path("results")
    resume: bool = False
    fresh: bool = False  # discard an unfinished run's journal instead of resuming it
    run_id: str | None = None
    command: list[str] = field(default_factory=list)
    telemetry_hz: float = 20.0
    warmup: bool = True  # one untimed request before the first quality task
    shard: tuple[int, int] | None = None  # (i, n): only the samples whose stable id hash is i mod n
    merge_journals: Sequence[Path] = ()  # journals of this run's shards: their samples count as done
    annotations: dict[str, Any] = field(default_factory=dict)  # added to the results' summary (placement)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "-", text).strip("-") or "run"


def resolve_paths(suite: str, model: str, opts: RunOptions) -> tuple[Path, str]:
    """Results path and run id: `--output`, else `--run-id`, else `<suite>-<model>-<UTC time>`.

    With `--resume` and neither, the newest unfinished run of this suite and model is picked up.
    """
    if opts.output is not None:
        path = opts.output if opts.output.suffix == ".json" else opts.output.with_suffix(".json")
        return path, path.stem
    if opts.run_id:
        return opts.results_dir / f"{_slug(opts.run_id)}.json", _slug(opts.run_id)
    prefix = f"{_slug(suite)}-{_slug(model)}-"
    if opts.resume:
        journals = sorted(opts.results_dir.glob(f"{prefix}*.journal.jsonl"), key=lambda p: p.stat().st_mtime)
        unfinished = [
            j for j in journals if not j.with_name(j.name.removesuffix(".journal.jsonl") + ".json").exists()
        ]
        if not unfinished:
            raise UserInputError(
                f"--resume: no unfinished run of {suite} on {model} in {opts.results_dir}",
                hint="name it with --run-id or --output",
            )
        run_id = unfinished[-1].name.removesuffix(".journal.jsonl")
        return opts.results_dir / f"{run_id}.json", run_id
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_id = prefix + stamp
    return opts.results_dir / f"{run_id}.json", run_id
