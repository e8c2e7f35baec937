"""Performance comparisons at a stated level: a latency p50's change is tested by a permutation test over
the runs' requests, and a percentile of fewer requests than it needs is withheld with its reason."""

from __future__ import annotations

from llmbench.analysis.compare import Row, build_comparison
from llmbench.report.markdown import render_markdown
from llmbench.results.schema import RunResult
from llmbench.run.aggregate import performance
from tests.factories import make_run, verdicts

SCORES = verdicts(40, 0.6, seed=2)


def quality_run(run_id: str, slower: float = 1.0) -> RunResult:
    """A run of 40 quality samples whose run-level latencies are taken over those samples, as a run's are;
    every first token `slower` times later."""
    run = make_run("m", {"gsm8k": SCORES}, run_id=run_id)
    samples = [
        s.model_copy(
            update={"ttft_ms": s.ttft_ms * slower, "latency_ms": s.latency_ms + s.ttft_ms * (slower - 1)}
        )
        for s in run.samples
        if s.ttft_ms is not None and s.latency_ms is not None
    ]
    return run.model_copy(update={"samples": samples, "performance": performance(samples, [], 10.0, 4000)})


def row(runs: list[RunResult], metric: str) -> Row:
    return next(r for r in build_comparison(runs).section("performance") if r.metric == metric)


def test_a_p50_of_requests_30_percent_later_is_significant_by_the_permutation_test() -> None:
    d = row([quality_run("a"), quality_run("b", slower=1.3)], "ttft_ms p50").deltas[1]
    assert d is not None and d.test == "median-permutation" and d.significant
    assert d.p_value is not None and d.p_value < 0.001 and d.relative is not None and d.relative > 0.2


def test_the_same_requests_again_are_not_a_change() -> None:
    d = row([quality_run("a"), quality_run("b")], "ttft_ms p50").deltas[1]
    assert d is not None and d.test == "median-permutation" and not d.significant and d.p_value == 1.0


def test_a_p99_of_40_requests_is_withheld_with_its_reason_and_a_p90_shown() -> None:
    runs = [quality_run("a"), quality_run("b", slower=1.3)]
    p99 = row(runs, "ttft_ms p99")
    assert p99.cells == [None, None] and p99.withheld == ["40 requests; a p99 needs 299"] * 2
    assert all(c is not None for c in row(runs, "ttft_ms p90").cells)
    text = render_markdown(build_comparison(runs))
    line = next(x for x in text.splitlines() if "| ttft_ms p99 |" in x)
    assert line.count("— (40 requests; a p99 needs 299)") == 2
    assert line.startswith("| math (latency in quality run) |")
