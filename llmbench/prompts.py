"""Turning a sample into a prompt: Jinja2 templates over the sample's fields, few-shot turns, chat or plain."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2
import jinja2.sandbox

from llmbench.config.suite import PromptSpec
from llmbench.data.base import Sample
from llmbench.errors import ConfigError
from llmbench.hashing import stable_hash
from llmbench.types import Message


@lru_cache(maxsize=1)
def _env() -> jinja2.sandbox.SandboxedEnvironment:
    # Sandboxed: templates come from suite files, which may come from anyone.
    env = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["tojson_pretty"] = lambda v: __import__("json").dumps(v, indent=2, ensure_ascii=False)
    return env


@lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    return _env().from_string(source)


def render(source: str, fields: dict[str, Any], *, where: str) -> str:
    """Render one template; a missing field or a syntax error names the task and the field."""
    try:
        return _compile(source).render(**fields)
    except jinja2.UndefinedError as exc:
        raise ConfigError(
            f"{where}: template uses a field the sample does not have ({exc.message})",
            hint=f"fields available: {', '.join(sorted(fields))}",
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"{where}: template syntax error at template line {exc.lineno}: {exc.message}"
        ) from None


def build_messages(spec: PromptSpec, sample: Sample, *, where: str) -> tuple[Message, ...]:
    """Chat mode: optional system prompt, few-shot user/assistant turns, then the sample's user turn."""
    messages: list[Message] = []
    if spec.system:
        messages.append({"role": "system", "content": render(spec.system, sample.fields, where=where)})
    for shot in spec.few_shot:
        messages.append({"role": "user", "content": shot.user})
        messages.append({"role": "assistant", "content": shot.assistant})
    messages.append({"role": "user", "content": render(spec.template, sample.fields, where=where)})
    return tuple(messages)


def build_text(spec: PromptSpec, sample: Sample, *, where: str) -> str:
    """Completion mode: system text, few-shot pairs and the sample, joined as plain text."""
    parts: list[str] = []
    if spec.system:
        parts.append(render(spec.system, sample.fields, where=where))
    for shot in spec.few_shot:
        parts.append(f"{shot.user}{shot.assistant}")
    parts.append(render(spec.template, sample.fields, where=where) + (spec.assistant_prefix or ""))
    return "\n\n".join(parts)


def template_fingerprint(spec: PromptSpec) -> str:
    return stable_hash(spec.model_dump())
