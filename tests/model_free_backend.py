"""A backend without a model, for tests of what measures backends (the sweep, the saturation search).

The Backend protocol is done here once; a test's subclass says how each call is answered in `answer`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from llmbench.backends.base import BackendInfo
from llmbench.types import Completion, GenerationRequest


class ModelFreeBackend:
    name: ClassVar[str] = "model-free"

    def load(self) -> BackendInfo:
        return BackendInfo(backend=self.name, model=self.name)

    @property
    def tokenizer(self) -> Any:
        return None

    def close(self) -> None:
        pass

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        concurrency: int | None = None,
        arrival_offsets_s: Sequence[float] | None = None,
    ) -> Iterator[Completion]:
        offsets = list(arrival_offsets_s) if arrival_offsets_s is not None else None
        return self.answer(list(requests), concurrency, offsets)

    def answer(
        self, requests: list[GenerationRequest], concurrency: int | None, offsets: list[float] | None
    ) -> Iterator[Completion]:
        """The completions of one call, in any order; `offsets`: each request's arrival, in seconds."""
        raise NotImplementedError(f"{type(self).__name__} answers no call")
