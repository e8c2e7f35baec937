"""With --base-url, --model is the name the server serves: any name it lists is accepted, others are
refused in one line that lists what it serves."""

from __future__ import annotations

import pytest

from llmbench.backends.openai import OpenAIBackend
from llmbench.config.models import ApiSpec, resolve_model
from llmbench.errors import UserInputError
from tests.backends.faulty_server import FaultyServer


@pytest.mark.parametrize("name", ["gpt-4o-mini", "llama3.1:8b", "my-served-name", "org/model"])
def test_any_served_name_is_a_model_with_a_base_url(name: str) -> None:
    config = resolve_model(name, served=True)
    assert config.model == name and config.backend == "openai"


def test_an_alias_stays_an_alias_with_a_base_url() -> None:
    assert resolve_model("tiny-qwen2", served=True).builtin == "tiny-qwen2"


def backend(server: FaultyServer, name: str) -> OpenAIBackend:
    config = resolve_model(name, served=True).model_copy(update={"api": ApiSpec(base_url=server.base_url)})
    return OpenAIBackend(config, name)


def test_a_name_the_server_serves_loads() -> None:
    with FaultyServer("ok") as server:
        b = backend(server, "faulty")
        try:
            assert b.load().extra["served_models"] == ["faulty"]
        finally:
            b.close()


def test_a_name_the_server_does_not_serve_is_refused_with_its_names() -> None:
    with FaultyServer("ok") as server, pytest.raises(UserInputError) as info:
        backend(server, "faulty-7b").load()
    message = str(info.value)
    assert "does not serve a model named 'faulty-7b'" in message and "it serves: faulty" in message
    assert "did you mean faulty?" in message and "\n" not in message
    assert info.value.exit_code == 2
