"""Writes the synthetic traces shipped in suites/traces/ (run from the repository root; seeded, so the same files).

synthetic-mooncake.jsonl: 16 requests at about 4/s; most start with one of two shared "system
prompts" (hash ids 0-1 and 10-11, blocks of 128 tokens, a full block of the CPU engine), some share nothing. synthetic-burstgpt.csv:
12 requests with bursty (gamma, shape 0.5) gaps, one of them a failed request (0 response tokens).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path("suites/traces")


def main() -> None:
    rng = random.Random(15)
    lines, t = [], 0.0
    for i in range(16):
        t += rng.expovariate(4.0) * 1000
        family = rng.choice(["a", "a", "b", "u"])
        n_blocks = rng.randint(2, 4)
        own = [100 + i * 4 + k for k in range(n_blocks)]
        ids = {"a": [0, 1] + own[: n_blocks - 2], "b": [10, 11] + own[: n_blocks - 2], "u": own}[family]
        n_in = 128 * (n_blocks - 1) + rng.randint(1, 128)
        lines.append({"timestamp": round(t), "input_length": n_in, "output_length": rng.randint(4, 12), "hash_ids": ids})
    (OUT / "synthetic-mooncake.jsonl").write_text("".join(json.dumps(row) + "\n" for row in lines))
    rows, t = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"], 0.0
    for i in range(12):
        t += rng.gammavariate(0.5, 1 / (0.5 * 4.0))
        request, response = rng.randint(16, 128), rng.randint(4, 12)
        if i == 7:
            response = 0  # a failed request, as BurstGPT records them
        model = rng.choice(["ChatGPT", "GPT-4"])
        log_type = rng.choice(["Conversation log", "API log"])
        rows.append(f"{t:.3f},{model},{request},{response},{request + response},{log_type}")
    (OUT / "synthetic-burstgpt.csv").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
