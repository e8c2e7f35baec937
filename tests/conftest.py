"""Test-wide settings: one shared cache for tiny-qwen2 and generated data, and no hub access."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("LLMBENCH_CACHE", str(ROOT / ".llmbench-cache"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
# Off, or one test's answers (and missing timings) would be another's; tests of the cache turn it on.
os.environ.setdefault("LLMBENCH_NO_CACHE", "1")


@pytest.fixture(scope="module")
def tiny_transformers() -> Iterator[Any]:
    """tiny-qwen2 loaded once per test module through the Transformers backend."""
    from llmbench.backends.transformers import TransformersBackend
    from llmbench.config.models import resolve_model
    from llmbench.testing.tinymodel import resolve_model_path

    cfg = resolve_model("tiny-qwen2")
    backend = TransformersBackend(cfg, resolve_model_path(cfg))
    backend.load()
    yield backend
    backend.close()
