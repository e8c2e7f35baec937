"""Shared fixtures for the vLLM and OpenAI backend tests: tiny-qwen2, and ONE real vLLM server per session.

vLLM processes are heavy on a small machine, so never two at once: the in-process engine tests
run before the server tests (see the ordering hook), and every server test shares one server.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmbench.backends.base import BackendInfo
from llmbench.backends.openai import OpenAIBackend
from llmbench.config.models import ModelConfig
from llmbench.testing.tinymodel import ensure_tiny_model

_FILE_ORDER = {
    "test_vllm.py": 0,
    "test_loglik_vllm.py": 0,
    "test_load_state.py": 0,
    "test_openai.py": 1,
    "test_loglik_openai.py": 1,
    "test_saturation_served.py": 1,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the in-process engine tests (which close their engine) before the shared server starts."""
    slots = [i for i, item in enumerate(items) if item.path.name in _FILE_ORDER]
    ordered = sorted((items[i] for i in slots), key=lambda item: _FILE_ORDER[item.path.name])
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item


@pytest.fixture(scope="session")
def tiny_model_path() -> Path:
    return ensure_tiny_model()


@dataclass
class ServedModel:
    """The session's vLLM server, started in managed mode by an OpenAI backend."""

    backend: OpenAIBackend
    info: BackendInfo
    base_url: str
    config: ModelConfig


@pytest.fixture(scope="session")
def served(tiny_model_path: Path) -> Iterator[ServedModel]:
    """Start ONE vLLM OpenAI server on a free loopback port (managed mode: no base_url), stop it at the end."""
    pytest.importorskip("vllm")
    # float32 as the tiny-qwen2 alias pins it: vLLM's "auto" casts a float32 checkpoint down to
    # bfloat16 on x86 CPUs, which moved option log-probs by about 1e-3 nats against Transformers.
    config = ModelConfig(
        name="tiny", backend="openai", model=str(tiny_model_path), max_model_len=1024, dtype="float32"
    )
    backend = OpenAIBackend(config, str(tiny_model_path))
    info = backend.load()
    assert backend.base_url is not None
    server = backend._server
    assert server is not None and server.process is not None
    yield ServedModel(backend=backend, info=info, base_url=backend.base_url, config=config)
    backend.close()
    assert server.process.poll() is not None, "the managed server outlived close()"
