"""Tool calling: calls read from text per family, and the scorer that judges them, hostile answers included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmbench.config.suite import load_suite
from llmbench.data.base import DataContext, Sample
from llmbench.data.readers import load_samples
from llmbench.errors import ConfigError, DataError
from llmbench.scoring import scorers
from llmbench.scoring.tool_calls import MAX_CALLS, calls_as_text, read_calls
from llmbench.scoring.tools import REASONS, ToolCallScorer
from llmbench.types import ToolCall

SUITE = Path(__file__).resolve().parents[2] / "suites" / "tools.yaml"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Forecast for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "units": {"type": "string", "enum": ["metric", "imperial"], "default": "metric"},
                "hourly": {"type": "boolean", "default": False},
            },
            "required": ["city", "days"],
        },
    },
}
CONVERT = {
    "type": "function",
    "function": {
        "name": "convert",
        "parameters": {
            "type": "object",
            "properties": {"amount": {"type": "number"}, "to": {"type": "string"}},
            "required": ["amount", "to"],
        },
    },
}


def sample(reference: list[dict[str, Any]], category: str = "simple", tools: Any = None) -> Sample:
    fields = {"category": category, "tools": tools or [WEATHER, CONVERT], "question": "?"}
    return Sample(id="s1", fields=fields, reference=reference)


OSLO = {"name": "get_weather", "arguments": {"city": ["Oslo"], "days": [3], "units": ["metric"]}}
LIMA = {"name": "get_weather", "arguments": {"city": ["Lima"], "days": [3]}}


def tagged(*calls: dict[str, Any]) -> str:
    return "".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>\n" for c in calls)


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def failed(score: Any) -> set[str]:
    return {r for r in REASONS if score.metrics[f"failed_{r}"] == 1.0}


# --- reading calls, per family -------------------------------------------------------------------------


def test_hermes_blocks_are_read_one_call_each() -> None:
    text = "Let me check.\n" + tagged(
        call("get_weather", city="Oslo", days=3), call("convert", amount=5, to="EUR")
    )
    calls, family = read_calls(text)
    assert family == "hermes"
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_weather", {"city": "Oslo", "days": 3}),
        ("convert", {"amount": 5, "to": "EUR"}),
    ]


def test_a_hermes_block_cut_off_by_the_token_limit_is_read_to_the_end() -> None:
    calls, _ = read_calls('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "days": 3}}')
    assert calls[0].readable and calls[0].arguments == {"city": "Oslo", "days": 3}
    cut, _ = read_calls('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Os')
    assert not cut[0].readable and "malformed" in (cut[0].problem or "")


def test_arguments_written_as_a_json_string_are_decoded() -> None:
    calls, _ = read_calls(tagged({"name": "convert", "arguments": '{"amount": 5, "to": "EUR"}'}))
    assert calls[0].arguments == {"amount": 5, "to": "EUR"}


def test_llama3_json_calls_with_python_tag_semicolons_lists_and_fences() -> None:
    one = '<|python_tag|>{"name": "convert", "parameters": {"amount": 5, "to": "EUR"}}'
    two = '{"name": "convert", "parameters": {"amount": 1, "to": "EUR"}}; {"name": "convert", "parameters": {"amount": 2, "to": "GBP"}}'
    listed = '[{"name": "convert", "arguments": {"amount": 1, "to": "EUR"}}]'
    fenced = '```json\n{"name": "convert", "arguments": {"amount": 1, "to": "EUR"}}\n```'
    assert [c.arguments["amount"] for c in read_calls(one, "llama3_json")[0]] == [5]
    assert [c.arguments["to"] for c in read_calls(two)[0]] == ["EUR", "GBP"]
    assert read_calls(listed)[0][0].name == "convert"
    assert read_calls(fenced)[0][0].arguments == {"amount": 1, "to": "EUR"}


def test_prose_is_no_call_and_broken_json_is_an_unreadable_one() -> None:
    assert read_calls("It is sunny in Oslo today.")[0] == []
    assert read_calls("[]")[0] == []
    broken, _ = read_calls('{"name": "convert", "parameters": {"amount": 5,')
    assert len(broken) == 1 and not broken[0].readable


def test_mistral_calls_in_both_forms() -> None:
    listed = '[TOOL_CALLS] [{"name": "convert", "arguments": {"amount": 5, "to": "EUR"}}]'
    split = '[TOOL_CALLS]convert[ARGS]{"amount": 5, "to": "EUR"}[TOOL_CALLS]convert[ARGS]{"amount": 6, "to": "EUR"}'
    assert read_calls(listed) == read_calls(listed, "mistral")
    assert read_calls(listed)[1] == "mistral"
    assert [c.arguments["amount"] for c in read_calls(split)[0]] == [5, 6]


def test_reported_calls_written_as_text_read_back_the_same() -> None:
    calls = [
        ToolCall("convert", '{"amount": 5, "to": "</tool_call><tool_call>"}', id="c1"),
        ToolCall("get_weather", '{"city": "Oslo", "days": 3}'),
        ToolCall("convert", '{"amount": 5,'),  # the server passed on what the model wrote: not JSON
    ]
    read, family = read_calls(calls_as_text(calls))
    assert family == "hermes"
    assert read[0].arguments == {"amount": 5, "to": "</tool_call><tool_call>"}
    assert read[1].arguments == {"city": "Oslo", "days": 3}
    assert len(read) == 3 and not read[2].readable


# --- judging calls ---------------------------------------------------------------------------------------


def test_the_expected_call_is_right_numbers_numerically_strings_case_insensitively() -> None:
    scorer = ToolCallScorer()
    got = scorer.score(sample([OSLO]), tagged(call("get_weather", city="oslo", days=3.0, units="metric")))
    assert got.status == "correct" and got.value == 1.0
    assert got.metrics["simple_accuracy"] == 1.0 and not failed(got)


def test_an_optional_argument_may_be_left_out_only_where_its_default_is_allowed() -> None:
    scorer = ToolCallScorer()
    assert scorer.score(sample([OSLO]), tagged(call("get_weather", city="Oslo", days=3))).value == 1.0
    imperial = {"name": "get_weather", "arguments": {"city": ["Oslo"], "days": [3], "units": ["imperial"]}}
    left_out = scorer.score(sample([imperial]), tagged(call("get_weather", city="Oslo", days=3)))
    assert failed(left_out) == {"missing_arg"}


def test_an_argument_not_asked_for_is_fine_only_at_its_default() -> None:
    scorer = ToolCallScorer()
    at_default = tagged(call("get_weather", city="Lima", days=3, hourly=False))
    assert scorer.score(sample([LIMA]), at_default).value == 1.0
    other = scorer.score(sample([LIMA]), tagged(call("get_weather", city="Lima", days=3, hourly=True)))
    assert failed(other) == {"wrong_value"}


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"city": "Oslo"}, "missing_arg"),
        ({"city": "Oslo", "days": "3"}, "bad_type"),
        ({"city": "Oslo", "days": True}, "bad_type"),  # a boolean is not an integer
        ({"city": "Oslo", "days": 3.5}, "bad_type"),
        ({"city": "Oslo", "days": 3, "units": "kelvin"}, "wrong_value"),  # outside the enum
        ({"city": "Bergen", "days": 3}, "wrong_value"),
        ({"city": "Oslo", "days": 3, "country": "NO"}, "unknown_arg"),
    ],
)
def test_each_way_an_argument_goes_wrong_has_its_reason(arguments: dict[str, Any], reason: str) -> None:
    got = ToolCallScorer().score(sample([OSLO]), tagged(call("get_weather", **arguments)))
    assert got.status == "wrong" and failed(got) == {reason}, got.details


def test_another_function_is_a_wrong_function() -> None:
    got = ToolCallScorer().score(sample([OSLO]), tagged(call("convert", amount=3, to="EUR")))
    assert failed(got) == {"wrong_function"}


def test_parallel_calls_match_in_any_order() -> None:
    scorer = ToolCallScorer()
    answer = tagged(call("get_weather", city="Lima", days=3), call("get_weather", city="Oslo", days=3))
    got = scorer.score(sample([OSLO, LIMA], "parallel"), answer)
    assert got.value == 1.0 and got.metrics["parallel_accuracy"] == 1.0


def test_duplicated_calls_do_not_count_twice() -> None:
    scorer = ToolCallScorer()
    twice = tagged(call("get_weather", city="Oslo", days=3), call("get_weather", city="Oslo", days=3))
    instead_of_lima = scorer.score(sample([OSLO, LIMA], "parallel"), twice)
    assert instead_of_lima.value == 0.0 and failed(instead_of_lima) == {"wrong_value"}
    one_too_many = scorer.score(sample([OSLO]), twice)
    assert failed(one_too_many) == {"extra_call"}


def test_a_missing_parallel_call_and_no_call_at_all() -> None:
    scorer = ToolCallScorer()
    half = scorer.score(sample([OSLO, LIMA], "parallel"), tagged(call("get_weather", city="Oslo", days=3)))
    assert failed(half) == {"missing_call"}
    none = scorer.score(sample([OSLO]), "I cannot look that up.")
    assert none.status == "wrong" and failed(none) == {"no_call"}


def test_irrelevance_is_right_without_a_call_and_wrong_with_one() -> None:
    scorer = ToolCallScorer()
    quiet = scorer.score(sample([], "irrelevance"), "No function fits; Michelangelo painted it.")
    assert quiet.value == 1.0 and quiet.metrics["irrelevance_accuracy"] == 1.0
    called = scorer.score(sample([], "irrelevance"), tagged(call("get_weather", city="Rome", days=1)))
    assert called.value == 0.0 and failed(called) == {"extra_call"}


def test_malformed_arguments_are_unparseable_not_a_crash() -> None:
    got = ToolCallScorer().score(
        sample([OSLO]), '<tool_call>{"name": "get_weather", "arguments": {"city": Oslo}}'
    )
    assert got.status == "unparsed" and failed(got) == {"unparseable"}
    not_object = ToolCallScorer().score(sample([OSLO]), tagged({"name": "get_weather", "arguments": [1, 2]}))
    assert not_object.status == "unparsed"


def test_hostile_answers_are_judged_within_bounds() -> None:
    scorer = ToolCallScorer()
    huge = tagged(call("get_weather", city="Oslo" * 250_000, days=3))  # a 1 MB argument
    got = scorer.score(sample([OSLO]), huge)
    assert failed(got) == {"wrong_value"}
    assert all(len(p["detail"]) < 500 for p in got.details["problems"])
    assert len(json.dumps(got.details)) < 4000
    big_number = (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo", "days": 1' + "0" * 400 + "}}"
    )
    assert failed(scorer.score(sample([OSLO]), big_number)) == {"wrong_value"}
    deep = '<tool_call>{"name": "get_weather", "arguments": {"city": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    assert scorer.score(sample([OSLO]), deep).status == "unparsed"
    flood = tagged(*[call("get_weather", city="Oslo", days=3)] * 5000)
    flooded = scorer.score(sample([OSLO]), flood)
    assert failed(flooded) == {"extra_call"} and len(flooded.details["calls"]) <= 8
    assert len(read_calls(flood)[0]) == MAX_CALLS + 1


def test_a_malformed_sample_is_a_data_error_naming_it() -> None:
    scorer = ToolCallScorer()
    with pytest.raises(DataError, match=r"sample 's1'.*reference"):
        scorer.reference_output(sample({"name": "get_weather"}))  # type: ignore[arg-type]
    with pytest.raises(DataError, match="no parameter 'town'"):
        scorer.reference_output(sample([{"name": "get_weather", "arguments": {"town": ["Oslo"]}}]))
    with pytest.raises(DataError, match="tools"):
        scorer.reference_output(
            sample([OSLO], tools=[{"type": "function", "function": {"name": "bad name"}}])
        )


def test_an_unknown_parser_is_refused() -> None:
    with pytest.raises(TypeError, match="parser must be auto or one of"):
        ToolCallScorer(parser="xml")


def test_the_scorer_is_registered_by_name() -> None:
    assert scorers.get("tools") is ToolCallScorer


def test_every_built_in_sample_reaches_full_marks_with_its_reference_output() -> None:
    suite = load_suite(SUITE)
    task = suite.config.tasks[0]
    assert task.dataset is not None
    samples = load_samples(task.dataset, DataContext(suite_dir=suite.directory))
    assert {s.fields["category"] for s in samples} == {"simple", "multiple", "parallel", "irrelevance"}
    assert len(samples) >= 40
    scorer = ToolCallScorer()
    for s in samples:
        reference = scorer.reference_output(s)
        as_reported = calls_as_text(
            [ToolCall(c["name"], json.dumps(c["arguments"])) for c in json.loads(reference)]
        )
        for answer in (reference, as_reported):
            got = scorer.score(s, answer)
            assert got.value == 1.0, (s.id, got.details)


def test_tools_need_a_chat_prompt(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: t\ntasks:\n  - name: x\n    dataset: {local: d.jsonl}\n    tools: true\n"
        "    prompt: {mode: completion}\n    scorer: {name: tools}\n"
    )
    with pytest.raises(ConfigError, match="tools go with chat prompts"):
        load_suite(path)
