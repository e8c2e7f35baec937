"""Cost of the inter-token latency distribution (cluster bootstrap over requests) as a run's tokens grow.

Run: .venv/bin/python benchmarks/itl_intervals.py [--requests 1319] [--tokens 512] [--repeat 3] [--small]

The default is a full GSM8K at 512 output tokens: 1319 requests, 675k gaps. The statistics should cost
well under a second there, small beside generating those tokens.
`--small` (CI): 40 requests of 16 tokens, one repeat: the same statistics on a few hundred gaps.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from llmbench.scoring.clustered import clustered_distribution


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1319)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="40 requests of 16 tokens, one repeat (CI)")
    args = parser.parse_args()
    if args.small:
        args.requests, args.tokens, args.repeat = 40, 16, 1
    rng = np.random.default_rng(0)
    for n_requests in sorted({max(2, args.requests // 100), max(2, args.requests // 10), args.requests}):
        levels = rng.normal(50.0, 10.0, size=n_requests)
        gaps = [level + rng.gamma(2.0, 2.0, size=args.tokens - 1) for level in levels]
        times, cpu = [], []
        for _ in range(args.repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            dist = clustered_distribution(gaps)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        assert dist is not None
        print(
            f"{n_requests:>6} requests x {args.tokens - 1} gaps = {dist.n:>8} gaps: "
            f"best {min(times):.3f} s wall, {min(cpu):.3f} s CPU; "
            f"mean {dist.mean:.2f} ms, 95% CI {dist.ci['mean'][0]:.2f}-{dist.ci['mean'][1]:.2f}"
        )


if __name__ == "__main__":
    main()
