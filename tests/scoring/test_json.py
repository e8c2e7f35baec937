"""The JSON scorer: finding JSON in outputs, schema validity, field accuracy, hostile outputs, built-in records."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from llmbench.config.suite import load_suite
from llmbench.data.base import DataContext, Sample
from llmbench.data.readers import load_samples
from llmbench.errors import DataError
from llmbench.scoring import scorers
from llmbench.scoring.json import JsonScorer, find_json, leaves, values_match

SUITE = Path(__file__).resolve().parents[2] / "suites" / "json.yaml"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city"],
        },
        "role": {"enum": ["admin", "user"]},
    },
    "required": ["name", "age", "address", "role"],
}
REFERENCE: dict[str, Any] = {
    "name": "Ana Lima",
    "age": 30,
    "tags": ["a", "b"],
    "address": {"city": "Porto", "zip": "4000"},
    "role": "user",
}


def sample(schema: Any = SCHEMA, reference: Any = REFERENCE) -> Sample:
    return Sample(id="p1", fields={"instruction": "...", "schema": schema}, reference=reference)


def variant(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(REFERENCE)
    out.update(changes)
    return out


def built_in_samples() -> list[Sample]:
    suite = load_suite(SUITE)
    spec = suite.config.tasks[0]
    assert spec.dataset is not None
    return load_samples(spec.dataset, DataContext(suite_dir=suite.directory))


@pytest.mark.parametrize(
    ("text", "value", "where"),
    [
        ('{"a": 1}', {"a": 1}, "whole"),
        ("  [1, 2]\n", [1, 2], "whole"),
        ('Sure:\n```json\n{"a": 1}\n```\nHope this helps', {"a": 1}, "fenced"),
        ('```\n{"b": 2}\n```', {"b": 2}, "fenced"),
        ('Result: {"a": {"b": [1, {"c": "}"}]}} done', {"a": {"b": [1, {"c": "}"}]}}, "span"),
        ('{not: json} then {"ok": true}', {"ok": True}, "span"),
        ('<think>{"draft": 1}</think>{"final": 2}', {"final": 2}, "whole"),
    ],
)
def test_find_json_takes_the_first_parseable_value(text: str, value: Any, where: str) -> None:
    assert find_json(text) == (value, where)


@pytest.mark.parametrize(
    "text",
    ["", "no json here", '{"a": NaN}', '{"a": Infinity}', "{'a': 1}", '{"a": 1,}', '{"a": 1'],
)
def test_find_json_refuses_what_is_not_json(text: str) -> None:
    assert find_json(text) is None


def test_strict_mode_wants_json_and_nothing_else() -> None:
    assert find_json('{"a": 1}', strict=True) == ({"a": 1}, "whole")
    assert find_json('Here: {"a": 1}', strict=True) is None
    assert find_json('```json\n{"a": 1}\n```', strict=True) is None


def test_leaves_walk_objects_and_arrays_by_path() -> None:
    assert list(leaves({"a": [1, {"b": None}], "c": {}, "d": []})) == [
        (("a", 0), 1),
        (("a", 1, "b"), None),
        (("c",), {}),
        (("d",), []),
    ]


@pytest.mark.parametrize(
    ("expected", "got", "match"),
    [
        (1.5, 1.5000000001, True),
        (3, 3.0, True),
        (3, 3.1, False),
        (1, True, False),
        (True, 1, False),
        ("New  York", " new york", True),
        ("Ｐorto", "porto", True),
        ("30", 30, False),
        (None, None, True),
        (None, "null", False),
        ([], [], True),
        ({}, [], False),
    ],
)
def test_values_match_with_tolerance_and_normalisation(expected: Any, got: Any, match: bool) -> None:
    assert values_match(expected, got) is match


def test_the_json_scorer_is_registered_by_name() -> None:
    assert scorers.get("json") is JsonScorer


def test_a_correct_object_scores_full_marks_in_any_wrapping() -> None:
    s = JsonScorer()
    body = json.dumps(variant(name="ana lima"))
    for output in (body, f"```json\n{body}\n```", f"Here you go: {body} - done."):
        score = s.score(sample(), output)
        assert (score.status, score.value, score.metrics) == (
            "correct",
            1.0,
            {
                "parsed": 1.0,
                "schema_valid": 1.0,
                "field_accuracy": 1.0,
                "field_precision": 1.0,
                "field_f1": 1.0,
            },
        )


def test_invented_fields_lower_precision_and_f1_but_not_recall() -> None:
    score = JsonScorer().score(sample(), json.dumps(variant(nickname="Aninha", tags=["a", "b", "c"])))
    assert score.status == "correct"  # the schema allows extra fields; require_exact would refuse them
    assert score.metrics["field_accuracy"] == 1.0
    assert score.metrics["field_precision"] == pytest.approx(7 / 9)
    assert score.metrics["field_f1"] == pytest.approx(2 * (7 / 9) / (1 + 7 / 9))
    assert score.details["extra_fields"] == ["$.tags[2]", "$.nickname"]


def test_a_wrong_value_costs_both_precision_and_recall() -> None:
    score = JsonScorer().score(sample(), json.dumps(variant(age=31)))
    assert score.metrics["field_accuracy"] == pytest.approx(6 / 7)
    assert score.metrics["field_precision"] == pytest.approx(6 / 7)
    assert score.details["wrong_fields"] == score.details["extra_fields"] == ["$.age"]


def test_a_json_value_of_another_shape_scores_zero_fields() -> None:
    score = JsonScorer().score(sample(schema=None), '["Ana Lima", 30]')
    assert (score.status, score.metrics["field_accuracy"], score.metrics["field_precision"]) == (
        "wrong",
        0.0,
        0.0,
    )
    assert score.metrics["field_f1"] == 0.0


def test_unparsed_outputs_report_every_field_metric_as_zero() -> None:
    score = JsonScorer().score(sample(), "no json")
    assert score.metrics == dict.fromkeys(
        ("parsed", "schema_valid", "field_accuracy", "field_precision", "field_f1"), 0.0
    )


@pytest.mark.parametrize(
    ("tags", "unordered", "status", "recall", "precision"),
    [
        (["b", "a"], True, "correct", 1.0, 1.0),
        (["b", "a"], False, "wrong", 5 / 7, 5 / 7),
        (["B ", "a", "c"], True, "correct", 1.0, 7 / 8),
        (["a", "a"], True, "wrong", 6 / 7, 6 / 7),  # a multiset: one "a" cannot stand for "b"
        (["b"], True, "wrong", 6 / 7, 1.0),
        ([], True, "wrong", 5 / 7, 5 / 6),
        ("a, b", True, "wrong", 5 / 7, 5 / 6),
    ],
)
def test_unordered_arrays_compare_items_as_multisets(
    tags: Any, unordered: bool, status: str, recall: float, precision: float
) -> None:
    score = JsonScorer(unordered_arrays=unordered).score(sample(schema=None), json.dumps(variant(tags=tags)))
    assert score.status == status
    assert score.metrics["field_accuracy"] == pytest.approx(recall)
    assert score.metrics["field_precision"] == pytest.approx(precision)


NESTED = {
    "steps": ["mix", "bake"],
    "items": [{"name": "x", "labels": ["p", "q"]}, {"name": "y", "labels": ["r"]}],
}


def test_unordered_arrays_by_path_leave_the_other_arrays_ordered() -> None:
    reordered = {
        "steps": ["mix", "bake"],
        "items": [{"name": "y", "labels": ["r"]}, {"name": "x", "labels": ["q", "p"]}],
    }
    paths = ["$.items", "$.items[*].labels"]
    assert JsonScorer(unordered_arrays=paths).score(sample(None, NESTED), json.dumps(reordered)).status == (
        "correct"
    )
    assert JsonScorer(unordered_arrays=["$.items"]).score(
        sample(None, NESTED), json.dumps(reordered)
    ).status == ("wrong")
    swapped_steps = {**NESTED, "steps": ["bake", "mix"]}
    score = JsonScorer(unordered_arrays=paths).score(sample(None, NESTED), json.dumps(swapped_steps))
    assert score.status == "wrong" and score.details["wrong_fields"] == ["$.steps[0]", "$.steps[1]"]


def test_unordered_objects_that_differ_in_one_field_still_pair_for_partial_credit() -> None:
    output = {
        "steps": ["mix", "bake"],
        "items": [{"name": "y", "labels": ["r"]}, {"name": "x", "labels": ["p", "z"]}],
    }
    score = JsonScorer(unordered_arrays=True).score(sample(None, NESTED), json.dumps(output))
    assert score.status == "wrong"
    assert score.details["wrong_fields"] == ["$.items[0].labels[1]"]
    assert score.metrics["field_accuracy"] == pytest.approx(6 / 7)


def test_require_exact_with_unordered_arrays_accepts_a_permutation_only() -> None:
    s = JsonScorer(require_exact=True, unordered_arrays=True)
    assert s.score(sample(), json.dumps(variant(tags=["b", "a"]))).status == "correct"
    assert s.score(sample(), json.dumps(variant(tags=["b", "a", "a"]))).status == "wrong"


def test_a_huge_unordered_output_is_still_scored() -> None:
    big = variant(tags=[*(["filler"] * 200_000), "b", "a"])
    score = JsonScorer(unordered_arrays=True).score(sample(), json.dumps(big))
    assert score.status == "correct" and score.metrics["field_precision"] < 0.001


def test_a_wrong_field_lowers_field_accuracy_and_is_named() -> None:
    score = JsonScorer().score(sample(), json.dumps(variant(age=31, tags=["a", "c"])))
    assert (score.status, score.value) == ("wrong", 0.0)
    assert score.metrics["schema_valid"] == 1.0
    assert score.metrics["field_accuracy"] == pytest.approx(5 / 7)
    assert score.details["wrong_fields"] == ["$.age", "$.tags[1]"]


def test_a_schema_violation_names_its_path() -> None:
    bad = variant(address={"zip": "4000"}, role="owner")
    score = JsonScorer().score(sample(), json.dumps(bad))
    assert (score.status, score.metrics["schema_valid"]) == ("wrong", 0.0)
    assert score.details["schema_error"]["path"] in ("$.address", "$.role")
    assert score.details["schema_error_count"] == 2


def test_all_fields_right_but_schema_invalid_is_wrong() -> None:
    schema = {**SCHEMA, "additionalProperties": False}
    score = JsonScorer().score(sample(schema=schema), json.dumps(variant(note="x")))
    assert (score.status, score.metrics["field_accuracy"], score.metrics["schema_valid"]) == (
        "wrong",
        1.0,
        0.0,
    )
    assert score.details["schema_error"]["path"] == "$"


def test_require_exact_refuses_extra_fields_and_items() -> None:
    s = JsonScorer(require_exact=True)
    assert s.score(sample(), json.dumps(REFERENCE)).status == "correct"
    assert s.score(sample(), json.dumps(variant(note="x"))).status == "wrong"
    assert s.score(sample(), json.dumps(variant(tags=["a", "b", "c"]))).status == "wrong"
    assert JsonScorer().score(sample(), json.dumps(variant(tags=["a", "b", "c"]))).status == "correct"


def test_strict_json_only_makes_wrapped_json_unparsed() -> None:
    s = JsonScorer(strict_json_only=True)
    assert s.score(sample(), json.dumps(REFERENCE)).status == "correct"
    score = s.score(sample(), "Here:\n" + json.dumps(REFERENCE))
    assert (score.status, score.metrics["parsed"]) == ("unparsed", 0.0)


@pytest.mark.parametrize(
    "output",
    [
        "",
        "I cannot help with that.",
        '{"name": "Ana", "age": 30',  # cut off
        "[" * 100_000 + "]" * 100_000,  # nested deeper than the parser goes
        "{" * 200_000,
        "x" * 2_000_000,
    ],
)
def test_malformed_and_hostile_outputs_are_unparsed(output: str) -> None:
    score = JsonScorer().score(sample(), output)
    assert (score.status, score.value, score.metrics["parsed"]) == ("unparsed", 0.0, 0.0)


def test_nesting_too_deep_to_validate_is_schema_invalid_not_a_crash() -> None:
    recursive = {"$ref": "#/$defs/n", "$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}}}
    shallow, deep = (
        "[" * 50 + "]" * 50,
        "[" * 900 + "]" * 900,
    )  # both parse; the deep one exhausts the validator
    assert JsonScorer().score(sample(schema=recursive, reference=None), shallow).status == "correct"
    score = JsonScorer().score(sample(schema=recursive, reference=None), deep)
    assert (score.status, score.metrics["parsed"], score.metrics["schema_valid"]) == ("wrong", 1.0, 0.0)
    assert "too deeply" in score.details["schema_error"]["message"]


def test_a_huge_valid_output_is_still_scored() -> None:
    big = variant(tags=["a", "b", *(["filler"] * 200_000)])
    score = JsonScorer().score(sample(), json.dumps(big))
    assert score.status == "correct"


def test_a_schema_given_as_a_json_string_is_used() -> None:
    score = JsonScorer().score(sample(schema=json.dumps(SCHEMA)), json.dumps(variant(age=-1)))
    assert score.metrics["schema_valid"] == 0.0 and score.details["schema_error"]["path"] == "$.age"


def test_an_invalid_schema_is_a_data_error() -> None:
    with pytest.raises(DataError, match="JSON Schema is invalid"):
        JsonScorer().score(sample(schema={"type": "nonsense"}), "{}")


def test_without_a_schema_any_json_is_valid() -> None:
    score = JsonScorer().score(sample(schema=None), json.dumps(REFERENCE))
    assert (score.status, score.metrics["schema_valid"]) == ("correct", 1.0)


@pytest.mark.parametrize(
    "options",
    [
        {"require_exact": "yes"},
        {"strict_json_only": 1},
        {"mode": "x"},
        {"unordered_arrays": "yes"},
        {"unordered_arrays": ["tags"]},
        {"unordered_arrays": "$.tags"},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        JsonScorer(**options)


def test_built_in_references_validate_against_their_schemas() -> None:
    samples = built_in_samples()
    assert len(samples) >= 12
    for s in samples:
        schema = s.fields["schema"]
        Draft202012Validator.check_schema(schema)
        errors = list(
            Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).iter_errors(
                s.reference
            )
        )
        assert errors == [], (s.id, [e.message for e in errors])
        assert s.fields["instruction"].strip()


def test_reference_output_scores_full_marks_on_every_built_in_record() -> None:
    s = JsonScorer()
    for smp in built_in_samples():
        score = s.score(smp, s.reference_output(smp))
        assert (smp.id, score.status, score.value) == (smp.id, "correct", 1.0)
