"""`llmbench doctor` on one screen: GPUs and who holds their memory, libraries, backends, cached models."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from llmbench.telemetry.doctor import HostReport
from llmbench.telemetry.gpu_survey import GpuFacts, GpuSurvey


def print_host_report(report: HostReport, console: Console) -> None:
    """The report as a user pastes it into a bug report; `--json` gives the same as data."""
    console.print(f"python {report.python} · {report.platform}", highlight=False)
    _print_gpus(report.gpus, console)
    libs = [
        f"{lib.name} {lib.version or '-'}{_import_state(lib.imports, lib.problem)}"
        for lib in report.libraries
    ]
    console.print("libraries: " + " · ".join(libs), highlight=False)
    ready = [
        (f"{b.name} ({b.note})" if b.note else b.name) if b.can_run else f"{b.name} (no: {b.why_not})"
        for b in report.backends
    ]
    console.print("backends: " + " · ".join(ready), highlight=False)
    by_state: dict[str, list[str]] = {}
    for m in report.models:
        by_state.setdefault(m.weights, []).append(m.alias)
    for state in ("cached", "local", "missing", "none needed"):
        if state in by_state:
            console.print(f"models, weights {state}: {', '.join(by_state[state])}", highlight=False)
    if report.ray is not None:
        reach = {True: "reachable", False: "unreachable", None: "not checked"}[report.ray.reachable]
        console.print(f"ray: {report.ray.address} {reach} ({report.ray.detail})", highlight=False)


def _import_state(imports: bool | None, problem: str | None) -> str:
    if problem is not None:
        return f" ({problem})"
    return "" if imports is None else " (imports)"


def _print_gpus(survey: GpuSurvey, console: Console) -> None:
    if not survey.gpus:
        console.print(f"no GPU: {survey.unavailable}", highlight=False)
        return
    console.print(f"NVIDIA driver {survey.driver} · CUDA {survey.cuda_driver} (driver's)", highlight=False)
    table = Table(box=None, pad_edge=False)
    for col in ("nvml", "uuid", "name", "free / total GiB", "energy", "held by"):
        table.add_column(col)
    for gpu in survey.gpus:
        table.add_row(
            gpu.index + ("" if gpu.visible else " (hidden)"),
            gpu.uuid[:12],
            gpu.name,
            f"{gpu.free_mib / 1024:.1f} / {gpu.total_mib / 1024:.1f}",
            "counter" if gpu.energy_counter else "-",
            _holders(gpu),
        )
    console.print(table)
    console.print(_order_line(survey), highlight=False)


def _holders(gpu: GpuFacts) -> str:
    if not gpu.holders:
        return "-"
    return ", ".join(
        f"{h.name}[{h.pid}] {h.used_mib / 1024:.1f} GiB" if h.used_mib is not None else f"{h.name}[{h.pid}]"
        for h in gpu.holders
    )


def _order_line(survey: GpuSurvey) -> str:
    if survey.cuda_problem is not None:
        return f"CUDA: {survey.cuda_problem}"
    if survey.cuda_uuids is None:
        return "CUDA: not read"
    agree = (
        "same order as NVML"
        if survey.same_order
        else "ORDER DIFFERS from NVML (set CUDA_DEVICE_ORDER=PCI_BUS_ID)"
    )
    return f"CUDA sees {len(survey.cuda_uuids)} GPU(s), {agree}"
