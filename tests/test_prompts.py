"""Prompt templates: Jinja2 over sample fields, few-shot turns, clear errors for missing fields."""

from __future__ import annotations

import pytest

from llmbench.config.suite import FewShot, PromptSpec
from llmbench.data.base import Sample
from llmbench.errors import ConfigError
from llmbench.prompts import build_messages, build_text, template_fingerprint

SAMPLE = Sample(id="1", fields={"question": "2+2?", "items": [1, 2]})


def test_chat_messages_with_system_and_few_shot() -> None:
    spec = PromptSpec(
        system="Be brief.", template="Q: {{ question }}", few_shot=[FewShot(user="1+1?", assistant="2")]
    )
    msgs = build_messages(spec, SAMPLE, where="t")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[-1]["content"] == "Q: 2+2?"


def test_completion_text_with_prefix() -> None:
    spec = PromptSpec(template="Q: {{ question }}\nA:", mode="completion", assistant_prefix=" ")
    assert build_text(spec, SAMPLE, where="t") == "Q: 2+2?\nA: "


def test_missing_field_names_task_and_available_fields() -> None:
    with pytest.raises(ConfigError, match=r"task x: template uses a field.*'answer'") as err:
        build_messages(PromptSpec(template="{{ answer }}"), SAMPLE, where="task x")
    assert "question" in str(err.value)


def test_template_cannot_reach_python_internals() -> None:
    spec = PromptSpec(template="{{ question.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(Exception, match=r"unsafe|not safely|access"):
        build_messages(spec, SAMPLE, where="t")


def test_fingerprint_changes_with_template() -> None:
    assert template_fingerprint(PromptSpec(template="a")) != template_fingerprint(PromptSpec(template="b"))
