"""Writes the synthetic traces shipped in suites/traces/ (run from the repository root; seeded, so the same files).

Run: .venv/bin/python benchmarks/synthetic_traces.py [--out DIR] [--small]
`--small` (CI): writes them into a temporary folder instead and checks they are the shipped files, byte
for byte, so the files and the script that makes them cannot drift apart.

synthetic-mooncake.jsonl: 16 requests at about 4/s; most start with one of two shared "system
prompts" (hash ids 0-1 and 10-11, blocks of 128 tokens, a full block of the CPU engine), some share nothing. synthetic-burstgpt.csv:
12 requests with bursty (gamma, shape 0.5) gaps, one of them a failed request (0 response tokens).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

SHIPPED = Path(__file__).resolve().parent.parent / "suites" / "traces"
NAMES = ("synthetic-mooncake.jsonl", "synthetic-burstgpt.csv")


def write_traces(out: Path) -> None:
    rng = random.Random(15)
    lines, t = [], 0.0
    for i in range(16):
        t += rng.expovariate(4.0) * 1000
        family = rng.choice(["a", "a", "b", "u"])
        n_blocks = rng.randint(2, 4)
        own = [100 + i * 4 + k for k in range(n_blocks)]
        ids = {"a": [0, 1, *own[: n_blocks - 2]], "b": [10, 11, *own[: n_blocks - 2]], "u": own}[family]
        n_in = 128 * (n_blocks - 1) + rng.randint(1, 128)
        lines.append(
            {
                "timestamp": round(t),
                "input_length": n_in,
                "output_length": rng.randint(4, 12),
                "hash_ids": ids,
            }
        )
    (out / "synthetic-mooncake.jsonl").write_text("".join(json.dumps(row) + "\n" for row in lines))
    rows, t = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"], 0.0
    for i in range(12):
        t += rng.gammavariate(0.5, 1 / (0.5 * 4.0))
        request, response = rng.randint(16, 128), rng.randint(4, 12)
        if i == 7:
            response = 0  # a failed request, as BurstGPT records them
        model = rng.choice(["ChatGPT", "GPT-4"])
        log_type = rng.choice(["Conversation log", "API log"])
        rows.append(f"{t:.3f},{model},{request},{response},{request + response},{log_type}")
    (out / "synthetic-burstgpt.csv").write_text("\n".join(rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="default: suites/traces")
    parser.add_argument("--small", action="store_true", help="write to a temporary folder, compare (CI)")
    args = parser.parse_args()
    out = args.out or (Path(tempfile.mkdtemp(prefix="traces-")) if args.small else SHIPPED)
    out.mkdir(parents=True, exist_ok=True)
    write_traces(out)
    print("| file | lines | same as suites/traces/ |\n|---|---|---|")
    same = True
    for name in NAMES:
        text = (out / name).read_text()
        shipped = SHIPPED / name
        match = shipped.exists() and shipped.read_text() == text
        same = same and match
        print(f"| {name} | {len(text.splitlines())} | {'yes' if match else 'NO'} |")
    if args.small and not same:
        sys.exit("the shipped traces are not what this script writes: run it without --small and commit them")


if __name__ == "__main__":
    main()
