"""The study YAML is validated like suites, and the plan names every cell, its GPUs and its state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmbench.errors import ConfigError
from llmbench.study.plan import build_plan
from llmbench.study.spec import load_study

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_the_shipped_studies_validate() -> None:
    for name in ("seeds", "demo"):
        plan = build_plan(load_study(ROOT / "studies" / f"{name}.yaml"), Path("/nonexistent"))
        assert plan.cells and plan.jobs


def test_seeds_study_loads_each_model_once_for_its_quality_suites() -> None:
    plan = build_plan(load_study(ROOT / "studies/seeds.yaml"), Path("/nonexistent"))
    quality = [j for j in plan.jobs if not j.exclusive and j.id.startswith("quality-")]
    assert {j.model.name for j in quality} >= {"qwen2.5-7b", "qwen2.5-7b-awq", "phi-3-mini", "glm-4"}
    assert all(len(j.cells) == 6 for j in quality)
    awq = next(j.model for j in quality if j.model.name == "qwen2.5-7b-awq")
    assert awq.quantization == "awq" and awq.model.endswith("AWQ")
    perf = [j for j in plan.jobs if j.id.startswith("perf-") and j.gpus > 0]
    assert perf and all(j.exclusive for j in perf)
    assert next(j for j in plan.jobs if j.id == "quality-glm-4").gpus == 0


def test_unknown_key_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: s\nmodels:\n  - tiny-qwen2\nsuites: [math]\nleaderbord: {}\n")
    with pytest.raises(
        ConfigError, match=r"study.yaml:5: unknown key 'leaderbord'.*did you mean 'leaderboard'"
    ):
        load_study(path)


def test_unknown_model_field_in_a_variant_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: s\nmodels:\n  - base: tiny-qwen2\n    name: v\n    set: {dtyp: float16}\nsuites: [math]\n",
    )
    with pytest.raises(ConfigError, match=r"study.yaml:5: .*unknown model config field 'dtyp'.*'dtype'"):
        load_study(path)


def test_a_bad_model_alias_names_its_entry(tmp_path: Path) -> None:
    path = write(tmp_path, "name: s\nmodels:\n  - tiny-qwen2\n  - no-such-model\nsuites: [math]\n")
    with pytest.raises(ConfigError, match=r"study.yaml:4: unknown model 'no-such-model'"):
        build_plan(load_study(path), tmp_path)


def test_a_task_the_suite_lacks_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "name: s\nmodels: [tiny-qwen2]\nsuites:\n  - {suite: math, tasks: [nope]}\n")
    with pytest.raises(ConfigError, match=r"study.yaml:4: suite math has no task 'nope'"):
        build_plan(load_study(path), tmp_path)


def test_two_variants_with_one_name_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name: s\nmodels: [tiny-qwen2, tiny-qwen2]\nsuites: [math]\n")
    with pytest.raises(ConfigError, match="two models are named 'tiny-qwen2'"):
        build_plan(load_study(path), tmp_path)


def test_cells_cross_models_suites_seeds_and_repeats(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: s\nmodels:\n  - tiny-qwen2\n  - {base: tiny-qwen2, backend: reference}\n"
        "suites:\n  - {suite: math, limit: 2, repeat: 2}\n  - json\nseeds: [0, 1]\n",
    )
    plan = build_plan(load_study(path), tmp_path)
    assert len(plan.cells) == 2 * (2 * 2 + 2)
    assert "math-tiny-qwen2-reference-seed1-r2" in {c.id for c in plan.cells}
    ref = next(c for c in plan.cells if c.model.name == "tiny-qwen2-reference")
    assert ref.gpus == 0 and ref.model.backend == "reference"


def test_cell_state_follows_its_files(tmp_path: Path) -> None:
    path = write(tmp_path, "name: s\nmodels: [tiny-qwen2]\nsuites: [{suite: math, limit: 2}]\n")
    study = load_study(path)
    cell = build_plan(study, tmp_path).cells[0]
    assert cell.state == "pending"
    header = {
        "run_id": cell.id,
        "suite_hash": cell.suite.content_hash,
        "model": cell.model.model_dump(mode="json"),
        "settings": {"limit": 2, "tasks": [], "seed": 0, "backend": "transformers"},
    }
    cell.journal.write_text(json.dumps({"header": header}) + "\n" + '{"request_id": "x", "sample": {}}\n')
    again = build_plan(study, tmp_path).cells[0]
    assert (again.state, again.samples_done) == ("partial", 1)
    header["settings"]["limit"] = 5  # type: ignore[index]
    cell.journal.write_text(json.dumps({"header": header}) + "\n")
    assert build_plan(study, tmp_path).cells[0].state == "stale"


def test_ray_without_the_package_is_one_line_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from llmbench import api
    from llmbench.errors import UserInputError
    from llmbench.study.runner import StudyOptions

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees where it is not installed
    with pytest.raises(UserInputError) as info:
        api.study(ROOT / "studies/demo.yaml", StudyOptions(ray="local"))
    assert "pip install 'llmbench[ray]'" in str(info.value) and "\n" not in str(info.value)


def test_a_suites_repeats_share_a_group_that_bypasses_the_cache_and_other_folders_stay_apart(
    tmp_path: Path,
) -> None:
    from llmbench.study.execute import job_spec

    text = (
        "name: s\nmodels:\n  - tiny-qwen2\nsuites:\n  - {suite: math, repeat: 2}\n  - json\nseeds: [1, 2]\n"
    )
    tonight = build_plan(load_study(write(tmp_path, text)), tmp_path / "a")
    other = build_plan(load_study(write(tmp_path, text)), tmp_path / "b")
    groups = {c.id: c.repeat_of for j in tonight.jobs for c in job_spec(j, None, [], tonight).cells}
    assert groups["math-tiny-qwen2-seed1-r1"] == groups["math-tiny-qwen2-seed1-r2"] is not None
    assert groups["math-tiny-qwen2-seed1-r1"] != groups["math-tiny-qwen2-seed2-r1"]
    assert groups["json-tiny-qwen2-seed1"] is None  # run once: no group, and the cache answers what it can
    elsewhere = {c.id: c.repeat_of for j in other.jobs for c in job_spec(j, None, [], other).cells}
    assert elsewhere["math-tiny-qwen2-seed1-r1"] != groups["math-tiny-qwen2-seed1-r1"]
