"""Generations kept across runs: a quality run looks each request up before the backend sees it, and stores
what the backend finished without error.

Only what repeats is cached: greedy requests, and sampled ones that carry a seed on a backend that declares
`seeded_sampling_repeats` (the same seed gives the same tokens). A cached answer has no timings: its
sample says which run generated it (`cached_from`), and latency figures leave it out. Performance
measurements never read or write the cache. The store is one SQLite file under $LLMBENCH_CACHE
(`gen_store`); `--no-cache`, or LLMBENCH_NO_CACHE=1 in the environment, turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmbench.errors import UserInputError
from llmbench.run.gen_cache_keys import (
    ModelIdentity,
    files_fingerprint,
    kept,
    model_identity,
    request_key,
    restored,
)
from llmbench.run.gen_store import (
    CacheStore,
    ModelEntries,
    NewGeneration,
    StoredGeneration,
    StoreUnusable,
)
from llmbench.testing.tinymodel import cache_root
from llmbench.types import Completion, GenerationRequest

if TYPE_CHECKING:
    from llmbench.backends.base import BackendInfo
    from llmbench.config.models import ModelConfig
    from llmbench.results.schema import SampleRecord

OFF_ENV = "LLMBENCH_NO_CACHE"  # set to 1: no run reads or writes the cache (as --no-cache)
SEEDED_ATTR = "seeded_sampling_repeats"  # a backend's class attribute: a seeded sampled request repeats


def store_path() -> Path:
    return cache_root() / "generations.sqlite"


@dataclass(frozen=True)
class CachedGeneration:
    """A request answered from the cache: the completion (no timings) and the run that generated it."""

    completion: Completion
    source_run: str


class GenerationCache:
    """One run's view of the store, for one loaded model; an `off()` cache answers nothing and keeps nothing."""

    def __init__(
        self,
        store: CacheStore | None,
        model: ModelIdentity | None,
        *,
        seeded_ok: bool,
        run_id: str,
        warn: Callable[[str], None],
    ) -> None:
        self.store = store
        self.model = model
        self.seeded_ok = seeded_ok
        self.run_id = run_id
        self.warn = warn
        self.opened = store is not None and model is not None  # the run used the cache (if only at first)

    @classmethod
    def off(cls) -> GenerationCache:
        return cls(None, None, seeded_ok=False, run_id="", warn=lambda _: None)

    def cacheable(self, request: GenerationRequest) -> bool:
        """Greedy, or sampled with a seed on a backend whose seeded sampling repeats."""
        params = request.params
        return params.temperature == 0 or (params.seed is not None and self.seeded_ok)

    def look_up(self, requests: Sequence[GenerationRequest]) -> dict[str, CachedGeneration]:
        """The requests the cache can answer, by request id."""
        if self.store is None or self.model is None:
            return {}
        keys = {r.request_id: request_key(self.model.key, r) for r in requests if self.cacheable(r)}
        try:
            stored = self.store.get(sorted(set(keys.values())))
        except StoreUnusable as exc:
            self._give_up(exc)
            return {}
        found = {rid: _restore(rid, stored[key]) for rid, key in keys.items() if key in stored}
        return {rid: hit for rid, hit in found.items() if hit is not None}

    def keep(self, requests: Mapping[str, GenerationRequest], completions: Sequence[Completion]) -> None:
        """Store the completions that finished without error (called off the generating thread)."""
        store, model = self.store, self.model
        if store is None or model is None:
            return
        items = [
            NewGeneration(
                request_key(model.key, req), model.name, model.source, model.files_fp, self.run_id, kept(c)
            )
            for c in completions
            if c.error is None
            and c.finish_reason != "error"
            and (req := requests.get(c.request_id)) is not None
            and self.cacheable(req)
        ]
        try:
            store.put(items)
        except StoreUnusable as exc:
            self._give_up(exc)

    def _give_up(self, exc: StoreUnusable) -> None:
        """One line, then the run goes on without the cache."""
        if self.store is not None:
            self.store = None
            self.warn(unusable_line(exc))


