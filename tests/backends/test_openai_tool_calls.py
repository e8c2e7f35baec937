"""Tool calls over the OpenAI wire: the request's `tools`, and calls assembled from a stream's deltas."""

from __future__ import annotations

from typing import Any

import pytest

from llmbench.backends.openai_answer import answer_of
from llmbench.backends.openai_wire import (
    MAX_STREAM_CALLS,
    ServerFault,
    assembled_calls,
    on_event,
    tool_fields,
)
from llmbench.telemetry.timing import TokenClock
from llmbench.types import GenerationParams, GenerationRequest, ToolCall

TOOLS = ({"type": "function", "function": {"name": "convert", "parameters": {"type": "object"}}},)


def delta(**fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


def fragment(index: int | None = None, call_id: str | None = None, **function: str) -> dict[str, Any]:
    part: dict[str, Any] = {"function": function}
    if index is not None:
        part["index"] = index
    if call_id is not None:
        part |= {"id": call_id, "type": "function"}
    return part


def streamed(events: list[dict[str, Any]]) -> tuple[dict[str, Any], TokenClock]:
    clock, result = TokenClock(), {"pieces": []}
    for event in events:
        on_event(event, clock, result["pieces"], result)
    return result, clock


VLLM_LIKE = [  # how vLLM's hermes parser streams two calls
    delta(role="assistant", content=""),
    delta(tool_calls=[fragment(0, "call_a", name="convert", arguments="")]),
    delta(tool_calls=[fragment(0, arguments='{"amount": ')]),
    delta(tool_calls=[fragment(0, arguments='5, "to": "EUR"}')]),
    delta(tool_calls=[fragment(1, "call_b", name="convert")]),
    delta(tool_calls=[fragment(1, arguments='{"amount": 6, "to": "GBP"}')]),
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
]


def test_streamed_fragments_assemble_into_calls_each_a_token() -> None:
    result, clock = streamed(VLLM_LIKE)
    assert assembled_calls(result) == [
        ToolCall("convert", '{"amount": 5, "to": "EUR"}', id="call_a"),
        ToolCall("convert", '{"amount": 6, "to": "GBP"}', id="call_b"),
    ]
    assert len(clock.token_ns) == 5  # every tool-call delta carried a token; the role and finish did not


def test_the_completion_carries_the_calls_apart_from_its_text() -> None:
    request = GenerationRequest(
        "r1", GenerationParams(max_new_tokens=64), messages=({"role": "user", "content": "?"},), tools=TOOLS
    )
    body = {"messages": [{"role": "user", "content": "?"}], **tool_fields(request.tools)}
    result, clock = streamed(VLLM_LIKE)
    clock.finish()
    completion = answer_of(request, body, ("h", None), result, None, clock).completion
    assert completion.text == "" and completion.finish_reason == "stop"
    assert [c.arguments for c in completion.tool_calls] == [
        '{"amount": 5, "to": "EUR"}',
        '{"amount": 6, "to": "GBP"}',
    ]


def test_fragments_without_an_index_and_the_legacy_function_call() -> None:
    result, _ = streamed(
        [
            delta(tool_calls=[fragment(None, "a", name="convert", arguments='{"amount"')]),
            delta(tool_calls=[fragment(None, arguments=": 1}")]),
            delta(tool_calls=[fragment(None, "b", name="convert", arguments="{}")]),
        ]
    )
    assert [(c.id, c.arguments) for c in assembled_calls(result)] == [("a", '{"amount": 1}'), ("b", "{}")]
    legacy, _ = streamed([delta(function_call={"name": "convert"}), delta(function_call={"arguments": "{}"})])
    assert assembled_calls(legacy) == [ToolCall("convert", "{}")]


def test_tools_are_offered_with_automatic_choice_and_only_when_given() -> None:
    assert tool_fields(None) == {} and tool_fields(()) == {}
    assert tool_fields(TOOLS) == {"tools": [TOOLS[0]], "tool_choice": "auto"}


@pytest.mark.parametrize(
    "event",
    [
        delta(tool_calls="convert"),
        delta(tool_calls=[{"index": 0, "function": "convert"}]),
        delta(tool_calls=[{"index": 0, "function": {"name": 7}}]),
        delta(tool_calls=[fragment(i, name="convert") for i in range(MAX_STREAM_CALLS + 1)]),
    ],
)
def test_a_malformed_or_endless_tool_call_is_a_server_fault(event: dict[str, Any]) -> None:
    with pytest.raises(ServerFault, match=r"tool.call"):
        streamed([event])
