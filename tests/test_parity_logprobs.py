"""Parity on multiple-choice runs: the largest gap between option log-probabilities, against the stated tolerance."""

from __future__ import annotations

from llmbench.analysis.parity import LOGPROB_TOLERANCE, parity
from llmbench.results.schema import RunResult
from tests.factories import make_run


def _with_logprobs(run_id: str, logprobs: list[list[float]]) -> RunResult:
    run = make_run(run_id, {"mmlu": [1.0] * len(logprobs)}, run_id=run_id)
    for record, lps in zip(run.samples, logprobs, strict=True):
        record.details = {"logprobs": lps}
    return run


def test_parity_reports_the_largest_option_logprob_gap() -> None:
    a = _with_logprobs("a", [[-1.0, -2.0], [-3.0, -4.0]])
    close = _with_logprobs("b", [[-1.0 + LOGPROB_TOLERANCE / 2, -2.0], [-3.0, -4.0]])
    report = parity(a, close)
    assert report.logprobs_compared == 2 and report.logprobs_agree
    far = _with_logprobs("c", [[-1.0, -2.0], [-3.0, -4.5]])
    report = parity(a, far)
    assert report.max_logprob_diff == 0.5 and not report.logprobs_agree


def test_runs_without_option_logprobs_report_no_gap() -> None:
    a = make_run("a", {"arith": [1.0, 0.0]}, run_id="a")
    b = make_run("b", {"arith": [1.0, 0.0]}, run_id="b")
    report = parity(a, b)
    assert report.logprobs_compared == 0 and report.max_logprob_diff is None
