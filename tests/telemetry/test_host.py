"""The host's load and torch's thread count go into the results, with a warning when the host is oversubscribed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmbench.telemetry import host
from llmbench.telemetry.host import LoadWatch, set_torch_threads, torch_threads


@pytest.fixture
def torch_threads_restored() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_load_above_the_usable_cpus_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host.os, "getloadavg", lambda: (5.0, 3.0, 1.0))
    watch = LoadWatch(cpus=2)
    watch.mark()
    assert watch.facts()["peak_load_1m"] == 5.0 and watch.facts()["usable_cpus"] == 2
    (warning,) = [w for w in watch.warnings() if "oversubscribed" in w]
    assert "load 5.0 on 2 CPU(s)" in warning


def test_a_host_that_keeps_up_gives_no_load_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host.os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    watch = LoadWatch(cpus=2)
    watch.mark()
    assert not [w for w in watch.warnings() if "oversubscribed" in w]


def test_more_torch_threads_than_cpus_warns(torch_threads_restored: None) -> None:
    set_torch_threads(3)
    assert torch_threads() == 3
    assert any("torch uses 3 threads on 2" in w for w in LoadWatch(cpus=2).warnings())


def test_the_model_config_sets_torch_threads(torch_threads_restored: None) -> None:
    from llmbench.backends.transformers import TransformersBackend
    from llmbench.config.models import ModelConfig
    from llmbench.testing.tinymodel import ensure_tiny_model

    tiny_model_path = ensure_tiny_model()

    config = ModelConfig(name="tiny", model=str(tiny_model_path), threads=1)
    backend = TransformersBackend(config, str(tiny_model_path))
    backend.load()
    try:
        assert torch_threads() == 1
    finally:
        backend.close()
