"""The generation cache's one local store: an SQLite file in WAL mode, shared by every run on the host.

A study's worker processes read and write it at once: each holds its own connection, waits up to
`BUSY_TIMEOUT_MS` for another's write, and writes in short transactions (one chunk of completions).
Any SQLite failure (a corrupt file, a full disk, a lock held too long) becomes `StoreUnusable`, which
the run turns into one line before it goes on without the cache.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmbench.errors import LLMBenchError

STORE_FORMAT = 1  # PRAGMA user_version: a store written by a newer llmbench is left alone
BUSY_TIMEOUT_MS = 30_000
_KEYS_PER_QUERY = 500  # below SQLite's oldest limit on bound parameters (999)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS generations (
        key TEXT PRIMARY KEY,
        model_name TEXT NOT NULL,
        model_source TEXT NOT NULL,
        files_fp TEXT NOT NULL,
        run_id TEXT NOT NULL,
        created_s REAL NOT NULL,
        completion TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS generations_model ON generations (model_source, files_fp)",
    """CREATE TABLE IF NOT EXISTS file_hashes (
        path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,
        sha256 TEXT NOT NULL)""",
)


class StoreUnusable(LLMBenchError):
    """The store cannot be read or written; the message names the file and SQLite's reason."""


@dataclass(frozen=True)
class StoredGeneration:
    """One cached generation: the completion's fields (no timings) and the run that generated it."""

    key: str
    completion: dict[str, Any]
    run_id: str


@dataclass(frozen=True)
class ModelEntries:
    """What the store holds for one model (one content fingerprint of its files)."""

    model_name: str
    model_source: str  # the model directory, or `hub-id@revision`
    files_fp: str
    entries: int
    bytes: int  # of the stored completions (the file's own overhead comes on top)
    newest_s: float  # when the newest entry was written (Unix time)


@dataclass(frozen=True)
class NewGeneration:
    """A completion to store, with the model it came from and the run that generated it."""

    key: str
    model_name: str
    model_source: str
    files_fp: str
    run_id: str
    completion: dict[str, Any]


class CacheStore:
    """The SQLite file at `path`; opened on first use, one connection per process, guarded by a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # the generating thread looks up, the scoring thread writes

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connection()
            except (sqlite3.Error, OSError) as exc:  # a corrupt file, a full disk, a folder it cannot write
                corrupt = type(exc) is sqlite3.DatabaseError  # not a lock held too long, a full disk, ...
                hint = "`llmbench cache clear` starts a new store" if corrupt else None
                raise StoreUnusable(f"generation cache {self.path}: {exc}", hint=hint) from None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            try:
                _prepare(db, self.path)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def get(self, keys: Sequence[str]) -> dict[str, StoredGeneration]:
        """The stored generations among `keys`."""
        found: dict[str, StoredGeneration] = {}
        with self._session() as db:
            for i in range(0, len(keys), _KEYS_PER_QUERY):
                part = keys[i : i + _KEYS_PER_QUERY]
                rows = db.execute(
                    f"SELECT key, completion, run_id FROM generations WHERE key IN ({','.join('?' * len(part))})",
                    part,
                ).fetchall()
                found |= {k: StoredGeneration(k, json.loads(c), run) for k, c, run in rows}
        return found

    def put(self, items: Sequence[NewGeneration]) -> None:
        """Store `items` in one short transaction (a later write of the same key replaces it)."""
        if not items:
            return
        now = time.time()
        rows = [
            (g.key, g.model_name, g.model_source, g.files_fp, g.run_id, now, json.dumps(g.completion))
            for g in items
        ]
        with self._session() as db, _transaction(db):
            db.executemany("INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def file_hash(self, path: str, size: int, mtime_ns: int, inode: int) -> str | None:
        """The sha256 remembered for `path` while its size, modification time and inode are unchanged."""
        with self._session() as db:
            row = db.execute(
                "SELECT sha256 FROM file_hashes WHERE path = ? AND size = ? AND mtime_ns = ? AND inode = ?",
                (path, size, mtime_ns, inode),
            ).fetchone()
        return str(row[0]) if row else None

    def remember_file_hash(self, path: str, size: int, mtime_ns: int, inode: int, sha256: str) -> None:
        with self._session() as db:
            db.execute(
                "INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?, ?)",
                (path, size, mtime_ns, inode, sha256),
            )

    def models(self) -> list[ModelEntries]:
        """The models the store holds generations of, most entries first."""
        with self._session() as db:
            rows = db.execute(
                "SELECT model_name, model_source, files_fp, count(*), sum(length(completion)), max(created_s)"
                " FROM generations GROUP BY model_source, files_fp, model_name ORDER BY count(*) DESC"
            ).fetchall()
        return [ModelEntries(*row) for row in rows]

    def delete(self, older_than_s: float | None = None, models: Sequence[tuple[str, str]] = ()) -> int:
        """Remove entries written more than `older_than_s` ago and those of `models` ((source, files_fp)
        pairs); returns how many went."""
        removed = 0
        with self._session() as db, _transaction(db):
            if older_than_s is not None:
                cut = time.time() - older_than_s
                removed += db.execute("DELETE FROM generations WHERE created_s < ?", (cut,)).rowcount
            for source, files_fp in models:
                removed += db.execute(
                    "DELETE FROM generations WHERE model_source = ? AND files_fp = ?", (source, files_fp)
                ).rowcount
        return removed

    def clear(self) -> int:
        """Remove every entry (and the remembered file hashes); returns how many generations went.

        A store SQLite cannot read is removed as a whole, so a corrupt file never blocks a new one.
        """
        try:
            with self._session() as db, _transaction(db):
                removed = db.execute("DELETE FROM generations").rowcount
                db.execute("DELETE FROM file_hashes")
            with self._session() as db:
                db.execute("VACUUM")
            return int(removed)
        except StoreUnusable:
            self.close()
            for path in self.files():
                path.unlink(missing_ok=True)
            return 0

    def files(self) -> list[Path]:
        """The store's file and SQLite's companions beside it (write-ahead log, shared memory)."""
        return [self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))]

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files() if p.exists())

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _prepare(db: sqlite3.Connection, path: Path) -> None:
    """WAL (readers never wait for a writer), a busy timeout for writers, the schema on first use."""
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")  # WAL stays consistent; a power cut may lose the last writes
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > STORE_FORMAT:
        raise sqlite3.DatabaseError(f"written by a newer llmbench (store format {version})")
    if version < STORE_FORMAT:
        with _transaction(db):
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {STORE_FORMAT}")


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front (waiting up to the busy timeout)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
