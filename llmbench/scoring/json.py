"""Structured output: does the output parse as JSON, validate against the sample's schema, and hold the right values?

Finding the JSON: reasoning blocks are cut; then the whole output, else each fenced code block (```json
first), else each top-level balanced {...} / [...] span, in order, until one parses. `NaN` and `Infinity`
are not JSON and do not parse. `strict_json_only: true` accepts only an output that is JSON and nothing else.

Per sample: `parsed` (0/1); `schema_valid` (0/1, JSON Schema Draft 2020-12 from the `schema` field, a dict
or a JSON string; no schema means any JSON is valid). Fields are compared leaf by leaf (scalars, and empty
containers) at the same path, numbers within a relative 1e-6, strings case-folded with spaces collapsed:
`field_accuracy` is the recall, the share of the reference's leaves found in the output; `field_precision`
the share of the output's leaves that the reference holds, so invented fields cost; `field_f1` their
harmonic mean. Arrays are compared by position, or as multisets with `unordered_arrays: true` (every
array) or a list of paths such as `["$.tags", "$.items[*].labels"]` (set-like fields only). `accuracy`
(primary) is 1 when the output is schema-valid and every reference leaf matches; with `require_exact: true`
it must also hold nothing beyond the reference (same keys, same array lengths). Statuses: correct, wrong,
unparsed (no JSON found).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar

from llmbench.data.base import Sample
from llmbench.errors import DataError, MissingDependencyError
from llmbench.scoring.base import Score, Scorer
from llmbench.scoring.extract import balanced_spans, fenced_blocks, strip_reasoning

MAX_SPAN_CANDIDATES = 64  # balanced spans tried before giving up: bounds the cost of a hostile output
_FIELD_METRICS = ("field_accuracy", "field_precision", "field_f1")  # field_accuracy is the recall
_MISSING = object()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_strict(text: str) -> Any:
    """`json.loads` that refuses NaN/Infinity and turns too-deep nesting into a ValueError."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply to parse") from exc


def find_json(text: str, *, strict: bool = False) -> tuple[Any, str] | None:
    """(value, where) for the first JSON found in a model output; `where` is whole, fenced or span."""
    text = strip_reasoning(text).strip()
    candidates: Iterator[tuple[str, str]] = iter([(text, "whole")])
    if not strict:
        tagged = fenced_blocks(text, "json")
        fences = tagged + [b for b in fenced_blocks(text) if b not in tagged]
        spans = ((text[a:b], "span") for a, b in balanced_spans(text))
        candidates = itertools.chain(
            candidates, ((f, "fenced") for f in fences), itertools.islice(spans, MAX_SPAN_CANDIDATES)
        )
    for candidate, where in candidates:
        if not candidate.strip():
            continue
        try:
            value = loads_strict(candidate)
        except ValueError:
            continue
        if where != "span" or isinstance(value, (dict, list)):
            return value, where
    return None


