"""llmbench's client-side TTFT against vLLM's own `vllm:time_to_first_token_seconds` histogram.

Run: .venv/bin/python benchmarks/ttft_vs_server.py [--model tiny-qwen2] [--requests 40] [--tokens 32] [--small]

Starts a vLLM OpenAI server for the model on loopback (llmbench's managed mode), sends token-id
prompts one at a time through the OpenAI backend, and prints the harness's TTFT quantiles beside
the server's (interpolated inside its histogram buckets, as Prometheus does) and the bucket that
holds each. The harness clock starts before the HTTP request and stops at the first streamed chunk
with content, so it reads the engine's TTFT plus the HTTP round trip and the API front end.
`--small` (CI): 4 requests of 32 prompt tokens and 4 output tokens through the same managed server.
"""

from __future__ import annotations

import argparse
import statistics

from llmbench.backends.managed_server import fetch_server_metrics, histogram_quantile
from llmbench.backends.openai import OpenAIBackend
from llmbench.config.models import resolve_model
from llmbench.testing.tinymodel import resolve_model_path
from llmbench.types import GenerationParams, GenerationRequest

METRIC = "vllm:time_to_first_token_seconds"
E2E = "vllm:e2e_request_latency_seconds"


def delta(before: dict[str, object], after: dict[str, object]) -> list[tuple[float, float]]:
    old = dict(before.get("buckets", []))  # type: ignore[arg-type]
    return [(le, count - old.get(le, 0.0)) for le, count in after["buckets"]]  # type: ignore[union-attr]


def bucket_of(buckets: list[tuple[float, float]], q: float) -> tuple[float, float]:
    total, lower = buckets[-1][1], 0.0
    for le, count in sorted(buckets):
        if count >= q * total:
            return lower, le
        lower = le
    return lower, float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-qwen2")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=32, help="output tokens per request")
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--small", action="store_true", help="4 requests, 32 tokens in, 4 out (CI)")
    args = parser.parse_args()
    if args.small:
        args.requests, args.tokens, args.prompt_tokens = 4, 4, 32

    config = resolve_model(args.model, backend="openai")
    backend = OpenAIBackend(config, resolve_model_path(config))
    backend.load()  # managed mode: no base_url, so llmbench starts a vLLM server on loopback
    try:
        assert backend.base_url is not None
        scraped = fetch_server_metrics(backend.base_url)
        before, e2e_before = scraped.get(METRIC, {}), scraped.get(E2E, {})
        params = GenerationParams(max_new_tokens=args.tokens, ignore_eos=True)
        requests = [
            GenerationRequest(
                f"r{i}",
                params,
                prompt_token_ids=tuple((7 * i + k) % 500 + 3 for k in range(args.prompt_tokens)),
            )
            for i in range(args.requests)
        ]
        out = list(backend.generate(requests, concurrency=1))
        scraped = fetch_server_metrics(backend.base_url)
        after, e2e_after = scraped[METRIC], scraped[E2E]
    finally:
        backend.close()
    buckets = delta(before, after)
    ttfts = sorted(c.ttft_ms for c in out if c.ttft_ms is not None)
    e2e = statistics.median(c.latency_ms for c in out if c.latency_ms is not None)
    print(
        f"{len(ttfts)} requests, {args.prompt_tokens} prompt tokens, {args.tokens} output tokens, concurrency 1"
    )
    for q in (0.5, 0.9):
        ours = ttfts[min(len(ttfts) - 1, int(q * len(ttfts)))]
        server = histogram_quantile(buckets, q)
        low, high = bucket_of(buckets, q)
        print(
            f"p{int(q * 100)}: llmbench {ours:.1f} ms | server {1000 * (server or 0):.1f} ms"
            f" (bucket {1000 * low:.0f}-{1000 * high:.0f} ms)"
        )
    server_e2e = histogram_quantile(delta(e2e_before, e2e_after), 0.5)
    print(f"E2E p50: llmbench {e2e:.1f} ms | server {1000 * (server_e2e or 0):.1f} ms")


if __name__ == "__main__":
    main()
