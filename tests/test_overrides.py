"""`--set KEY=VALUE` changes every task of a suite, validated by the suite's own models, and is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench import api
from llmbench.config.suite import load_suite
from llmbench.errors import UserInputError
from llmbench.run.overrides import apply_sets, parse_sets


def test_values_are_read_as_yaml() -> None:
    sets = parse_sets(["generation.max_new_tokens=64", "generation.temperature=0", "generation.stop=[a, b]"])
    assert sets == {
        "generation.max_new_tokens": 64,
        "generation.temperature": 0,
        "generation.stop": ["a", "b"],
    }


def test_every_task_gets_the_change_and_the_suite_hash_moves() -> None:
    suite = load_suite("suites/math.yaml")
    changed = apply_sets(suite, {"generation.max_new_tokens": 64})
    assert all(t.generation.max_new_tokens == 64 for t in changed.config.tasks)
    assert changed.content_hash != suite.content_hash
    assert apply_sets(suite, {}) is suite


@pytest.mark.parametrize(
    ("item", "named"),
    [
        ("generation.max_new_token=64", "generation.max_new_token"),
        ("generation.temperature=hot", "generation.temperature"),
        ("generation.max_new_tokens=0", "generation.max_new_tokens"),
        ("name.inner=1", "name"),
    ],
)
def test_a_bad_key_or_value_is_one_line_naming_it(item: str, named: str) -> None:
    with pytest.raises(UserInputError) as info:
        apply_sets(load_suite("suites/math.yaml"), parse_sets([item]))
    assert named in str(info.value) and "\n" not in str(info.value)


def test_a_malformed_item_is_refused() -> None:
    with pytest.raises(UserInputError, match="KEY=VALUE"):
        parse_sets(["generation.temperature"])


def test_the_changes_are_recorded_in_settings_and_kept_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    model = api.model("tiny-qwen2", backend="reference")
    opts = api.RunOptions(limit=1, output=out, sets={"generation.max_new_tokens": 8})
    result, _ = api.run("suites/math.yaml", model, opts)
    assert result.settings.set == {"generation.max_new_tokens": 8}
    plain, _ = api.run("suites/math.yaml", model, api.RunOptions(limit=1, output=tmp_path / "p.json"))
    assert plain.settings.set is None
    assert result.fingerprint["generation"] != plain.fingerprint["generation"]
    resumed = api.RunOptions(output=out).filled_from(opts.settings("reference"))
    assert resumed.sets == {"generation.max_new_tokens": 8}
