"""`--format vllm-bench`: perf points under the keys and definitions of `vllm bench serve --save-result`;
and the saturation search in the run summary and the Markdown comparison."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from rich.console import Console

from llmbench.analysis.compare import build_comparison
from llmbench.config.suite import PerfSweep
from llmbench.errors import UserInputError
from llmbench.report.markdown import render_markdown
from llmbench.report.renderers import render
from llmbench.report.summary import print_run_summary
from llmbench.results.schema import Performance, RunResult, SaturationProbe, SaturationResult
from llmbench.run.point_measure import PointSpec, summarise_point
from llmbench.telemetry.nvml import TelemetryWindow
from llmbench.types import Completion
from tests.factories import make_run, performance

# The summary keys `vllm bench serve --save-result` writes for a generative model by default
# (--percentile-metrics ttft,tpot,itl; --metric-percentiles 99), checked against vLLM 0.32's serve.py.
VLLM_KEYS = {
    "date", "endpoint_type", "backend", "label", "model_id", "tokenizer_id", "num_prompts",
    "request_rate", "burstiness", "max_concurrency", "duration", "completed", "failed",
    "total_input_tokens", "total_output_tokens", "request_throughput", "request_goodput",
    "output_throughput", "total_token_throughput",
    *(f"{stat}_{m}_ms" for m in ("ttft", "tpot", "itl") for stat in ("mean", "median", "std", "p99")),
}  # fmt: skip

TTFTS = [40.0, 50.0, 70.0, 90.0]
LATENCIES = [110.0, 150.0, 140.0, 230.0]
N_OUT = 8


def _run_with_point() -> RunResult:
    completions = [
        Completion(
            request_id=f"r{i}",
            text="x",
            output_tokens=N_OUT,
            ttft_ms=ttft,
            latency_ms=lat,
            itl_ms=[(lat - ttft) / (N_OUT - 1)] * (N_OUT - 1),
        )
        for i, (ttft, lat) in enumerate(zip(TTFTS, LATENCIES, strict=True))
    ]
    sweep = PerfSweep(slo_ttft_ms=60)
    point = summarise_point(
        PointSpec(32, N_OUT, request_rate=2.0), 32, 4, completions, 2.0, TelemetryWindow(), sweep
    )
    return make_run("tiny", {}, suite="perf", perf=Performance(sweep=[point]))


def test_vllm_bench_format_writes_vllms_keys_with_vllms_definitions() -> None:
    run = _run_with_point()
    [line] = render("vllm-bench", build_comparison([run]), [run]).splitlines()
    rec = json.loads(line)
    assert rec.keys() >= VLLM_KEYS
    tpots = [(lat - t) / (N_OUT - 1) for t, lat in zip(TTFTS, LATENCIES, strict=True)]
    assert rec["completed"] == 4 and rec["failed"] == 0 and rec["num_prompts"] == 4
    assert rec["total_input_tokens"] == 4 * 32 and rec["total_output_tokens"] == 4 * N_OUT
    assert rec["duration"] == 2.0 and rec["request_throughput"] == 2.0
    assert rec["output_throughput"] == 16.0 and rec["total_token_throughput"] == (128 + 32) / 2.0
    assert rec["request_goodput"] == 1.0  # two of four requests within TTFT 60 ms, over 2 s
    assert rec["request_rate"] == 2.0 and rec["max_concurrency"] is None and rec["burstiness"] == 1.0
    assert rec["mean_ttft_ms"] == pytest.approx(np.mean(TTFTS))
    assert rec["median_ttft_ms"] == pytest.approx(np.median(TTFTS))
    assert rec["std_ttft_ms"] == pytest.approx(np.std(TTFTS))  # numpy's ddof=0, as vLLM
    assert rec["p99_ttft_ms"] == pytest.approx(np.percentile(TTFTS, 99))
    assert rec["mean_tpot_ms"] == pytest.approx(np.mean(tpots))
    assert rec["std_tpot_ms"] == pytest.approx(np.std(tpots))
    assert rec["median_e2el_ms"] == pytest.approx(np.median(LATENCIES))
    assert rec["llmbench_run_id"] == run.run_id


def _records(run: RunResult, **changes: object) -> dict:
    """The vllm-bench line of `run`'s point with `changes`."""
    point = run.performance.sweep[0].model_copy(update=changes)
    changed = run.model_copy(update={"performance": Performance(sweep=[point])})
    [line] = render("vllm-bench", build_comparison([changed]), [changed]).splitlines()
    return json.loads(line)


