"""The gate on real measurements: sweeps of the OpenAI client against a loopback server whose first token
comes after a known time. A first token 26 ms late instead of 20 fails the gate at the points it was
measured, by the permutation test over their requests; another sweep at 20 ms passes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmbench.analysis.gate import GateThresholds, gate_report
from llmbench.backends.openai import OpenAIBackend
from llmbench.config.models import ApiSpec, ModelConfig
from llmbench.config.suite import PerfSweep
from llmbench.results.schema import RunResult
from llmbench.run.perf import PerfTarget, run_sweep
from llmbench.testing.known_timing_server import KnownTimingServer, Timings
from tests.test_gate_sweep import perf_run

# three sweeps one after another, judged against each other by the gate: a change of load between them
# would read as a regression, so they run in make test's second stage, on a quiet machine
pytestmark = pytest.mark.alone

# 24 requests a point: enough for a p50 (5), too few for a p90 (29), which the gate withholds.
SWEEP = PerfSweep(
    input_tokens=[8], output_tokens=[4], concurrency=[1, 4], requests_per_point=24, warmup_requests=2
)
# TTFT is what the server's timings fix; TPOT and throughput also follow this host's load, so they are
# left out here to keep the test about the first token.
TTFT_ONLY = GateThresholds.model_validate(
    {
        "performance": {
            "tpot_ms p50": None,
            "output_tokens_per_s": None,
            "goodput_per_s": None,
            "peak_vram_mib": None,
        }
    }
)


@pytest.fixture(scope="module")
def sweeps() -> Iterator[dict[str, RunResult]]:
    runs = {}
    for name, first_token_ms in (("base", 20.0), ("slow", 26.0), ("same", 20.0)):
        with KnownTimingServer(Timings(first_token_ms=first_token_ms, token_gap_ms=2)) as server:
            spec = ApiSpec(base_url=server.base_url)
            config = ModelConfig(name="known", backend="openai", model="known-timing", api=spec)
            backend = OpenAIBackend(config, "known-timing")
            backend.load()
            try:
                target = PerfTarget(backend, None, None, 512, 0, False, vocab_size=1000, client_process=True)
                runs[name] = perf_run(run_sweep(target, SWEEP), name)
            finally:
                backend.close()
    yield runs


def test_a_first_token_at_26_ms_against_20_fails_the_gate_naming_each_sweep_point(
    sweeps: dict[str, RunResult],
) -> None:
    report = gate_report(sweeps["base"], sweeps["slow"], TTFT_ONLY)
    named = {(r.task, r.metric) for r in report.regressions}
    assert named == {
        ("point in=8 out=4 conc=1", "ttft_ms p50"),
        ("point in=8 out=4 conc=4", "ttft_ms p50"),
    }
    reason = str(report.regressions[0])
    assert reason.startswith("perf/point in=8 out=4 conc=") and "ttft_ms p50 rose" in reason
    assert "median-permutation one-sided p=" in reason and "< 0.05 over 2 tests" in reason
    lines = report.lines(TTFT_ONLY.alpha)
    assert any("medians of 24 and 24 requests: REGRESSED" in line for line in lines)
    assert any("ttft_ms p90: — (24 requests; a p90 needs 29), not gated" in line for line in lines)


def test_a_second_sweep_at_the_same_20_ms_passes(sweeps: dict[str, RunResult]) -> None:
    report = gate_report(sweeps["base"], sweeps["same"], TTFT_ONLY)
    assert report.regressions == []
    assert report.family == 2  # both points' TTFT p50 were tested, not waved through
