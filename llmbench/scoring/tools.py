"""Tool calling: did the answer call the expected functions with the expected arguments, and nothing else?

A sample of a `tools` task holds `tools` (the functions offered, see data/tool_definitions.py), a `category`
(simple, multiple, parallel, irrelevance, or any other name) and a `reference`: the expected calls, a list of
`{"name": ..., "arguments": {parameter: [allowed values]}}`; an empty list means no function fits and no call
is right. Each parameter's allowed values are a list, also for an array parameter (`[[1, 2]]`).

The answer's calls are those the backend reported apart from the text (an API server's `tool_calls`, which
the run writes into the text this scorer reads) and those the model wrote in its own format (option `parser`:
`auto`, `hermes`, `llama3_json`, `mistral`; see tool_calls.py).

A call matches an expected call when it names the same function; every argument is a parameter of it; every
required parameter is given; every value has its parameter's JSON Schema type (an integral float counts as an
integer) and lies in the schema's `enum` where there is one; and every value is one of the reference's allowed
values (numbers numerically, strings case- and space-insensitively, arrays in order, objects key by key). An
argument the reference does not name may be given only with its schema default; one it names may be left out
only where it is optional and its schema default is among the allowed values. Calls match expected calls in any
order (a maximum matching), so parallel calls are judged as a set; the answer is right when every expected
call is matched and nothing more was called.

Per sample: `accuracy` (primary); `<category>_accuracy` for the sample's category; `failed_<reason>` (0 or 1)
for each reason in REASONS, whose mean times n counts the samples that failed for it. Statuses: correct,
wrong, unparsed (calls were attempted and none could be read).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from llmbench.data.base import Sample
from llmbench.data.tool_definitions import parameter_schemas, tool_definitions
from llmbench.errors import DataError
from llmbench.scoring.base import Score, Scorer, Status
from llmbench.scoring.json import values_match
from llmbench.scoring.tool_calls import ParsedCall, parsers, read_calls

REASONS = (
    "wrong_function",  # a readable call to another function than the one expected
    "missing_arg",  # a required (or expected, not omittable) argument left out
    "unknown_arg",  # an argument the function has no parameter for
    "bad_type",  # a value of another JSON type than its parameter's
    "wrong_value",  # a value outside the allowed values or the schema's enum
    "extra_call",  # a call beyond the expected ones (any call where no function fits)
    "missing_call",  # fewer calls than expected
    "no_call",  # no call at all where one was expected
    "unparseable",  # a call that could not be read
)
SHOWN_CHARS = 160  # of a value, quoted in a problem's detail
SHOWN_ITEMS = 8  # calls and problems kept in a sample's details
_ALIASES = {"dict": "object", "float": "number", "int": "integer", "tuple": "array", "list": "array"}
_ALIASES |= {"bool": "boolean", "str": "string"}


@dataclass(frozen=True)
class ExpectedCall:
    """One call the reference expects: the function, and each argument's allowed values."""

    name: str
    arguments: dict[str, list[Any]]


@dataclass(frozen=True)
class Problem:
    """Why a call (or the answer) is not right: one of REASONS and a line of detail."""

    reason: str
    detail: str


def expected_calls(sample: Sample) -> tuple[list[ExpectedCall], dict[str, dict[str, Any]]]:
    """The sample's expected calls and its functions' parameter schemas; a malformed sample is a DataError."""
    where = f"sample '{sample.id}'"
    schemas = parameter_schemas(tool_definitions(sample.fields.get("tools"), where))
    reference = sample.reference
    if not isinstance(reference, list):
        raise DataError(
            f"{where}: the reference must be a list of expected calls ([] where no call is right)"
        )
    calls = []
    for i, item in enumerate(reference):
        at = f"{where}: reference[{i}]"
        if not isinstance(item, dict) or item.get("name") not in schemas:
            raise DataError(f"{at}: an expected call names one of the sample's functions")
        arguments = item.get("arguments", {})
        if not isinstance(arguments, dict):
            raise DataError(f"{at}: 'arguments' maps each parameter to a list of allowed values")
        properties = schemas[item["name"]].get("properties", {})
        for key, allowed in arguments.items():
            if key not in properties:
                raise DataError(f"{at}: {item['name']}() has no parameter '{key}'")
            if not isinstance(allowed, list) or not allowed:
                raise DataError(f"{at}: '{key}' needs a non-empty list of allowed values")
        calls.append(ExpectedCall(item["name"], arguments))
    return calls, schemas


