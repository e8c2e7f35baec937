"""A process that writes to the generation cache's store while others do (imports nothing heavy)."""

from __future__ import annotations

from pathlib import Path

from llmbench.run.gen_store import CacheStore, NewGeneration


def write_entries(path: str, worker: int, n: int) -> None:
    """`n` entries, one short transaction each, each read back at once."""
    store = CacheStore(Path(path))
    for i in range(n):
        key = f"{worker}-{i}"
        store.put([NewGeneration(key, "m", "/m", "fp", f"run-{worker}", {"text": key})])
        assert key in store.get([key])
    store.close()
