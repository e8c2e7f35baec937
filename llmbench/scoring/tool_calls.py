"""Tool calls read from an answer's text, in the format its chat template taught the model, by family.

Families carry vLLM's tool-call parser names, so one name configures the server and reads the text:
- `hermes` (Qwen2.5, Hermes, and the form llmbench writes a server's reported calls in): one
  `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` block per call; a last block that the
  token limit cut off is read to the end.
- `llama3_json` (Llama 3.1 and 3.2): the answer is a JSON object `{"name": ..., "parameters": {...}}`
  (or `arguments`), after an optional `<|python_tag|>`, several separated by `;`, or a JSON list of them.
- `mistral`: `[TOOL_CALLS]` then a JSON list of calls, or `[TOOL_CALLS]name[ARGS]{...}` per call.
`auto` reads hermes where the answer holds `<tool_call>`, mistral where it holds `[TOOL_CALLS]`, else
llama3_json; prose that starts with neither `{` nor `[` is no call at all.

A call that cannot be read (malformed JSON, no function name, arguments that are not an object) is kept
with its problem, so a scorer can tell "unparseable" from "no call".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmbench.registry import Registry
from llmbench.scoring.json import loads_strict
from llmbench.types import ToolCall

MAX_CALLS = 64  # calls read from one answer; one more is kept so that a flood still counts as extra calls
_HERMES_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_FENCE = re.compile(r"\A```[\w-]*\n(.*?)\n?```\Z", re.DOTALL)
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class ParsedCall:
    """One call read from an answer: its function name and arguments, or why it could not be read."""

    name: str | None
    arguments: dict[str, Any]
    problem: str | None = None  # None: the call was read

    @property
    def readable(self) -> bool:
        return self.problem is None


Parser = Callable[[str], list[ParsedCall]]
parsers: Registry[Parser] = Registry("tool-call format")


def read_calls(text: str, family: str = "auto") -> tuple[list[ParsedCall], str]:
    """The calls in `text` and the family that read them (`auto` picks one by the answer's markers)."""
    if family == "auto":
        family = "hermes" if "<tool_call>" in text else "mistral" if "[TOOL_CALLS]" in text else "llama3_json"
    return parsers.get(family)(text)[: MAX_CALLS + 1], family


def call_from(value: Any) -> ParsedCall:
    """A call from a decoded JSON value: `{"name", "arguments" | "parameters"}`, or OpenAI's
    `{"type": "function", "function": {...}}`; arguments may be an object or a JSON text of one."""
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        value = value["function"]
    if not isinstance(value, dict):
        return ParsedCall(None, {}, f"a call is a JSON {type(value).__name__}, not an object")
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        return ParsedCall(None, {}, "the call names no function")
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = loads_strict(arguments) if arguments.strip() else {}
        except ValueError:
            return ParsedCall(name, {}, "its arguments are not valid JSON")
    if not isinstance(arguments, dict):
        return ParsedCall(name, {}, f"its arguments are a JSON {type(arguments).__name__}, not an object")
    return ParsedCall(name.strip(), arguments)


def calls_in_json_text(text: str) -> list[ParsedCall]:
    """Calls from JSON values one after another (`{...}; {...}`, a list of calls, or one call)."""
    calls: list[ParsedCall] = []
    at = _skip(text, 0)
    while at < len(text) and len(calls) <= MAX_CALLS:
        try:
            value, end = _DECODER.raw_decode(text, at)
        except (ValueError, RecursionError):
            calls.append(ParsedCall(None, {}, "malformed JSON"))
            break
        items = value if isinstance(value, list) else [value]
        calls += [call_from(item) for item in items[: MAX_CALLS + 1]]
        at = _skip(text, end)
    return calls


def _skip(text: str, at: int) -> int:
    while at < len(text) and (text[at].isspace() or text[at] in ";,"):
        at += 1
    return at


@parsers.register("hermes")
def hermes_calls(text: str) -> list[ParsedCall]:
    """One call per `<tool_call>` block; a block holds one JSON object."""
    calls: list[ParsedCall] = []
    for match in _HERMES_BLOCK.finditer(text):
        body = match.group(1).strip()
        try:
            calls.append(call_from(loads_strict(body)))
        except ValueError:
            calls.append(ParsedCall(None, {}, "malformed JSON in a <tool_call> block"))
        if len(calls) > MAX_CALLS:
            break
    return calls


@parsers.register("llama3_json")
def llama3_json_calls(text: str) -> list[ParsedCall]:
    """Calls written as JSON: the answer (past `<|python_tag|>`, inside a code fence if it is one) starts with
    `{` or `[`; anything else is prose, no call."""
    body = text.strip().removeprefix("<|python_tag|>").strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if not body.startswith(("{", "[")):
        return []
    return calls_in_json_text(body)


@parsers.register("mistral")
def mistral_calls(text: str) -> list[ParsedCall]:
    """What follows each `[TOOL_CALLS]`: a JSON list of calls, or `name[ARGS]{arguments}`."""
    calls: list[ParsedCall] = []
    for part in text.split("[TOOL_CALLS]")[1:]:
        name, sep, arguments = part.partition("[ARGS]")
        if sep:
            calls.append(call_from({"name": name, "arguments": arguments.strip()}))
        else:
            calls += calls_in_json_text(part.strip())
        if len(calls) > MAX_CALLS:
            break
    return calls


def calls_as_text(calls: Sequence[ToolCall]) -> str:
    """Calls a backend reported apart from the text, written as `hermes` blocks, so one reader reads both.

    Arguments that are JSON are written compactly with `<` escaped (no string can close the block early);
    arguments that are not are written as they came, and read back as unparseable.
    """
    blocks = []
    for call in calls:
        try:
            arguments = json.dumps(loads_strict(call.arguments or "{}"), ensure_ascii=False)
        except ValueError:
            arguments = call.arguments
        body = '{"name": ' + json.dumps(call.name, ensure_ascii=False) + ', "arguments": ' + arguments + "}"
        blocks.append("<tool_call>\n" + body.replace("<", "\\u003c") + "\n</tool_call>")
    return "\n".join(blocks)