def same_value(expected: Any, got: Any) -> bool:
    """Equal as arguments: numbers numerically, strings case- and space-insensitively, containers item by item."""
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(map(same_value, expected, got))
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and got.keys() == expected.keys()
            and all(same_value(v, got[k]) for k, v in expected.items())
        )
    if _is_number(expected) and _is_number(got):
        try:
            return math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-9)
        except OverflowError:  # an integer too large for a float
            return bool(expected == got)
    return values_match(expected, got)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def has_type(value: Any, declared: str) -> bool:
    """Whether `value` is of the JSON Schema type `declared` (an unknown type name holds anything)."""
    kind = _ALIASES.get(declared, declared)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    checks = {
        "number": _is_number,
        "boolean": lambda v: isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
        "null": lambda v: v is None,
    }
    check = checks.get(kind)
    return check is None or bool(check(value))


def type_problem(value: Any, schema: Any, path: str) -> str | None:
    """Where `value` is not of its schema's type, in words (items and properties checked in depth)."""
    if not isinstance(schema, dict):
        return None
    declared = schema.get("type")
    kinds = [declared] if isinstance(declared, str) else [k for k in declared or [] if isinstance(k, str)]
    if kinds and not any(has_type(value, k) for k in kinds):
        return f"{path} is {_json_type(value)}, not {' or '.join(kinds)}"
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            if found := type_problem(item, schema["items"], f"{path}[{i}]"):
                return found
    properties = schema.get("properties")
    if isinstance(value, dict) and isinstance(properties, dict):
        for key, item in value.items():
            if key in properties and (found := type_problem(item, properties[key], f"{path}.{key}")):
                return found
    return None


