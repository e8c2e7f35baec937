"""What a run is asked to do (RunOptions) and where it writes: its run id, results path and journal, and how `--resume` finds an unfinished run."""

from __future__ import annotations

import glob
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from llmbench.errors import UserInputError, validation_line
from llmbench.run.journal import Journal, is_held

if TYPE_CHECKING:
    from llmbench.config.models import ModelConfig


@dataclass
class RunOptions:
    limit: int | None = None
    tasks: Sequence[str] = ()
    seed: int | None = None  # None: 0 for a new run, the journal's for a resumed one
    output: Path | None = None
    results_dir: Path = Path("results")
    resume: bool = False
    fresh: bool = False  # discard an unfinished run's journal (or a finished run's results) and start over
    run_id: str | None = None
    command: list[str] = field(default_factory=list)
    telemetry_hz: float = 20.0
    warmup: bool = True  # one untimed request before the first quality task
    max_new_tokens: int | None = None  # caps every task's generation length (quick runs)
    shard: tuple[int, int] | None = None  # (i, n): only the samples whose stable id hash is i mod n
    merge_journals: Sequence[Path] = ()  # journals of this run's shards: their samples count as done
    annotations: dict[str, Any] = field(default_factory=dict)  # added to the results' summary (placement)
    sets: dict[str, Any] = field(default_factory=dict)  # --set KEY=VALUE: changes to every task's config
    deadline_s: float | None = None  # then it stops as at Ctrl-C; what did not finish is left to --resume
    repeat_of: str | None = None  # the `--repeat N` this run is one of (settings.repeat_of)
    max_cost_usd: float | None = None  # dollars this invocation may spend, then it stops as at the deadline
    cache: bool = True  # quality generations answered from (and kept in) the generation cache

    @classmethod
    def given(cls, params: dict[str, Any], command: list[str]) -> RunOptions:
        """The options a command's parameters give: each fills the field of its own name (None: unset)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names and v is not None}, command=command)

    @property
    def named(self) -> bool:
        return self.output is not None or self.run_id is not None

    def settings(self, backend: str) -> dict[str, Any]:
        """What the results file and the journal record as the run's settings (a resume must match them)."""
        settings: dict[str, Any] = {
            "limit": self.limit,
            "tasks": list(self.tasks),
            "seed": self.seed or 0,
            "backend": backend,
        }
        if self.max_new_tokens is not None:  # only when given: runs without it keep their settings
            settings["max_new_tokens"] = self.max_new_tokens
        if self.shard is not None:
            settings["shard"] = list(self.shard)
        if self.sets:
            settings["set"] = dict(self.sets)
        if self.repeat_of is not None:
            settings["repeat_of"] = self.repeat_of
        return settings

    def filled_from(self, settings: dict[str, Any]) -> RunOptions:
        """These options with every setting left unset taken from a journal's: a resume needs no flags."""
        return replace(
            self,
            limit=self.limit if self.limit is not None else settings.get("limit"),
            tasks=self.tasks or settings.get("tasks") or (),
            seed=self.seed if self.seed is not None else settings.get("seed", 0),
            max_new_tokens=self.max_new_tokens
            if self.max_new_tokens is not None
            else settings.get("max_new_tokens"),
            sets=self.sets or dict(settings.get("set") or {}),
            repeat_of=settings.get("repeat_of", self.repeat_of),  # a resumed repeat stays in its group
        )


def check_options(opts: RunOptions) -> None:
    if opts.fresh and opts.resume:
        raise UserInputError("--fresh and --resume contradict each other: choose one")


def slug(text: str) -> str:
    """`text` as a file-name part: runs of anything but letters, digits, `_.-` become one dash."""
    return re.sub(r"[^A-Za-z0-9_.\-]+", "-", text).strip("-") or "run"


def named_path(opts: RunOptions) -> Path | None:
    """The results path that `--output` or `--run-id` names; None for an unnamed run."""
    if opts.output is not None:
        return opts.output if opts.output.suffix == ".json" else opts.output.with_suffix(".json")
    if opts.run_id:
        return opts.results_dir / f"{slug(opts.run_id)}.json"
    return None


def resume_command(path: Path) -> str:
    """The command that continues the run whose results go to `path`: the journal knows the rest."""
    return f"llmbench run --resume --output {shlex.quote(str(path))}"


