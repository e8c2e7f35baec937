"""suites/serving.yaml run through a loaded backend (the session's vLLM engine or server), and what every backend's run shows."""

from __future__ import annotations

from typing import Any

from llmbench.backends.base import BackendInfo
from llmbench.config.suite import load_suite
from llmbench.results.schema import PerfPoint
from llmbench.run.perf import PerfTarget
from llmbench.run.workloads import run_perf


def run_serving_suite(backend: Any, info: BackendInfo) -> dict[str, list[PerfPoint]]:
    suite = load_suite("serving")
    points = {}
    for task in suite.config.tasks:
        assert task.perf is not None
        target = PerfTarget(backend, None, backend.tokenizer, 1024, seed=0, needs_text=info.takes_text)
        points[task.name] = run_perf(target, task.perf, base_dir=suite.directory)
    return points


def check_common(points: dict[str, list[PerfPoint]]) -> None:
    """What holds on every vLLM backend: the cache is on and reused, chats grow, traces and bursts run."""
    on = points["shared_prefix"][0]
    assert on.error is None and on.prefix_caching is True and on.n_requests == 6
    # 4 of the 6 requests find their 256-token prefix cached: 1024 of 1920 prompt tokens
    assert on.prefix_cache_hit_rate is not None and 0.4 <= on.prefix_cache_hit_rate <= 0.6, on
    assert on.ttft_ms and on.tpot_ms and on.itl_ms and on.e2e_latency_ms and on.output_tokens_per_s
    (chat,) = points["multi_turn"]
    assert chat.error is None and chat.n_requests == 6 and [t.turn for t in chat.turns] == [1, 2, 3]
    grown = [t.prompt_tokens_mean or 0 for t in chat.turns]
    assert grown[0] < grown[1] < grown[2]
    assert all(t.ttft_ms and t.ttft_ms.n == 2 for t in chat.turns)
    assert chat.prefix_cache_hit_rate is not None and chat.prefix_cache_hit_rate > 0  # the history is reused
    for name, count in (("trace_mooncake", 16), ("trace_burstgpt", 11)):
        (trace,) = points[name]
        assert trace.error is None and trace.n_requests == count, trace.error
        assert trace.ttft_ms and trace.ttft_ms.n == count and trace.trace and trace.arrival_process == "trace"
    assert (points["trace_mooncake"][0].prefix_cache_hit_rate or 0) > 0  # its shared system prompts
    (bursty,) = points["bursty_arrivals"]
    assert bursty.error is None and (bursty.arrival_process, bursty.burstiness) == ("gamma", 0.5)
