"""Suite and model configs: valid files load, every kind of mistake names file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench.config.models import ModelConfig, list_models, resolve_model
from llmbench.config.suite import list_suites, load_suite
from llmbench.errors import ConfigError

GOOD = """\
name: demo
tasks:
  - name: qa
    dataset: {local: data.jsonl, reference_field: answer}
    prompt:
      template: "Q: {{ question }}"
    scorer: {name: exact}
"""


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_suites_and_models_all_validate() -> None:
    assert {"coding", "math", "long_context", "json", "multilingual", "instruction", "perf"} <= set(
        list_suites()
    )
    for name in list_suites():
        assert load_suite(name).config.tasks
    assert {"tiny-qwen2", "qwen2.5-7b", "phi-3-mini", "llama3-8b", "yi-1.5-6b", "deepseek-coder-7b"} <= set(
        list_models()
    )
    for name in list_models():
        assert isinstance(resolve_model(name), ModelConfig)


def test_suite_loads_and_hash_follows_content(tmp_path: Path) -> None:
    a = load_suite(write(tmp_path, GOOD))
    b = load_suite(write(tmp_path, GOOD.replace("Q:", "Question:"), "other.yaml"))
    assert a.config.tasks[0].name == "qa"
    assert a.content_hash != b.content_hash


def test_typo_in_key_names_line_and_key_with_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("    scorer:", "    scorre:"))
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    msg = str(err.value)
    assert f"{path}:7:" in msg
    assert "unknown key 'scorre'" in msg and "did you mean 'scorer'" in msg
    assert err.value.exit_code == 2


def test_wrong_type_names_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "    generation: {max_new_tokens: lots}\n")
    with pytest.raises(ConfigError, match=r":8: tasks\.0\.generation\.max_new_tokens"):
        load_suite(path)


def test_missing_required_field(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ntasks:\n  - dataset: {local: a.jsonl}\n    scorer: {name: exact}\n")
    with pytest.raises(ConfigError, match="missing required key 'name'"):
        load_suite(path)


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ntasks: [\n  - {name: a\n")
    with pytest.raises(ConfigError, match=r"suite\.yaml:\d+:\d+: YAML syntax error"):
        load_suite(path)


def test_duplicate_key_is_an_error_not_an_overwrite(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "name: again\n")
    with pytest.raises(ConfigError, match="duplicate key 'name'"):
        load_suite(path)


def test_dataset_needs_exactly_one_source(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("{local: data.jsonl,", "{local: data.jsonl, hf: x/y,"))
    with pytest.raises(ConfigError, match="exactly one of builtin, local, hf"):
        load_suite(path)


def test_duplicate_task_names_refused(tmp_path: Path) -> None:
    body = GOOD.split("tasks:\n")[1]
    path = write(tmp_path, "name: d\ntasks:\n" + body + body)
    with pytest.raises(ConfigError, match="duplicate task name"):
        load_suite(path)


def test_missing_suite_file_lists_shipped_suites() -> None:
    with pytest.raises(ConfigError, match="no such suite file") as err:
        load_suite("nope.yaml")
    assert "math" in str(err.value)


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_suite(write(tmp_path, "- just\n- a list\n"))


def test_unknown_model_alias_is_a_user_error() -> None:
    with pytest.raises(ConfigError, match="unknown model 'qwen9'") as err:
        resolve_model("qwen9")
    assert err.value.exit_code == 2


def test_model_accepts_hf_id_and_local_directory(tmp_path: Path) -> None:
    assert resolve_model("Qwen/Qwen2.5-0.5B-Instruct").model == "Qwen/Qwen2.5-0.5B-Instruct"
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)).model == str(tmp_path.resolve())


def test_model_config_typo_is_caught(tmp_path: Path) -> None:
    path = write(tmp_path, "name: m\nmodel: a/b\ntensor_paralel_size: 2\n", "m.yaml")
    with pytest.raises(
        ConfigError, match=r"m\.yaml:3: unknown key 'tensor_paralel_size'.*tensor_parallel_size"
    ):
        resolve_model(str(path))


def test_generation_falls_back_task_then_suite_then_model() -> None:
    from llmbench.config.suite import GenerationSpec

    task = GenerationSpec(max_new_tokens=10)
    suite = GenerationSpec(max_new_tokens=20, temperature=0.5)
    model = GenerationSpec(top_p=0.9, temperature=0.1)
    merged = task.merged(suite, model)
    assert (merged.max_new_tokens, merged.temperature, merged.top_p) == (10, 0.5, 0.9)


def test_a_misspelt_alias_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="unknown model") as err:
        resolve_model("qwen2.5-7c")
    assert "did you mean qwen2.5-7b" in str(err.value)


def test_a_path_that_does_not_exist_says_so(tmp_path: Path) -> None:
    for spec in (str(tmp_path / "nowhere"), "./models/mine", "~/nope/model.yaml"):
        with pytest.raises(ConfigError, match="no such file or directory") as err:
            resolve_model(spec)
        assert "unknown model" not in str(err.value)


def test_a_hugging_face_id_is_a_model() -> None:
    assert resolve_model("meta-llama/Llama-3.1-8B-Instruct").model == "meta-llama/Llama-3.1-8B-Instruct"
