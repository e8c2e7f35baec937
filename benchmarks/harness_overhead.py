"""What llmbench's Transformers backend adds to a plain `model.generate` call: the streamer clock and bookkeeping.

Run: .venv/bin/python benchmarks/harness_overhead.py [--model tiny-qwen2] [--tokens 64] [--batch 8] [--repeat 5]
     [--small]

Both sides generate the same left-padded batch greedily with ignore-EOS, so they do the same work;
the difference is the harness's cost (per-step timestamp, token accounting, decoding). The plain side
pads and builds `generate`'s arguments with the backend's own helpers, so the two cannot drift apart.
`--small` (CI): batch 2, 4 tokens, one repeat: the same code path in seconds; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time

from llmbench.backends.common import prompt_ids
from llmbench.backends.transformers import TransformersBackend
from llmbench.backends.transformers_batch import generate_kwargs, left_padded
from llmbench.config.models import resolve_model
from llmbench.testing.tinymodel import resolve_model_path
from llmbench.types import GenerationParams, GenerationRequest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny-qwen2")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--small", action="store_true", help="batch 2, 4 tokens, one repeat (CI)")
    args = parser.parse_args()
    if args.small:
        args.batch, args.tokens, args.repeat = 2, 4, 1

    import torch

    cfg = resolve_model(args.model)
    backend = TransformersBackend(cfg, resolve_model_path(cfg))
    backend.load()
    model, tokenizer = backend._model, backend.tokenizer
    params = GenerationParams(max_new_tokens=args.tokens, ignore_eos=True)
    reqs = [
        GenerationRequest(str(i), params, messages=({"role": "user", "content": f"Tell me about item {i}."},))
        for i in range(args.batch)
    ]
    pad = int(tokenizer.pad_token_id)
    input_ids, attention = left_padded([prompt_ids(tokenizer, r)[0] for r in reqs], pad, model.device)
    kwargs = generate_kwargs(params, pad, tokenizer, reasons=False)

    def plain() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        return time.perf_counter() - t0

    def harness() -> float:
        t0 = time.perf_counter()
        out = list(backend.generate(reqs, concurrency=args.batch))
        assert all(c.output_tokens == args.tokens for c in out)
        return time.perf_counter() - t0

    plain(), harness()  # warm-up
    a, b = [], []
    for _ in range(args.repeat):  # interleaved, so drift on a shared machine hits both alike
        a.append(plain())
        b.append(harness())
    pa, pb = statistics.median(a), statistics.median(b)
    print(f"model={args.model} batch={args.batch} tokens={args.tokens} repeat={args.repeat}")
    print(f"plain generate:   median {pa * 1000:.1f} ms  (min {min(a) * 1000:.1f})")
    print(f"llmbench backend: median {pb * 1000:.1f} ms  (min {min(b) * 1000:.1f})")
    print(
        f"overhead: {(pb - pa) * 1000:+.1f} ms per batch ({(pb / pa - 1) * 100:+.1f}%), includes tokenizing and decoding"
    )
    backend.close()


if __name__ == "__main__":
    main()
