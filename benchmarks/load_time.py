"""Load time of a model through each backend, with the state it was measured in and the import time apart.

Run: .venv/bin/python benchmarks/load_time.py [--model tiny-qwen2] [--small] [transformers] [vllm] [openai]

`load_time_s` is what the backend reports. In process (transformers, vllm) the libraries are imported
before its clock starts; the imports are timed here only to show they are outside it. The managed
server (openai without a base_url) counts from starting the server's process to its first answer,
vLLM's imports inside it: its row shows no imports of its own. Each row prints the load's state
(`load_state` in the results file): vLLM's torch.compile cache hit or miss (or off when eager), CUDA
graphs captured or not, the engine's version, the Transformers placement path.
`--small` (CI): tiny-qwen2 through the backends named (default: transformers), each loaded once.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from llmbench.config.models import resolve_model
from llmbench.testing.tinymodel import resolve_model_path


def _backend_class(name: str) -> Any:
    if name == "vllm":
        from llmbench.backends.vllm import VLLMBackend
        from llmbench.backends.vllm_engine import import_vllm

        import_vllm()
        return VLLMBackend
    if name == "openai":
        from llmbench.backends.openai import OpenAIBackend

        return OpenAIBackend
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from llmbench.backends.transformers import TransformersBackend

    return TransformersBackend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("backends", nargs="*", help="transformers, vllm, openai (a managed server)")
    parser.add_argument("--model", default="tiny-qwen2")
    parser.add_argument("--small", action="store_true", help="tiny-qwen2, transformers unless named (CI)")
    args = parser.parse_args()
    if args.small:
        args.model = "tiny-qwen2"
    if not args.backends:
        args.backends = ["transformers"] if args.small else ["transformers", "vllm"]
    if unknown := set(args.backends) - {"transformers", "vllm", "openai"}:
        parser.error(f"unknown backends {sorted(unknown)}: choose among transformers, vllm, openai")
    print("| backend | imports (not counted) | load_time_s | around load() | state |\n|---|---|---|---|---|")
    for name in args.backends:
        start = time.perf_counter()
        cls = _backend_class(name)
        imports = time.perf_counter() - start
        cfg = resolve_model(args.model, backend=name)
        backend = cls(cfg, resolve_model_path(cfg))
        start = time.perf_counter()
        info = backend.load()
        around = time.perf_counter() - start
        state = info.load_state.model_dump(exclude_none=True) if info.load_state else {}
        shown = "; ".join(f"{k}={v}" for k, v in state.items())
        print(
            f"| {name} | {imports:.1f} s | {info.load_time_s:.2f} s | {around:.2f} s | {shown} |", flush=True
        )
        backend.close()


if __name__ == "__main__":  # vLLM's engine process starts by spawning: it must not rerun this
    main()
