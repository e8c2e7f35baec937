"""A load time says what it was measured in: vLLM's compile cache found or written, CUDA graphs, the engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmbench import api
from llmbench.backends.vllm_load_state import CompileCacheProbe, server_load_state, vllm_cache_root
from llmbench.config.models import resolve_model
from llmbench.run.options import RunOptions


def _compiled_entry(root: Path, name: str) -> None:
    """What a compiling vLLM load leaves: its config's directory with a rank folder and the artifact."""
    rank = root / "torch_compile_cache" / "torch_aot_compile" / name / "rank_0_0"
    rank.mkdir(parents=True)
    (rank / "model").write_bytes(b"compiled")


def test_a_compiling_load_that_adds_its_entry_missed_the_cache(tmp_path: Path) -> None:
    _compiled_entry(tmp_path, "another-model")
    probe = CompileCacheProbe({"VLLM_CACHE_ROOT": str(tmp_path)})
    _compiled_entry(tmp_path, "this-model")
    assert probe.verdict(compiles=True) == "miss"


def test_a_compiling_load_that_adds_nothing_found_its_entry(tmp_path: Path) -> None:
    _compiled_entry(tmp_path, "this-model")
    probe = CompileCacheProbe({"VLLM_CACHE_ROOT": str(tmp_path)})
    assert probe.verdict(compiles=True) == "hit"


def test_an_eager_load_and_a_disabled_cache_say_so(tmp_path: Path) -> None:
    probe = CompileCacheProbe({"VLLM_CACHE_ROOT": str(tmp_path)})
    assert probe.verdict(compiles=False) == "off"
    assert probe.verdict(compiles=True) is None  # it compiled, yet vLLM kept nothing: no verdict
    off = CompileCacheProbe({"VLLM_CACHE_ROOT": str(tmp_path), "VLLM_DISABLE_COMPILE_CACHE": "1"})
    assert off.verdict(compiles=True) == "disabled"


def test_the_cache_root_follows_vllms_own_rule(tmp_path: Path) -> None:
    assert vllm_cache_root({"VLLM_CACHE_ROOT": str(tmp_path)}) == tmp_path
    assert vllm_cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "vllm"
    assert vllm_cache_root({}) == Path.home() / ".cache" / "vllm"


def test_a_managed_server_counts_its_imports_and_reads_its_flags(tmp_path: Path) -> None:
    probe = CompileCacheProbe({"VLLM_CACHE_ROOT": str(tmp_path)})
    eager = server_load_state({"enforce_eager": True}, probe, on_cpu=False)
    assert eager.imports_included and eager.compile_cache == "off" and eager.cuda_graphs is False
    _compiled_entry(tmp_path, "served-model")
    compiled = server_load_state({"enforce_eager": False}, probe, on_cpu=False)
    assert compiled.compile_cache == "miss" and compiled.cuda_graphs is True
    no_compile = server_load_state({"compilation_config": {"mode": 0}}, probe, on_cpu=False)
    assert no_compile.compile_cache == "off"


@pytest.mark.e2e
def test_the_transformers_load_path_reaches_the_results_file(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    opts = RunOptions(limit=1, tasks=["gsm8k"], output=out, max_new_tokens=2, warmup=False)
    api.run("suites/math.yaml", "tiny-qwen2", opts)
    state = json.loads(out.read_text())["backend"]["load_state"]
    assert state["load_path"] == "from_pretrained, dtype float32, cpu"
    assert state["engine_version"].startswith("transformers ") and state["cuda_graphs"] is False
    assert state["imports_included"] is False and state.get("compile_cache") is None


@pytest.mark.vllm
@pytest.mark.slow
def test_a_second_vllm_load_with_a_warm_compile_cache_reports_a_hit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compiled (not eager) on the CPU build, into a cache of its own: about 3 minutes on 2 cores."""
    pytest.importorskip("vllm")
    from llmbench.backends.vllm import VLLMBackend
    from llmbench.testing.tinymodel import resolve_model_path

    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "vllm-cache"))  # the engine's processes inherit it
    config = resolve_model("tiny-qwen2", backend="vllm")
    config = config.model_copy(update={"enforce_eager": False, "max_model_len": 512})
    cold = VLLMBackend(config, resolve_model_path(config))
    try:
        state = cold.load().load_state
    finally:
        cold.close()
    assert state is not None and state.compile_cache == "miss"
    assert state.cuda_graphs is False and state.imports_included is False  # a CPU captures no graphs
    assert state.engine_version and state.engine_version.startswith("vllm")
    out = tmp_path / "warm.json"
    api.run("suites/math.yaml", config, RunOptions(limit=1, tasks=["gsm8k"], output=out, max_new_tokens=2))
    assert json.loads(out.read_text())["backend"]["load_state"]["compile_cache"] == "hit"
