"""Rendering prompts to the exact token ids a backend generates from: many at once as one at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench.backends.common import load_tokenizer, prompt_ids, prompts_ids
from llmbench.config.models import ModelConfig
from llmbench.errors import BackendError
from llmbench.types import GenerationParams, GenerationRequest

PARAMS = GenerationParams(max_new_tokens=4)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_path: Path) -> object:
    return load_tokenizer(ModelConfig(name="tiny", model=str(tiny_model_path)), str(tiny_model_path))


def mixed() -> list[GenerationRequest]:
    return [
        GenerationRequest("chat", PARAMS, messages=({"role": "user", "content": "What is 2 + 2?"},)),
        GenerationRequest("text", PARAMS, prompt="The quick brown fox"),
        GenerationRequest("ids", PARAMS, prompt_token_ids=(5, 17, 42)),
        GenerationRequest("long", PARAMS, messages=({"role": "user", "content": "naïve café " * 300},)),
        GenerationRequest("empty", PARAMS, prompt=""),
    ]


def test_rendering_many_at_once_gives_each_the_ids_it_gets_alone(tokenizer: object) -> None:
    together = prompts_ids(tokenizer, mixed())
    assert together == [prompt_ids(tokenizer, r) for r in mixed()]
    ids, text = together[0]  # type: ignore[misc]
    assert (
        text is not None
        and text.startswith("<|im_start|>")
        and ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    )  # type: ignore[attr-defined]
    assert together[2] == ([5, 17, 42], None)


def test_a_conversation_the_template_refuses_fails_alone(tokenizer: object) -> None:
    import copy

    strict = copy.deepcopy(tokenizer)
    strict.chat_template = (  # type: ignore[attr-defined]
        "{% if messages[0]['content'] == 'boom' %}{{ raise_exception('no bombs here') }}{% endif %}"
        + tokenizer.chat_template  # type: ignore[attr-defined]
    )
    requests = [*mixed(), GenerationRequest("boom", PARAMS, messages=({"role": "user", "content": "boom"},))]
    results = prompts_ids(strict, requests)
    assert isinstance(results[-1], Exception) and "no bombs here" in str(results[-1])
    assert results[:-1] == [prompt_ids(tokenizer, r) for r in mixed()]
    with pytest.raises(Exception, match="no bombs here"):
        prompt_ids(strict, requests[-1])


def test_without_a_tokenizer_only_token_ids_render() -> None:
    results = prompts_ids(None, mixed())
    assert results[2] == ([5, 17, 42], None)
    assert all(isinstance(r, BackendError) for i, r in enumerate(results) if i != 2)
