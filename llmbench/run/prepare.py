"""A task, prepared to run: its samples, scorer, prompts and the requests they become."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from llmbench.config.models import ModelConfig
from llmbench.config.serving import TraceWorkload
from llmbench.config.suite import GenerationSpec, Suite, TaskSpec
from llmbench.data.base import DataContext, Sample
from llmbench.data.choice_questions import asked_sample
from llmbench.data.readers import load_samples
from llmbench.data.tool_definitions import tool_definitions
from llmbench.errors import ConfigError
from llmbench.hashing import stable_hash
from llmbench.prompts import build_messages, build_text, template_fingerprint
from llmbench.run.choice_prompts import (
    Asking,
    askings,
    few_shot_pool,
    generative_prompt,
    with_question_fields,
)
from llmbench.scoring.base import Scorer, scorers
from llmbench.types import GenerationRequest


@dataclass
class PreparedTask:
    spec: TaskSpec
    samples: list[Sample]
    scorer: Scorer | None
    generation: GenerationSpec
    requests: list[GenerationRequest] = field(default_factory=list)
    index: dict[str, tuple[Sample, int]] = field(default_factory=dict)  # request id -> (sample, sample index)
    fingerprint: dict[str, str] = field(default_factory=dict)
    # multiple-choice tasks: request id -> the askings of its question (one per rotation when circular)
    askings: dict[str, list[Asking]] = field(default_factory=dict)

    def request(self, request_id: str) -> GenerationRequest | None:
        if len(self._by_id) != len(self.requests):
            self._by_id.update((r.request_id, r) for r in self.requests)
        return self._by_id.get(request_id)

    _by_id: dict[str, GenerationRequest] = field(default_factory=dict, repr=False)


def check_suite(suite: Suite, specs: list[TaskSpec]) -> None:
    """What can be checked before a model loads: every scorer is known, every local data file exists,
    every trace a perf block replays reads (a typo or a malformed line fails here, not after the load).

    Each failure is one line naming the suite file and the line of the offending value.
    """
    from pathlib import Path

    from llmbench.config.yamlio import line_of
    from llmbench.errors import DataError, UserInputError
    from llmbench.run.trace_replay import load_trace

    index = {t.name: i for i, t in enumerate(suite.config.tasks)}
    for spec in specs:
        i = index[spec.name]
        if spec.scorer is not None:
            try:
                scorers.get(spec.scorer.name)
            except UserInputError as exc:
                line = line_of(suite.path, ("tasks", i, "scorer", "name"))
                raise ConfigError(f"{suite.path}:{line}: task '{spec.name}': {exc}") from None
        if spec.dataset is not None and spec.dataset.local is not None:
            path = Path(spec.dataset.local)
            path = path if path.is_absolute() else suite.directory / path
            if not path.exists():
                line = line_of(suite.path, ("tasks", i, "dataset", "local"))
                raise DataError(
                    f"{suite.path}:{line}: task '{spec.name}': {path}: data file not found",
                    hint="paths in a suite are relative to the suite file",
                )
        workload = spec.perf.workload if spec.perf is not None else None
        if isinstance(workload, TraceWorkload):
            try:
                load_trace(workload, suite.directory)
            except DataError as exc:
                line = line_of(suite.path, ("tasks", i, "perf", "workload", "path"))
                raise DataError(
                    f"{suite.path}:{line}: task '{spec.name}': {exc.message}", hint=exc.hint
                ) from None


def make_scorer(spec: TaskSpec, suite: Suite) -> Scorer | None:
    if spec.scorer is None:
        return None
    cls = scorers.get(spec.scorer.name)
    try:
        return cls(**spec.scorer.options)
    except TypeError as exc:
        raise ConfigError(f"{suite.path}: task '{spec.name}': scorer '{spec.scorer.name}': {exc}") from None


def prepare_task(
    spec: TaskSpec,
    suite: Suite,
    model: ModelConfig,
    ctx: DataContext,
    *,
    limit: int | None,
    seed: int,
    chat_template_hash: str | None,
    max_new_tokens: int | None = None,
) -> PreparedTask:
    """Load the samples and build one request per (sample, sample index); `max_new_tokens` overrides every config's."""
    scorer = make_scorer(spec, suite)
    generation = spec.generation.merged(suite.config.generation, model.generation)
    if max_new_tokens is not None:
        generation = generation.model_copy(update={"max_new_tokens": max_new_tokens})
    task_ctx = replace(ctx, prompt=spec.prompt)  # generators that size prompts measure this one
    samples = load_samples(spec.dataset, task_ctx) if spec.dataset is not None and spec.perf is None else []
    if limit is not None:
        samples = samples[:limit]
    where = f"{suite.path}: task '{spec.name}'"
    pool = []
    if spec.choices is not None:
        samples = with_question_fields(samples, where)
        pool = few_shot_pool(spec, task_ctx, where)
    task = PreparedTask(spec, samples, scorer, generation)
    n = generation.n or 1
    base_seed = generation.seed if generation.seed is not None else seed
    for sample in samples:
        schema = _json_schema(spec, sample, where)
        reference = scorer.reference_output(sample) if scorer else None
        if spec.choices is not None:
            _add_askings(task, sample, askings(spec, sample, pool, where), base_seed)
            continue
        if spec.prompt.mode == "chat":
            prompt: dict[str, Any] = {"messages": build_messages(spec.prompt, sample, where=where)}
            prompt |= _tools(spec, sample, where)
        else:
            prompt = {"prompt": build_text(spec.prompt, sample, where=where)}
        if sample.prompt_token_ids is not None:
            prompt = {"prompt_token_ids": sample.prompt_token_ids}
        for k in range(n):
            rid = f"{spec.name}/{sample.id}/{k}"
            params = generation.to_params(base_seed + k, schema, spec.reasoning_markers)
            task.requests.append(
                GenerationRequest(request_id=rid, params=params, reference_output=reference, **prompt)
            )
            task.index[rid] = (sample, k)
    task.fingerprint = {
        "dataset": stable_hash(spec.dataset.model_dump() if spec.dataset else None),
        "data": stable_hash([(s.id, s.fields, s.reference) for s in samples]),  # the content, wherever from
        "prompt_template": template_fingerprint(spec.prompt)
        + (stable_hash(spec.choices.model_dump()) if spec.choices else ""),
        "generation": stable_hash(generation.fingerprinted() | _modes(spec)),
        "scorer": stable_hash(spec.scorer.model_dump() if spec.scorer else None),
        "chat_template": (chat_template_hash or "none") if spec.prompt.mode == "chat" else "not-used",
    }
    return task


