"""The saturation search against the session's real vLLM server (CPU build, tiny-qwen2).

The bounds are chosen so that the outcome does not hang on how busy the host is: the client lets one
request in flight at a time, so at the lowest rate (2/s) each request has half a second to finish,
far more than a 4-token answer takes; the closed-loop point (one at a time, back to back) caps the
rates offered at what the server completes, and Poisson arrivals at that rate queue behind each
other. The search must find a rate at or above the lowest and say what stopped it: an SLO, the
queue (saturated), or the cap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from llmbench.backends.common import load_tokenizer
from llmbench.config.serving import SaturationSpec
from llmbench.config.suite import PerfSweep
from llmbench.run.perf import PerfTarget
from llmbench.run.saturation import run_saturation

if TYPE_CHECKING:
    from conftest import ServedModel

pytestmark = pytest.mark.vllm


def test_saturation_search_finds_a_rate_and_names_what_bound_it(served: ServedModel) -> None:
    spec = SaturationSpec(
        slo_ttft_p99_ms=2000,
        slo_tpot_p99_ms=1000,
        min_rate=2,
        max_rate=512,
        tolerance=0.5,
        requests_per_point=12,
        closed_loop_concurrency=1,
        max_concurrency=1,
        max_probes=8,
    )
    sweep = PerfSweep(input_tokens=[16], output_tokens=[4], saturation=spec)
    tokenizer = load_tokenizer(served.config, served.config.model)
    target = PerfTarget(
        served.backend,
        None,
        tokenizer,
        served.config.max_model_len,
        seed=0,
        needs_text=served.info.takes_text,
    )
    [result] = run_saturation(target, sweep)
    rates = [p for p in result.probes if p.kind == "rate"]
    assert result.probes[0].kind == "closed_loop" and result.max_throughput_per_s
    assert rates[0].offered_rate_per_s == 2 and rates[0].passed, rates[0].violated
    assert result.rate_per_s is not None and result.rate_per_s >= 2
    assert result.bound_by and set(result.bound_by) <= {
        "ttft_p99",
        "tpot_p99",
        "saturated",
        "closed_loop_throughput",
    }
    assert result.goodput_per_s is not None and result.goodput_per_s > 0
    for probe in rates:
        assert probe.point.error is None and probe.point.n_requests == 12
        assert probe.point.ttft_ms is not None and probe.point.ttft_ms.n == 12
