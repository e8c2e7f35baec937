"""Load time of a model through each in-process backend, with the import time shown apart.

Run: .venv/bin/python benchmarks/load_time.py [--model tiny-qwen2] transformers vllm

`load_time_s` is what the backend reports: imports done, from reading weights to ready to generate.
The imports are timed here only to show they are outside it on every backend.
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
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from llmbench.backends.transformers import TransformersBackend

    return TransformersBackend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("backends", nargs="+", choices=["transformers", "vllm"])
    parser.add_argument("--model", default="tiny-qwen2")
    args = parser.parse_args()
    for name in args.backends:
        start = time.perf_counter()
        cls = _backend_class(name)
        imports = time.perf_counter() - start
        cfg = resolve_model(args.model, backend=name)
        backend = cls(cfg, resolve_model_path(cfg))
        start = time.perf_counter()
        info = backend.load()
        around = time.perf_counter() - start
        print(
            f"{name}: imports {imports:.1f} s, load_time_s {info.load_time_s:.2f} s (around load() {around:.2f} s)"
        )
        backend.close()


if __name__ == "__main__":  # vLLM's engine process starts by spawning: it must not rerun this
    main()