def leaves(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every leaf of a JSON value with its path: scalars, and empty objects or arrays."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            yield from leaves(item, (*path, i))
    else:
        yield path, value


def format_path(path: Iterable[str | int]) -> str:
    """`$.items[0].name` style, for error details."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _lookup(value: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        in_list = isinstance(part, int) and isinstance(value, list) and part < len(value)
        if in_list or (isinstance(part, str) and isinstance(value, dict) and part in value):
            value = value[part]
        else:
            return _MISSING
    return value


def _norm_text(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def values_match(expected: Any, got: Any) -> bool:
    """Leaf equality: numbers within a relative 1e-6, strings case- and space-normalised, the rest exact."""
    if isinstance(expected, bool) or expected is None:
        return got is expected
    if _is_number(expected):
        return _is_number(got) and math.isclose(expected, got, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(expected, str):
        return isinstance(got, str) and _norm_text(expected) == _norm_text(got)
    return type(got) is type(expected) and got == expected


def same_shape(expected: Any, got: Any) -> bool:
    """True when `got` has exactly the reference's keys and array lengths, all the way down."""
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and got.keys() == expected.keys()
            and all(same_shape(v, got[k]) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(map(same_shape, expected, got))
    return True


ArraySelector = Callable[[tuple[str | int, ...]], bool]


def array_pattern(path: Sequence[str | int]) -> str:
    """An array's path with every index as `[*]` (`$.items[*].labels`), as `unordered_arrays` names it."""
    return "$" + "".join("[*]" if isinstance(p, int) else f".{p}" for p in path)


def _equal_items(expected: Any, got: Any, unordered: ArraySelector, path: tuple[str | int, ...]) -> bool:
    if not isinstance(expected, (dict, list)):
        return values_match(expected, got)
    aligned = align_arrays(expected, got, unordered, path)
    return same_shape(expected, aligned) and all(
        values_match(v, _lookup(aligned, p)) for p, v in leaves(expected)
    )


def align_arrays(expected: Any, got: Any, unordered: ArraySelector, path: tuple[str | int, ...] = ()) -> Any:
    """`got` with the items of each unordered array moved to the positions of the reference items they equal.

    Items equal to no reference item fill the remaining positions in their own order; with none left a
    position holds a marker that matches nothing, and surplus items go at the end.
    """
    if isinstance(expected, dict) and isinstance(got, dict):
        return {
            k: align_arrays(expected[k], v, unordered, (*path, k)) if k in expected else v
            for k, v in got.items()
        }
    if not (isinstance(expected, list) and isinstance(got, list)):
        return got
    if got and unordered(path):
        free = list(range(len(got)))
        slots: list[int | None] = []
        for e in expected:
            j = next((j for j in free if _equal_items(e, got[j], unordered, (*path, 0))), None)
            slots.append(j)
            if j is not None:
                free.remove(j)
        rest = iter(free)
        slots = [j if j is not None else next(rest, None) for j in slots]
        got = [got[j] if j is not None else _MISSING for j in slots] + [got[j] for j in rest]
    paired = [
        align_arrays(e, g, unordered, (*path, i)) for i, (e, g) in enumerate(zip(expected, got, strict=False))
    ]
    return paired + got[len(expected) :]


def field_scores(reference: Any, aligned: Any) -> tuple[list[str], list[str], float, float]:
    """(reference leaves missed, output leaves the reference lacks, recall, precision), paths as `$.a[0]`.

    `aligned` is the output after `align_arrays`; the positions of extra leaves are those after pairing.
    """
    expected = list(leaves(reference))
    wrong = [p for p, v in expected if not values_match(v, _lookup(aligned, p))]
    produced = [(p, v) for p, v in leaves(aligned) if v is not _MISSING]
    extra = [p for p, v in produced if not values_match(_lookup(reference, p), v)]
    recall = 1 - len(wrong) / len(expected)
    precision = 1 - len(extra) / len(produced) if produced else 0.0
    return [format_path(p) for p in wrong], [format_path(p) for p in extra], recall, precision


def _selector(option: bool | list[str]) -> ArraySelector:
    if isinstance(option, bool):
        return lambda _path: option
    if not isinstance(option, list) or not all(isinstance(p, str) and p.startswith("$") for p in option):
        raise TypeError("unordered_arrays must be true, false or a list of paths such as '$.tags'")
    wanted = {re.sub(r"\[\d+\]", "[*]", p) for p in option}
    return lambda path: array_pattern(path) in wanted


class JsonScorer(Scorer):
    """Parse rate, schema validity and field accuracy of JSON outputs."""

    name: ClassVar[str] = "json"
    primary_metric: ClassVar[str] = "accuracy"

    def __init__(
        self,
        *,
        require_exact: bool = False,
        strict_json_only: bool = False,
        unordered_arrays: bool | list[str] = False,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        for key, flag in (("require_exact", require_exact), ("strict_json_only", strict_json_only)):
            if not isinstance(flag, bool):
                raise TypeError(f"{key} must be true or false")
        self._unordered = _selector(unordered_arrays)
        try:
            import jsonschema  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("jsonschema", purpose="JSON Schema validation") from exc
        self.require_exact = require_exact
        self.strict_json_only = strict_json_only
        self._validators: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _validator(self, schema: Any) -> Any:
        """A Draft 2020-12 validator for the sample's schema, checked and cached once per distinct schema."""
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except ValueError as exc:
                raise DataError(f"the sample's schema is not valid JSON: {exc}") from exc
        key = json.dumps(schema, sort_keys=True)
        with self._lock:
            if key not in self._validators:
                try:
                    Draft202012Validator.check_schema(schema)
                except SchemaError as exc:
                    raise DataError(f"the sample's JSON Schema is invalid: {exc.message}") from exc
                self._validators[key] = Draft202012Validator(
                    schema, format_checker=Draft202012Validator.FORMAT_CHECKER
                )
            return self._validators[key]

    def _schema_check(self, sample: Sample, value: Any) -> tuple[bool, dict[str, Any]]:
        from jsonschema.exceptions import best_match

        schema = sample.fields.get("schema")
        if schema is None:
            return True, {"schema": "none given"}
        validator = self._validator(schema)
        try:
            errors = list(itertools.islice(validator.iter_errors(value), 50))
        except RecursionError:
            return False, {"schema_error": {"path": "$", "message": "output nested too deeply to validate"}}
        if not errors:
            return True, {}
        first = best_match(errors)
        assert first is not None
        where = {"path": format_path(first.absolute_path), "message": first.message[:300]}
        return False, {"schema_error": where, "schema_error_count": len(errors)}

    def score(self, sample: Sample, output: str) -> Score:
        found = find_json(output, strict=self.strict_json_only)
        if found is None:
            reason = (
                "output is not JSON alone" if self.strict_json_only else "no JSON value found in the output"
            )
            return Score(
                0.0,
                "unparsed",
                {"parsed": 0.0, "schema_valid": 0.0} | dict.fromkeys(_FIELD_METRICS, 0.0),
                {"reason": reason},
            )
        value, where = found
        valid, details = self._schema_check(sample, value)
        metrics = {"parsed": 1.0, "schema_valid": float(valid)}
        details["json_found"] = where
        reference = sample.reference
        all_match = True
        if reference is not None:
            aligned = align_arrays(reference, value, self._unordered)
            wrong, extra, recall, precision = field_scores(reference, aligned)
            f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
            metrics |= dict(zip(_FIELD_METRICS, (recall, precision, f1), strict=True))
            all_match = not wrong
            if wrong:
                details["wrong_fields"] = wrong[:10]
            if extra:
                details["extra_fields"] = extra[:10]
            if self.require_exact and all_match and not same_shape(reference, aligned):
                all_match = False
                details["reason"] = "the output holds fields or items beyond the reference"
        ok = valid and all_match
        return Score(float(ok), "correct" if ok else "wrong", metrics, details)

    def reference_output(self, sample: Sample) -> str:
        if sample.reference is None:
            raise DataError(f"sample '{sample.id}' has no reference object")
        return json.dumps(sample.reference, ensure_ascii=False)
