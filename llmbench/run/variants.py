"""Runs of one suite that differ in one thing: a repeat, a batch size, a backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from uuid import uuid4

from llmbench.config.models import ModelConfig


@dataclass(frozen=True)
class Variant:
    """One run of a set that differ in one thing (a repeat, a batch size, a backend)."""

    label: str
    model: ModelConfig


def repeat_group() -> str:
    """A new name for the runs of one `--repeat N` (settings.repeat_of): its time and a random part."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid4().hex[:8]}"


def variants(cfg: ModelConfig, *, repeat: int = 1, batch_sizes: Sequence[int] = ()) -> list[Variant]:
    """`repeat` runs per batch size (or of the config as it is), labelled `bs16-r2` or `r2`."""
    sizes: Sequence[int | None] = batch_sizes or [None]
    return [
        Variant(
            f"{'bs' + str(b) + '-' if b else ''}r{i + 1}",
            cfg.model_copy(update={"batch_size": b, "max_num_seqs": b}) if b else cfg,
        )
        for b in sizes
        for i in range(repeat)
    ]
