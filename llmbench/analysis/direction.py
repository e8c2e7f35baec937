"""Which way is better for a metric: the one rule that compare, the gate and every renderer follow.

Scores (accuracy, pass@k, recall, schema validity, instruction following, ratings) and rates of work done
(tokens/s, throughput, goodput) are better higher. Shares and counts of failures (no_answer, unparsed,
truncated, timeout, error, syntax errors, wrong answers, verdict flips, failed_<reason>), times and
latencies, memory and energy are better lower. Settings and sizes (request rate, token counts, GPU
utilisation) have no better side. A name that matches none of these is taken as a score, since that is
what a scorer reports.
"""

from __future__ import annotations

import re

# Names of figures that describe a run's set-up or size rather than how good it was.
NEUTRAL = frozenset(
    {
        "instructions",
        "n",
        "n_samples",
        "n_requests",
        "input_tokens",
        "output_tokens",
        "total_output_tokens",
        "reasoning_tokens",  # how the output tokens split between reasoning and answer: facts, not merits
        "answer_tokens",
        "concurrency",
        "most_in_flight",  # a point run with fewer requests than its concurrency: how it ran
        "request_rate",
        "weights_bytes",
        "mean_gpu_util_pct",
        "mean_power_w",
        "sample_hz",
        "bandwidth_utilisation",
        "burstiness",  # the arrival process's shape: a setting
        "prompt_tokens_mean",  # the prompts' size (a trace's, a chat's history)
        "language_undetermined",  # how often the language could not be told: a fact about the outputs
        "client_cpu_share",  # how busy the measuring client was: a fact about the harness, not the model
    }
)
# Prefixes of shares that describe how a run was set up (the code sandbox's isolation level, ...).
NEUTRAL_PREFIXES = ("isolation_",)
# Words of a failure: a metric naming one counts or shares failures, so fewer is better.
FAILURE_WORDS = ("no_answer", "unparsed", "truncat", "timeout", "error", "wrong", "flip", "refus", "failed_")
# Name parts (split at "_", " ", "." and the like) that mark a cost: time, latency, memory, energy, loss, money.
COST_PARTS = frozenset(
    {
        "ms",
        "s",
        "latency",
        "ttft",
        "tpot",
        "itl",
        "e2e",
        "time",
        "vram",
        "mib",
        "gib",
        "bytes",
        "memory",
        "energy",
        "j",
        "loss",
        "perplexity",
        "cost",
        "usd",
    }
)
# Name parts that mark work done per unit of time, better higher even though they end in "_s".
RATE_PARTS = frozenset({"throughput", "goodput"})
# A statistic named after the figure (`ttft_ms p50`, `performance.ttft_ms.mean`) keeps the figure's direction.
STATISTICS = frozenset({"mean", "min", "max", "p50", "p90", "p95", "p99"})


def higher_is_better(metric: str) -> bool | None:
    """True when a larger value is better, False when a smaller one is, None when neither is.

    Accepts the names compare shows: `accuracy`, `timeout_rate`, `accuracy [length=4096]` (a breakdown
    cell), `ttft_ms p50` (a performance row), `performance.ttft_ms.p50` (a history path).
    """
    name = metric.split(" [", 1)[0].strip().lower()
    name = name.removeprefix("performance.")
    if name in NEUTRAL or name.startswith(NEUTRAL_PREFIXES):
        return None
    parts = [p for p in re.split(r"[^a-z0-9@]+", name) if p]
    if len(parts) > 1 and parts[-1] in STATISTICS:
        parts.pop()
    if parts[-2:] == ["per", "s"] or RATE_PARTS.intersection(parts):
        return True
    if any(word in name for word in FAILURE_WORDS):
        return False
    return not COST_PARTS.intersection(parts)
