"""Samples and the dataset-source interface: where a task's records come from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from llmbench.registry import Registry

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from llmbench.config.suite import DatasetSpec, PromptSpec


@dataclass(frozen=True)
class Sample:
    """One record of a task: its fields feed the prompt template, `reference` feeds the scorer."""

    id: str
    fields: dict[str, Any]
    reference: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    prompt_token_ids: tuple[int, ...] | None = None  # pre-tokenized prompts (performance suite)


@dataclass
class DataContext:
    """What a source may need beyond its spec: where the suite lives, the model's tokenizer, the seed."""

    suite_dir: Path
    seed: int = 0
    count_tokens: Callable[[str], int] | None = None
    tokenizer: Any = None  # a Hugging Face tokenizer where one is available (long-context, perf)
    max_model_len: int | None = None
    offline: bool = False
    prompt: PromptSpec | None = None  # the task's prompt: generators that size prompts must measure it


class DataSource(Protocol):
    """Turns a task's dataset spec into samples."""

    name: ClassVar[str]

    def load(self, spec: DatasetSpec, ctx: DataContext) -> list[Sample]: ...


class Generator(Protocol):
    """A built-in data generator, named in YAML as `dataset: {builtin: NAME, options: {...}}`."""

    def __call__(self, options: dict[str, Any], ctx: DataContext) -> list[Sample]: ...


sources: Registry[type[DataSource]] = Registry("dataset source")
generators: Registry[Generator] = Registry("built-in dataset")