def test_vllm_bench_burstiness_is_the_points_arrival_shape() -> None:
    run = _run_with_point()
    gamma = _records(run, arrival_process="gamma", burstiness=0.5)
    assert gamma["burstiness"] == 0.5 and gamma["request_rate"] == 2.0
    assert gamma["llmbench_arrival_process"] == "gamma"
    assert _records(run, arrival_process="poisson", burstiness=1.0)["burstiness"] == 1.0
    constant = _records(run, arrival_process="constant", burstiness=1.0)
    assert constant["burstiness"] is None and constant["llmbench_arrival_process"] == "constant"
    closed = _records(run, request_rate=None, concurrency=4, arrival_process=None)
    assert (closed["request_rate"], closed["max_concurrency"], closed["burstiness"]) == ("inf", 4, 1.0)


def test_a_trace_point_is_neither_all_at_once_nor_capped() -> None:
    trace = "synthetic-mooncake.jsonl (mooncake, 16 requests, time x0.25)"
    rec = _records(
        _run_with_point(),
        request_rate=None, concurrency=None, workload="trace", arrival_process="trace", trace=trace,
        task="replay",
    )  # fmt: skip
    assert rec["request_rate"] is None and rec["max_concurrency"] is None and rec["burstiness"] is None
    assert rec["llmbench_arrival_process"] == "trace" and rec["llmbench_trace"] == trace
    assert rec["llmbench_task"] == "replay"


def test_total_input_tokens_count_the_prompts_actual_lengths_where_they_vary() -> None:
    rec = _records(_run_with_point(), workload="multi_turn", prompt_tokens_mean=57.25)  # chats grow
    assert rec["total_input_tokens"] == 229  # 57.25 x 4 completed, not 32 x 4
    assert rec["total_token_throughput"] == (229 + 4 * N_OUT) / 2.0


def test_vllm_bench_format_refuses_runs_without_a_sweep() -> None:
    run = make_run("tiny", {"gsm8k": [1.0, 0.0]})
    with pytest.raises(UserInputError, match="vllm-bench"):
        render("vllm-bench", build_comparison([run]), [run])


def _with_saturation() -> RunResult:
    run = _run_with_point()
    point = run.performance.sweep[0]
    result = SaturationResult(
        input_tokens=32,
        output_tokens=8,
        slo_ttft_p99_ms=2000,
        rate_per_s=4.0,
        goodput_per_s=3.9,
        bound_by=["ttft_p99"],
        max_throughput_per_s=9.5,
        probes=[
            SaturationProbe(
                kind="closed_loop", point=point.model_copy(update={"request_throughput_per_s": 9.5})
            ),
            SaturationProbe(kind="rate", offered_rate_per_s=4.0, passed=True, point=point),
            SaturationProbe(
                kind="rate", offered_rate_per_s=8.0, passed=False, violated=["ttft_p99"], point=point
            ),
        ],
    )
    perf = run.performance.model_copy(update={"saturation": [result]})
    return run.model_copy(update={"performance": perf})


def test_run_summary_shows_the_rate_found_and_what_bound_it() -> None:
    out = io.StringIO()
    print_run_summary(_with_saturation(), Console(file=out, width=250))
    text = out.getvalue()
    assert "saturation search" in text and "TTFT <= 2000 ms" in text
    assert "4.00" in text and "ttft_p99" in text and "8/s ttft_p99" in text


def test_markdown_comparison_has_a_saturation_section_only_when_a_run_searched() -> None:
    run = _with_saturation()
    text = render_markdown(build_comparison([run]))
    assert "## Saturation search" in text and "| 4.00 | 3.90 | ttft_p99 |" in text
    plain = make_run("other", {}, suite="perf", perf=performance(sweep=True))
    assert "Saturation" not in render_markdown(build_comparison([plain]))
