"""Shards of one quality run: the samples split by a stable hash of their ids, so that every worker,
on any node and after any restart, picks the same samples, and the shards together are the whole run."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from llmbench.run.prepare import PreparedTask


def shard_of(sample_id: str, n: int) -> int:
    """Which of `n` shards a sample belongs to; all of a sample's generations stay together."""
    digest = hashlib.sha256(sample_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n


def shard_task(task: PreparedTask, index: int, n: int) -> PreparedTask:
    """The part of a prepared task that shard `index` of `n` runs (its fingerprints are the whole task's)."""
    keep = {rid for rid, (sample, _k) in task.index.items() if shard_of(sample.id, n) == index}
    return replace(
        task,
        samples=[s for s in task.samples if shard_of(s.id, n) == index],
        requests=[r for r in task.requests if r.request_id in keep],
        index={rid: v for rid, v in task.index.items() if rid in keep},
        _by_id={},
    )