def _restore(request_id: str, entry: StoredGeneration) -> CachedGeneration | None:
    """The cached answer, or None (a miss) where the entry no longer fits what a completion holds."""
    try:
        return CachedGeneration(restored(request_id, entry.completion), entry.run_id)
    except ValueError:  # pydantic's ValidationError: a field changed its type since the entry was written
        return None


def open_generation_cache(
    model: ModelConfig,
    model_path: str,
    info: BackendInfo,
    environment: dict[str, Any],
    backend: object,
    run_id: str,
    warn: Callable[[str], None],
) -> GenerationCache:
    """The run's cache for its loaded model; off where the backend's answers are not a model's (reference),
    where the model cannot be fingerprinted, or where the store cannot be opened (said in one line)."""
    if os.environ.get(OFF_ENV, "").strip() not in ("", "0") or not info.measures_model:
        return GenerationCache.off()
    store = CacheStore(store_path())
    try:
        identity = model_identity(model, model_path, info, dict(environment.get("packages") or {}), store)
    except StoreUnusable as exc:
        warn(unusable_line(exc))
        return GenerationCache.off()
    except OSError as exc:
        warn(f"generation cache off for this run: the model's files cannot be read ({exc})")
        return GenerationCache.off()
    if isinstance(identity, str):
        warn(f"generation cache off for this run: {identity}")
        return GenerationCache.off()
    seeded_ok = bool(getattr(type(backend), SEEDED_ATTR, False))
    return GenerationCache(store, identity, seeded_ok=seeded_ok, run_id=run_id, warn=warn)


def unusable_line(exc: StoreUnusable) -> str:
    hint = f" ({exc.hint})" if exc.hint else ""
    return f"{exc.message}: this run goes on without the cache{hint}"


def cached_count(cache: GenerationCache, records: Sequence[SampleRecord]) -> int | None:
    """How many of the run's samples came from the cache; None where the run did not use it."""
    n = sum(1 for r in records if r.cached_from is not None)
    return n if cache.opened or n else None


@dataclass(frozen=True)
class CacheReport:
    """What `llmbench cache info` shows."""

    path: Path
    size_bytes: int
    models: list[ModelEntries]

    @property
    def entries(self) -> int:
        return sum(m.entries for m in self.models)


def cache_info() -> CacheReport:
    """What the generation cache holds: its file, its size, and entries per model."""
    store = CacheStore(store_path())
    if not store.path.exists():
        return CacheReport(store.path, 0, [])
    try:
        return CacheReport(store.path, store.size_bytes(), store.models())
    finally:
        store.close()


def cache_prune(*, older_than_days: float | None = None, missing_models: bool = False) -> int:
    """Remove entries older than `older_than_days`, and (with `missing_models`) those of models whose
    files are gone or no longer what they were; returns how many went."""
    if older_than_days is None and not missing_models:
        raise UserInputError("prune what? give --older-than-days N, --missing-models, or both")
    store = CacheStore(store_path())
    if not store.path.exists():
        return 0
    try:
        gone = [(m.model_source, m.files_fp) for m in store.models() if missing_models and _gone(m, store)]
        older = older_than_days * 86_400 if older_than_days is not None else None
        return store.delete(older, gone)
    finally:
        store.close()


def _gone(entries: ModelEntries, store: CacheStore) -> bool:
    """The model's files are no longer on this host, or their content changed since the entries were made."""
    source, _, commit = entries.model_source.rpartition("@")
    if entries.files_fp == f"hub:{commit}" and not Path(entries.model_source).is_dir():
        now = files_fingerprint(source, commit, store)
    else:
        now = files_fingerprint(entries.model_source, None, store)
    return now is None or now[1] != entries.files_fp


def cache_clear() -> int:
    """Remove every entry; returns how many went."""
    store = CacheStore(store_path())
    if not any(p.exists() for p in store.files()):
        return 0
    try:
        return store.clear()
    finally:
        store.close()
