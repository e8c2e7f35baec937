"""`--set KEY=VALUE`: one change to every task of a suite, validated as if the suite file said it.

`--set generation.max_new_tokens=64` sets that key in each task's config; the value is read as YAML
(`0`, `0.7`, `true`, `[a, b]`, text). The changed suite's hash covers the changes, so its runs are
fingerprinted apart from the file's own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from llmbench.config.suite import Suite, TaskSpec
from llmbench.errors import UserInputError, validation_line
from llmbench.hashing import stable_hash

KEY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """`["generation.temperature=0"]` -> `{"generation.temperature": 0}`; a malformed item is one line."""
    import yaml

    sets: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not KEY.match(key):
            raise UserInputError(
                f"--set {item}: expected KEY=VALUE with a dotted key",
                hint="e.g. --set generation.temperature=0",
            )
        try:
            sets[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            sets[key] = text  # not YAML: the text as it is
    return sets


def apply_sets(suite: Suite, sets: Mapping[str, Any]) -> Suite:
    """The suite with every task changed by `sets`, each task validated again; a bad key or value names it."""
    if not sets:
        return suite
    tasks = [_changed(task, sets) for task in suite.config.tasks]
    config = suite.config.model_copy(update={"tasks": tasks})
    return Suite(config=config, path=suite.path, content_hash=stable_hash([suite.content_hash, dict(sets)]))


def _changed(task: TaskSpec, sets: Mapping[str, Any]) -> TaskSpec:
    from pydantic import ValidationError

    data = task.model_dump(exclude_unset=True)
    for key, value in sets.items():
        *parents, last = key.split(".")
        node = data
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise UserInputError(
                    f"--set {key}: '{'.'.join(parents[: i + 1])}' is not a group of settings"
                )
            node = child
        node[last] = value
    try:
        return TaskSpec.model_validate(data)
    except ValidationError as exc:
        raise UserInputError(f"--set: {validation_line(exc)} (task '{task.name}')") from None
