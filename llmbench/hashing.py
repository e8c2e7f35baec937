"""Content hashes that make runs comparable: stable across processes, machines and Python versions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any


def stable_hash(obj: Any) -> str:
    """Short, stable content hash of any JSON-able object (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def token_ids_hash(ids: Sequence[int]) -> str:
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]
