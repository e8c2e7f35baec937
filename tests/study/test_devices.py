"""A study's host GPUs are positions in the parent's CUDA_VISIBLE_DEVICES; workers get the physical GPUs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from llmbench.errors import UserInputError
from llmbench.study.devices import host_devices, worker_devices, worker_environment
from llmbench.study.execute import Driver, StudyProgress, run_pool
from llmbench.study.manifest import new_manifest
from llmbench.study.plan import build_plan
from llmbench.study.spec import load_study


def no_nvml() -> int:
    raise AssertionError("NVML is not asked when CUDA_VISIBLE_DEVICES or --gpus says")


def test_host_gpus_are_the_parents_visible_gpus_in_its_order() -> None:
    assert host_devices("4,5,6,7", 4, no_nvml) == ["4", "5", "6", "7"]
    assert host_devices("6,4", None, no_nvml) == ["6", "4"]
    assert host_devices("3,-1,5", None, no_nvml) == ["3"]  # like CUDA: an invalid entry ends the list
    assert host_devices("", None, no_nvml) == []
    assert host_devices("4,5,6,7", 2, no_nvml) == ["4", "5"]
    assert host_devices(None, 3, no_nvml) == ["0", "1", "2"]  # fake ids on a CPU host
    assert host_devices(None, None, lambda: 2) == ["0", "1"]  # NVML's count, in PCI order


def test_uuids_and_mig_ids_pass_through_as_the_worker_names_them() -> None:
    parent = "GPU-8f2a1c3e-0000-1111-2222-333344445555,MIG-5c1d2e3f-aaaa-bbbb-cccc-ddddeeeeffff,GPU-77"
    devices = host_devices(parent, None, no_nvml)
    assert worker_devices(devices, [2, 0]) == ["GPU-77", "GPU-8f2a1c3e-0000-1111-2222-333344445555"]
    env = worker_environment({}, devices, [1])
    assert env["CUDA_VISIBLE_DEVICES"] == "MIG-5c1d2e3f-aaaa-bbbb-cccc-ddddeeeeffff"


def test_more_gpus_than_the_parent_sees_is_refused() -> None:
    with pytest.raises(UserInputError, match="names 2 GPU"):
        host_devices("4,5", 4, no_nvml)


def test_every_worker_counts_gpus_in_pci_order_like_nvml() -> None:
    env = worker_environment(
        {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "4,5,6,7"}, ["4", "5", "6", "7"], [2, 3]
    )
    assert env == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "6,7", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert worker_environment({}, ["4"], [])["CUDA_VISIBLE_DEVICES"] == ""  # a CPU job sees no GPU


def test_worker_processes_see_the_physical_subset_they_were_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    study = tmp_path / "s.yaml"
    study.write_text(
        "name: subsets\nmodels:\n  - {base: tiny-qwen2, backend: reference, name: two}\n"
        "  - {base: tiny-qwen2, backend: reference, name: one}\n"
        "suites:\n  - {suite: math, limit: 1, tasks: [gsm8k]}\n"
    )
    plan = build_plan(load_study(study), tmp_path / "out")
    need = {"quality-two": 2, "quality-one": 1}  # the reference backend needs none: ask as a GPU model would
    jobs = [replace(j, gpus=need[j.id]) for j in plan.jobs]
    devices = host_devices("4,5,6,7", None, no_nvml)
    driver = Driver(plan, new_manifest(plan, "pool", [0, 1, 2, 3], devices), StudyProgress())
    run_pool(jobs, devices, driver)
    assert not driver.failed
    seen = {}
    for model in ("two", "one"):
        result = json.loads((tmp_path / "out" / f"math-{model}-seed0.json").read_text())
        env = result["environment"]
        assert env["cuda_device_order"] == "PCI_BUS_ID"
        seen[model] = (env["cuda_visible_devices"], result["summary"]["placement"]["devices"])
    assert seen == {"two": ("4,5", ["4", "5"]), "one": ("6", ["6"])}
    assert {c.id: c.devices for c in driver.manifest.cells} == {
        "math-two-seed0": ["4", "5"],
        "math-one-seed0": ["6"],
    }
