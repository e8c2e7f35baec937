"""Which way is better, per metric: one rule for compare, the gate and every renderer's colours."""

from __future__ import annotations

from typing import get_args

import pytest

from llmbench.analysis.compare import build_comparison
from llmbench.analysis.direction import higher_is_better
from llmbench.analysis.gate import GateThresholds, check_regressions
from llmbench.report import render_html, render_markdown
from llmbench.results.schema import Distribution, Performance, PerfPoint
from tests.factories import make_run, verdicts

# Every metric the scorers (llmbench/scoring/*.py), the runner's judge and aggregate.py produce.
SCORER_METRICS = {
    "accuracy": True,  # exact, math, json, language, longctx
    "pass@1": True,  # code
    "pass@10": True,
    "syntax_error_rate": False,
    "timeout_rate": False,
    "lenient": True,  # math
    "strict": True,
    "no_answer": False,
    "parsed": True,  # json
    "schema_valid": True,
    "field_accuracy": True,
    "field_precision": True,
    "field_f1": True,
    "prompt_strict": True,  # instructions
    "prompt_loose": True,
    "instruction_strict": True,
    "instruction_loose": True,
    "correct": True,  # language
    "language_match": True,
    "language_undetermined": None,
    "isolation_namespaces": None,  # code: the sandbox's isolation level, a setting
    "isolation_uid": None,
    "isolation_rlimits": None,
    "recall": True,  # longctx
    "rating": True,  # the judge
    "suite_score": True,  # aggregate
    "wrong": False,  # failure counts (statuses)
    "unparsed": False,
    "truncated": False,
    "timeout": False,
    "error": False,
}
# Every figure of the performance block and of a sweep point (None: a setting or size, no better side).
PERFORMANCE_FIELDS = {
    "burstiness": None,
    "schedule_lag_ms": False,  # the client sent late: less is better (and much of it marks the point)
    "client_cpu_share": None,
    "prompt_tokens_mean": None,
    "prefix_cache_hit_rate": True,  # the same workload on another engine: more reuse is better
    "ttft_ms": False,
    "tpot_ms": False,
    "itl_ms": False,
    "e2e_latency_ms": False,
    "output_tokens_per_s": True,
    "per_request_output_tokens_per_s": True,
    "total_output_tokens": None,
    "generation_wall_s": False,
    "load_time_s": False,
    "weights_bytes": None,
    "peak_vram_mib": False,
    "energy_j": False,
    "energy_per_output_token_j": False,
    "input_tokens": None,
    "output_tokens": None,
    "concurrency": None,
    "most_in_flight": None,  # a point run short of its concurrency: a fact of how it ran
    "request_rate": None,
    "n_requests": None,
    "request_throughput_per_s": True,
    "goodput_per_s": True,
    "bandwidth_utilisation": None,
    "duration_s": False,
    "ttfot_ms": False,
    "reasoning_tokens": None,
    "answer_tokens": None,
}
# The row names `compare` shows and the paths `history` takes.
SHOWN_NAMES = {
    "ttft_ms p50": False,
    "ttft_ms p99": False,
    "tpot_ms p50": False,
    "e2e_latency_ms p50": False,
    "accuracy [length=4096,depth=0.5]": True,
    "no_answer [language=de]": False,
    "performance.ttft_ms.p50": False,
    "performance.per_request_output_tokens_per_s.p50": True,
    "gsm8k.accuracy": True,
}


@pytest.mark.parametrize(("metric", "expected"), sorted({**SCORER_METRICS, **SHOWN_NAMES}.items()))
def test_each_metric_has_its_direction(metric: str, expected: bool | None) -> None:
    assert higher_is_better(metric) is expected


@pytest.mark.parametrize(("field", "expected"), sorted(PERFORMANCE_FIELDS.items()))
def test_each_performance_figure_has_its_direction(field: str, expected: bool | None) -> None:
    assert higher_is_better(field) is expected


def _is_figure(annotation: object) -> bool:
    kinds = [t for t in (get_args(annotation) or (annotation,)) if t is not type(None)]
    return bool(kinds) and all(t in (int, float, Distribution) for t in kinds)


def test_every_numeric_performance_field_has_a_decided_direction() -> None:
    fields = {
        name
        for model in (Performance, PerfPoint)
        for name, info in model.model_fields.items()
        if _is_figure(info.annotation)
    }
    undecided = sorted(fields - set(PERFORMANCE_FIELDS))
    assert not undecided, f"decide these in llmbench/direction.py and list them here: {undecided}"


def _timeouts_rise() -> tuple[
    list[float], dict[str, dict[str, list[float]]], dict[str, dict[str, list[float]]]
]:
    n = 80
    calm = {"code": {"timeout_rate": [0.0] * n}}
    hung = {"code": {"timeout_rate": [1.0] * 25 + [0.0] * (n - 25)}}
    return verdicts(n, 0.6, seed=2), calm, hung


def test_a_rising_timeout_rate_is_marked_worse_in_markdown_and_red_in_html() -> None:
    scores, calm, hung = _timeouts_rise()
    runs = [
        make_run("a", {"code": scores}, extra_metrics=calm),
        make_run("b", {"code": scores}, extra_metrics=hung),
    ]
    c = build_comparison(runs)
    line = next(x for x in render_markdown(c).splitlines() if "| timeout_rate |" in x)
    assert line.endswith("* worse |"), line
    html = render_html(runs, c)
    cell = html[html.index('<td class="l">timeout_rate</td>') :].split("</tr>", 1)[0]
    assert "sig-bad" in cell and "sig-good" not in cell


def test_the_gate_fails_a_rising_timeout_rate_and_passes_a_falling_one() -> None:
    scores, calm, hung = _timeouts_rise()
    every_metric = GateThresholds.model_validate({"quality": {"primary_only": False}})
    calm_run = make_run("m", {"code": scores}, extra_metrics=calm)
    hung_run = make_run("m", {"code": scores}, extra_metrics=hung)
    worse = check_regressions(calm_run, hung_run, every_metric)
    assert [(r.metric, r.kind) for r in worse] == [("timeout_rate", "quality")]
    assert "timeout_rate rose 0.000 -> 0.312" in str(worse[0])
    assert check_regressions(hung_run, calm_run, every_metric) == []
