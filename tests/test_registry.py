"""The plugin registry: names map to plugins, duplicates are refused, unknown names get a suggestion."""

from __future__ import annotations

import pytest

from llmbench.errors import UserInputError
from llmbench.registry import Registry


def test_register_and_get() -> None:
    reg: Registry[int] = Registry("thing")
    reg.add("one", 1)
    assert reg.get("one") == 1
    assert reg.names() == ["one"]


def test_duplicate_name_refused() -> None:
    reg: Registry[int] = Registry("thing")
    reg.add("one", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("one", 2)
    with pytest.raises(ValueError, match="already registered"):
        reg.add_lazy("one", "json:dumps")


def test_unknown_name_suggests_the_closest() -> None:
    reg: Registry[int] = Registry("scorer")
    reg.add("math", 1)
    with pytest.raises(UserInputError, match=r"unknown scorer 'maths'.*did you mean 'math'"):
        reg.get("maths")


def test_lazy_entry_is_imported_only_when_asked_for() -> None:
    reg: Registry[object] = Registry("thing")
    reg.add_lazy("dumps", "json:dumps")
    assert "dumps" in reg
    import json

    assert reg.get("dumps") is json.dumps


def test_shipped_registries_name_every_plugin() -> None:
    from llmbench.backends import backends
    from llmbench.data import generators, sources
    from llmbench.scoring import scorers

    assert {"transformers", "vllm", "openai", "reference"} <= set(backends.names())
    assert {"exact", "code", "math", "json", "instructions", "multilingual", "needle"} <= set(scorers.names())
    assert {"local", "hf", "builtin"} <= set(sources.names())
    assert {"humaneval", "needle", "docqa"} <= set(generators.names())


def test_loading_a_source_module_leaves_the_registry_in_place() -> None:
    import importlib

    import llmbench.data
    from llmbench.registry import Registry

    importlib.import_module("llmbench.data.readers")  # what a lazy registry entry does on first use
    assert isinstance(llmbench.data.sources, Registry)
    assert llmbench.data.sources.get("local").__name__ == "LocalSource"
