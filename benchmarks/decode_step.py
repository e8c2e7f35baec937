"""Per-step decode time at batch 1: llmbench's Transformers backend against plain `model.generate`, and why.

Run: python benchmarks/decode_step.py [--model tiny-qwen2|qwen2.5-7b-dummy] [--prompt 128] [--tokens 64]
     [--repeat 3] [--compile] [--out FILE.json] [--small]

Every row decodes the same prompt greedily on the same loaded model. Per-step time is
(time for N tokens - time for 1 token) / (N - 1), so prefill and set-up cancel out, except for the
backend row, which is its own TPOT: (E2E - TTFT) / (N - 1). The rows that explain a gap:
- `generate, static cache`: a preallocated KV cache instead of the default growing one;
- `generate, eager attention`: the reference attention instead of SDPA;
- `forward loop`: one `model(...)` call per token with the cache, no `generate` machinery;
- on CUDA, the loop's kernel time per step from the profiler, and its share of the step's wall time:
  near 100% means the GPU is busy (the kernels, attention among them, set the pace); far below means
  the GPU waits for Python to launch kernels (CPU-bound dispatch, which CUDA graphs remove);
- with --compile, `generate` with a static cache and torch.compile (reduce-overhead: CUDA graphs).
Prints a table and writes the figures as JSON with --out. Runs on a CPU (no profiler row there).
`--small` (CI): 16 prompt tokens, 4 decoded, one repeat, on whatever device the model config takes (the
CPU here): every row but the CUDA profiler's, in seconds; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmbench.backends.transformers import TransformersBackend
from llmbench.config.models import resolve_model
from llmbench.testing.tinymodel import resolve_model_path
from llmbench.types import GenerationParams, GenerationRequest


def _sync(torch: Any) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(torch: Any, fn: Callable[[], Any]) -> float:
    _sync(torch)
    t0 = time.perf_counter()
    fn()
    _sync(torch)
    return time.perf_counter() - t0


def per_step_ms(torch: Any, run: Callable[[int], Any], tokens: int, repeat: int) -> float:
    """Median over `repeat` of (t(tokens) - t(1)) / (tokens - 1), in ms; interleaved against drift."""
    run(tokens), run(1)  # warm-up (and compilation, where there is one)
    steps = []
    for _ in range(repeat):
        long, short = _timed(torch, lambda: run(tokens)), _timed(torch, lambda: run(1))
        steps.append((long - short) / (tokens - 1) * 1000)
    return statistics.median(steps)


def kernel_ms_per_step(torch: Any, step: Callable[[], Any], steps: int) -> float | None:
    """CUDA kernel time per decode step from the profiler; None without CUDA."""
    if not torch.cuda.is_available():
        return None
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        _sync(torch)
    total_us = 0.0
    for evt in prof.key_averages():
        total_us += getattr(evt, "self_device_time_total", None) or getattr(evt, "self_cuda_time_total", 0.0)
    return total_us / 1000 / steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny-qwen2")
    parser.add_argument("--prompt", type=int, default=128, help="prompt tokens")
    parser.add_argument("--tokens", type=int, default=64, help="tokens to decode")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also try torch.compile on a static cache")
    parser.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    parser.add_argument("--small", action="store_true", help="16 prompt tokens, 4 decoded, one repeat (CI)")
    args = parser.parse_args()
    if args.small:
        args.prompt, args.tokens, args.repeat = 16, 4, 1

    import torch

    cfg = resolve_model(args.model)
    backend = TransformersBackend(cfg, resolve_model_path(cfg))
    info = backend.load()
    model = backend._model
    vocab = model.config.get_text_config().vocab_size
    ids = [(7 + 31 * i) % vocab for i in range(args.prompt)]  # any fixed ids: greedy, EOS ignored
    device = model.device
    input_ids = torch.tensor([ids], device=device)
    attention = torch.ones_like(input_ids)
    rows: dict[str, float | None] = {}
    notes: dict[str, str] = {}

    def backend_tpot(n: int) -> float:
        params = GenerationParams(max_new_tokens=n, ignore_eos=True)
        [c] = backend.generate([GenerationRequest("d", params, prompt_token_ids=tuple(ids))], concurrency=1)
        assert c.output_tokens == n and c.tpot_ms is not None
        return c.tpot_ms

    backend_tpot(args.tokens)  # warm-up
    rows["llmbench backend (TPOT)"] = statistics.median(backend_tpot(args.tokens) for _ in range(args.repeat))

    def generate(**extra: Any) -> Callable[[int], Any]:
        def run(n: int) -> Any:
            with torch.inference_mode():
                return model.generate(
                    input_ids=input_ids,
                    attention_mask=attention,
                    max_new_tokens=n,
                    min_new_tokens=n,
                    do_sample=False,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                    eos_token_id=None,
                    pad_token_id=0,
                    **extra,
                )

        return run

    def variant(name: str, run: Callable[[int], Any]) -> None:
        try:
            rows[name] = per_step_ms(torch, run, args.tokens, args.repeat)
        except Exception as exc:  # a variant this transformers/torch cannot do is a finding, not a crash
            rows[name] = None
            notes[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"

    variant("generate, default cache", generate())
    variant("generate, static cache", generate(cache_implementation="static"))
    attn = getattr(model.config, "_attn_implementation", None)
    if hasattr(model, "set_attn_implementation") and attn != "eager":
        try:
            model.set_attn_implementation("eager")
            variant("generate, eager attention", generate())
        finally:
            model.set_attn_implementation(attn)

    def forward_loop(n: int) -> Any:
        with torch.inference_mode():
            out = model(input_ids=input_ids, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            for _ in range(n - 1):
                out = model(input_ids=token, past_key_values=past, use_cache=True)
                past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            return token

    variant("forward loop", forward_loop)
    if torch.cuda.is_available():
        with torch.inference_mode():
            out = model(input_ids=input_ids, use_cache=True)
            state = {"past": out.past_key_values, "token": out.logits[:, -1:].argmax(-1)}

            def one_step() -> None:
                o = model(input_ids=state["token"], past_key_values=state["past"], use_cache=True)
                state["past"], state["token"] = o.past_key_values, o.logits[:, -1:].argmax(-1)

            kernel = kernel_ms_per_step(torch, one_step, min(args.tokens, 32))
        rows["forward loop: CUDA kernel time"] = kernel
        wall = rows.get("forward loop")
        if kernel is not None and wall:
            notes["forward loop: CUDA kernel time"] = f"{kernel / wall:.0%} of the loop's wall time per step"
    if args.compile:
        model.forward = torch.compile(model.forward, mode="reduce-overhead")
        variant("generate, static cache + torch.compile", generate(cache_implementation="static"))

    bound = None
    if info.weights_bytes and torch.cuda.is_available():
        from llmbench.run.perf import peak_bandwidth_bytes_s

        peak = peak_bandwidth_bytes_s(info.gpus)
        bound = info.weights_bytes / peak * 1000 if peak else None
    figures = {
        "model": args.model,
        "device": info.device,
        "dtype": info.dtype,
        "attention": attn,
        "prompt_tokens": args.prompt,
        "decode_tokens": args.tokens,
        "repeat": args.repeat,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "host": platform.node(),
        "per_step_ms": rows,
        "notes": notes,
        "bandwidth_floor_ms": bound,  # weights / peak memory bandwidth: no decode step can be faster
    }
    print(
        f"{args.model} on {info.device} ({info.dtype}, attention {attn}), batch 1, "
        f"{args.prompt} prompt tokens, {args.tokens} decoded, median of {args.repeat}"
    )
    for name, ms in rows.items():
        text = "failed" if ms is None else f"{ms:8.3f} ms/step"
        print(f"  {name:42s} {text}  {notes.get(name, '')}")
    if bound is not None:
        print(f"  {'bandwidth floor (weights / peak bandwidth)':42s} {bound:8.3f} ms/step")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    backend.close()


if __name__ == "__main__":
    main()