def _json_type(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    names = {int: "an integer", float: "a number", str: "a string", list: "an array", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def show(value: Any) -> str:
    """A value as JSON on one line, cut to SHOWN_CHARS."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "\u2026"


def judge(call: ParsedCall, expected: ExpectedCall, schemas: dict[str, dict[str, Any]]) -> Problem | None:
    """Why `call` is not `expected`, or None where it is."""
    if call.name != expected.name:
        return Problem("wrong_function", f"called {call.name}, expected {expected.name}")
    schema = schemas.get(expected.name, {})
    properties = schema.get("properties", {})
    for key in call.arguments:
        if key not in properties:
            return Problem("unknown_arg", f"{call.name}() has no parameter '{key}'")
    for key in [*schema.get("required", []), *expected.arguments]:
        if key not in call.arguments and not _may_omit(key, properties.get(key), expected, schema):
            return Problem("missing_arg", f"{call.name}() without '{key}'")
    for key, value in call.arguments.items():
        if problem := _value_problem(call.name, key, value, properties[key], expected.arguments.get(key)):
            return problem
    return None


def _may_omit(key: str, prop: Any, expected: ExpectedCall, schema: dict[str, Any]) -> bool:
    if key in schema.get("required", []):
        return False
    allowed = expected.arguments.get(key)
    if allowed is None:
        return True
    return (
        isinstance(prop, dict) and "default" in prop and any(same_value(a, prop["default"]) for a in allowed)
    )


def _value_problem(
    function: str, key: str, value: Any, prop: Any, allowed: list[Any] | None
) -> Problem | None:
    if found := type_problem(value, prop, key):
        return Problem("bad_type", f"{function}(): {found}")
    enum = prop.get("enum") if isinstance(prop, dict) else None
    if isinstance(enum, list) and not any(same_value(e, value) for e in enum):
        return Problem("wrong_value", f"{function}(): {key}={show(value)} is not in its enum")
    if allowed is None:
        if isinstance(prop, dict) and "default" in prop and same_value(prop["default"], value):
            return None
        return Problem("wrong_value", f"{function}(): {key}={show(value)} was not asked for")
    if not any(same_value(a, value) for a in allowed):
        return Problem("wrong_value", f"{function}(): {key}={show(value)}, expected one of {show(allowed)}")
    return None


def match_calls(
    calls: Sequence[ParsedCall], expected: Sequence[ExpectedCall], schemas: dict[str, dict[str, Any]]
) -> dict[int, int]:
    """A largest pairing of calls with the expected calls they satisfy: expected index -> call index."""
    fits = [[judge(c, e, schemas) is None for e in expected] for c in calls]
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:  # Kuhn's augmenting path: depth at most len(expected)
        for j, ok in enumerate(fits[i]):
            if ok and j not in seen:
                seen.add(j)
                if j not in owner or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(len(calls)):
        augment(i, set())
    return owner


def problems_of(
    calls: Sequence[ParsedCall], expected: Sequence[ExpectedCall], schemas: dict[str, dict[str, Any]]
) -> list[Problem]:
    """Everything wrong with an answer's calls against the expected ones; empty: the answer is right."""
    readable = [c for c in calls if c.readable]
    problems = [Problem("unparseable", c.problem or "") for c in calls if not c.readable]
    if not calls:
        return [Problem("no_call", f"expected {', '.join(e.name for e in expected)}")] if expected else []
    owner = match_calls(readable, expected, schemas)
    free = [i for i in range(len(readable)) if i not in owner.values()]
    unpaired = 0
    for j in (j for j in range(len(expected)) if j not in owner):
        i = next((i for i in free if readable[i].name == expected[j].name), free[0] if free else None)
        if i is None:
            unpaired += 1
            continue
        free.remove(i)
        if problem := judge(readable[i], expected[j], schemas):
            problems.append(problem)
    unread = len(calls) - len(readable)  # an unreadable call stands for one of the expected ones
    problems += [Problem("missing_call", "fewer calls than expected")] * max(0, unpaired - unread)
    what = "no function fits this request" if not expected else "more calls than expected"
    problems += [Problem("extra_call", f"{readable[i].name}(): {what}") for i in free]
    return problems


def _category(sample: Sample) -> str | None:
    category = sample.fields.get("category", sample.metadata.get("category"))
    if category is None:
        return None
    return re.sub(r"[^a-z0-9]+", "_", str(category).lower()).strip("_") or None


class ToolCallScorer(Scorer):
    """Function calls judged by name and arguments, matched in any order; accuracy per category and reasons."""

    name: ClassVar[str] = "tools"
    primary_metric: ClassVar[str] = "accuracy"

    def __init__(self, *, parser: str = "auto", **options: Any) -> None:
        super().__init__(**options)
        if parser != "auto" and parser not in parsers:
            raise TypeError(f"parser must be auto or one of {', '.join(parsers.names())} (got {parser!r})")
        self.parser = parser

    def score(self, sample: Sample, output: str) -> Score:
        expected, schemas = expected_calls(sample)
        calls, family = read_calls(output, self.parser)
        problems = problems_of(calls, expected, schemas)
        readable = [c for c in calls if c.readable]
        value = 0.0 if problems else 1.0
        status: Status = "correct" if not problems else "unparsed" if calls and not readable else "wrong"
        reasons = {p.reason for p in problems}
        metrics = {f"failed_{r}": float(r in reasons) for r in REASONS}
        if category := _category(sample):
            metrics[f"{category}_accuracy"] = value
        details: dict[str, Any] = {
            "parser": family,
            "calls": [
                {"name": c.name, "arguments": show(c.arguments)} if c.readable else {"unreadable": c.problem}
                for c in calls[:SHOWN_ITEMS]
            ],
            "expected_calls": len(expected),
        }
        if problems:
            details["problems"] = [{"reason": p.reason, "detail": p.detail} for p in problems[:SHOWN_ITEMS]]
        return Score(value, status, metrics, details)

    def reference_output(self, sample: Sample) -> str:
        """The expected calls as a JSON list, each argument at its first allowed value (read as `llama3_json`);
        the `reference` backend reports them as tool calls, as a server would."""
        expected, _ = expected_calls(sample)
        calls = [{"name": e.name, "arguments": {k: v[0] for k, v in e.arguments.items()}} for e in expected]
        return json.dumps(calls, ensure_ascii=False)