# An unnamed run's time, and its number within that second.
_STAMP = re.compile(r"[0-9]{8}T[0-9]{6}Z(-[0-9]+)?")


def unfinished_runs(suite: str, model: str, results_dir: Path) -> list[Path]:
    """Unnamed journals of this suite and model with no results file and no live writer, oldest first.

    Only names of the form `<suite>-<model>-<stamp>` count: model `tiny`'s runs are not `tiny-qwen2`'s.
    """
    prefix = f"{slug(suite)}-{slug(model)}-"
    journals = [
        j
        for j in results_dir.glob(f"{glob.escape(prefix)}*.journal.jsonl")
        if _STAMP.fullmatch(j.name.removeprefix(prefix).removesuffix(".journal.jsonl"))
    ]
    journals.sort(key=lambda p: p.stat().st_mtime)
    return [j for j in journals if not Journal.results_path_for(j).exists() and not is_held(j)]


def resolve_paths(suite: str, model: str, opts: RunOptions) -> tuple[Path, str]:
    """Results path and run id: `--output`, else `--run-id`, else `<suite>-<model>-<UTC time>`.

    With `--resume` and neither, the newest unfinished run of this suite and model is picked up.
    An unnamed run refuses to start beside an unfinished one (it would be left behind unnoticed);
    `--fresh` discards those and starts anew. An unnamed run never takes the name of another run's
    results file or journal: a second run of the same second is `<...>-2`, a third `<...>-3`.
    """
    path = named_path(opts)
    if path is not None:
        return path, path.stem
    unfinished = unfinished_runs(suite, model, opts.results_dir)
    if opts.resume:
        if not unfinished:
            raise UserInputError(
                f"--resume: no unfinished run of {suite} on {model} in {opts.results_dir}",
                hint="name it with --run-id or --output",
            )
        path = Journal.results_path_for(unfinished[-1])
        return path, path.stem
    if unfinished and not opts.fresh:
        newest = Journal.results_path_for(unfinished[-1])
        more = f" (and {len(unfinished) - 1} older)" if len(unfinished) > 1 else ""
        raise UserInputError(
            f"an unfinished run of {suite} on {model} exists: {newest}{more}",
            hint=f"continue it with `{resume_command(newest)}`, or discard it and start over with --fresh",
        )
    for journal in unfinished:  # --fresh: the user chose to discard them
        journal.unlink(missing_ok=True)
    path = free_path(opts.results_dir, f"{slug(suite)}-{slug(model)}")
    return path, path.stem


def free_path(results_dir: Path, name: str) -> Path:
    """`<results_dir>/<name>-<UTC time>.json`, or `-2`, `-3`, ... after the time: a name no results file
    or journal has."""
    base = f"{slug(name)}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"
    path, n = results_dir / f"{base}.json", 1
    while path.exists() or Journal.path_for(path).exists():
        n += 1
        path = results_dir / f"{base}-{n}.json"
    return path


def resume_target(opts: RunOptions) -> tuple[Path, ModelConfig]:
    """The suite file and model config a named run was started with, read from its journal header."""
    from llmbench.config.models import ModelConfig
    from llmbench.run.journal import read_journal

    path = named_path(opts)
    if path is None:
        raise UserInputError(
            "--resume without SUITE and --model needs the run's --output (or --run-id)",
            hint="the interrupted run printed the command that continues it",
        )
    journal = Journal.path_for(path)
    if not journal.exists():
        raise UserInputError(f"--resume: no unfinished run at {path} (no journal {journal.name})")
    header = read_journal(journal).header or {}
    if "suite_path" not in header or "model" not in header:
        raise UserInputError(
            f"{journal}: the journal does not say which suite and model it ran",
            hint="give SUITE and --model as the run was started, or start over with --fresh",
        )
    hint = "it was edited; start over with --fresh"
    if not isinstance(header["suite_path"], str):
        raise UserInputError(f"corrupt journal: {journal}: the header's suite_path is not a path", hint=hint)
    try:
        return Path(header["suite_path"]), ModelConfig.model_validate(header["model"])
    except ValidationError as exc:
        raise UserInputError(
            f"corrupt journal: {journal}: the header's {validation_line(exc, prefix='model.')}", hint=hint
        ) from None