def _add_askings(task: PreparedTask, sample: Sample, asked: list[Asking], seed: int) -> None:
    """A multiple-choice question: the generative variant asks each rotation as its own request
    (`.../r`, the rotated letter as reference); the log-likelihood path scores them all under `.../0`."""
    spec = task.spec
    task.askings[f"{spec.name}/{sample.id}/0"] = asked
    for r, asking in enumerate(asked):
        rid = f"{spec.name}/{sample.id}/{r}"
        rotated = asked_sample(sample, asking.question)
        task.requests.append(
            GenerationRequest(
                request_id=rid,
                params=task.generation.to_params(seed, None, task.spec.reasoning_markers),
                reference_output=str(rotated.reference),
                **generative_prompt(spec, asking),
            )
        )
        task.index[rid] = (rotated, r)


def _modes(spec: TaskSpec) -> dict[str, bool]:
    """The task's request modes, for its generation fingerprint (tools named only where on: older runs keep
    their fingerprints)."""
    return {"json_mode": spec.json_mode} | ({"tools": True} if spec.tools else {})


def _tools(spec: TaskSpec, sample: Sample, where: str) -> dict[str, Any]:
    """The request's `tools` where the task is a tool-calling one: the sample's functions, checked."""
    if not spec.tools:
        return {}
    return {"tools": tool_definitions(sample.fields.get("tools"), f"{where}: sample '{sample.id}'")}


def _json_schema(spec: TaskSpec, sample: Sample, where: str) -> dict[str, Any] | None:
    if not spec.json_mode:
        return None
    schema = sample.fields.get("schema")
    if isinstance(schema, str):
        import json

        try:
            schema = json.loads(schema)
        except (ValueError, RecursionError):
            raise ConfigError(f"{where}: sample {sample.id}'s 'schema' is not valid JSON") from None
    if not isinstance(schema, dict):
        raise ConfigError(f"{where}: json_mode needs a 'schema' object in every sample (sample {sample.id})")
    return schema
