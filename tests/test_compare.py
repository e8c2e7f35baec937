"""The comparison: columns, best values, paired and unpaired significance, fingerprints, sweeps, cost."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from llmbench.analysis.compare import Comparison, Row, build_comparison, column_labels, load_runs
from llmbench.errors import ResultsFileError
from llmbench.report.csv import render_csv
from llmbench.report.markdown import render_markdown, setting, sweep_lines
from llmbench.results.io import write_results
from llmbench.results.schema import Distribution, Performance, PerfPoint, RunResult
from tests.factories import FINGERPRINT, longctx_scores, make_run, performance, verdicts, with_flips


def _row(c: Comparison, task: str, metric: str, section: str = "quality") -> Row:
    return next(r for r in c.rows if r.task == task and r.metric == metric and r.section == section)


def _improve(values: list[float], k: int) -> list[float]:
    """The same verdicts with the first k wrong answers made right (a real, paired improvement)."""
    out, fixed = list(values), 0
    for i, v in enumerate(out):
        if v == 0.0 and fixed < k:
            out[i], fixed = 1.0, fixed + 1
    return out


def _renamed_ids(run: RunResult, prefix: str) -> RunResult:
    samples = [s.model_copy(update={"id": prefix + s.id}) for s in run.samples]
    return run.model_copy(update={"samples": samples})


def test_a_real_difference_on_shared_ids_is_significant() -> None:
    base = verdicts(200, 0.6, seed=1)
    c = build_comparison([make_run("a", {"gsm8k": base}), make_run("b", {"gsm8k": _improve(base, 24)})])
    d = _row(c, "gsm8k", "accuracy").deltas[1]
    assert d is not None and d.test == "mcnemar" and d.n_paired == 200
    assert d.value == pytest.approx(0.12)
    assert d.significant and d.p_value is not None and d.p_value < 0.001
    assert d.ci_low is not None and d.ci_low > 0


def test_reruns_of_one_model_with_other_seeds_are_rarely_significant() -> None:
    truth = verdicts(200, 0.7, seed=5)
    significant = 0
    for seed in range(20):
        a = make_run("m", {"gsm8k": with_flips(truth, 0.1, seed=100 + seed)}, backend="vllm")
        b = make_run("m", {"gsm8k": with_flips(truth, 0.1, seed=200 + seed)}, backend="transformers")
        d = _row(build_comparison([a, b]), "gsm8k", "accuracy").deltas[1]
        assert d is not None and d.test == "mcnemar"
        significant += bool(d.significant)
    assert significant <= 3  # about 1 in 20 at alpha 0.05


def test_runs_without_shared_ids_use_the_two_proportion_test() -> None:
    a = make_run("a", {"gsm8k": verdicts(300, 0.5, seed=1)})
    b = _renamed_ids(make_run("b", {"gsm8k": verdicts(300, 0.7, seed=2)}), "other-")
    d = _row(build_comparison([a, b]), "gsm8k", "accuracy").deltas[1]
    assert d is not None and d.test == "two-proportion" and d.significant


def test_fractional_scores_use_the_sign_flip_test() -> None:
    base = [i % 5 / 4 for i in range(100)]
    better = [min(1.0, v + 0.25) for v in base]
    d = _row(
        build_comparison([make_run("a", {"humaneval": base}), make_run("b", {"humaneval": better})]),
        "humaneval",
        "accuracy",
    ).deltas[1]
    assert d is not None and d.test == "sign-flip" and d.significant and d.value > 0


def test_the_same_gain_on_five_samples_is_not_significant() -> None:
    base = [0.25, 0.5, 0.0, 0.5, 0.75]
    better = [v + 0.25 for v in base]  # all five gain a quarter point: 2 of 32 sign patterns are as extreme
    c = build_comparison([make_run("a", {"humaneval": base}), make_run("b", {"humaneval": better})])
    d = _row(c, "humaneval", "accuracy").deltas[1]
    assert d is not None and d.test == "sign-flip" and d.value == pytest.approx(0.25)
    assert d.p_value == pytest.approx(2 / 32) and not d.significant


def test_lower_is_better_for_failure_rates_latency_and_cost() -> None:
    n = 60
    scores = verdicts(n, 0.6, seed=1)
    steady = {"t": {"timeout_rate": [0.0] * n, "no_answer": [0.0] * (n - 2) + [1.0] * 2}}
    flaky = {"t": {"timeout_rate": [1.0] * 20 + [0.0] * (n - 20), "no_answer": [1.0] * 15 + [0.0] * (n - 15)}}
    c = build_comparison(
        [
            make_run("steady", {"t": scores}, extra_metrics=steady),
            make_run("flaky", {"t": scores}, extra_metrics=flaky, perf=performance(ttft_ms=90, seed=1)),
        ]
    )
    for metric in ("timeout_rate", "no_answer"):
        row = _row(c, "t", metric)
        d = row.deltas[1]
        assert row.best == 0, metric  # the run with fewer failures is the best column
        assert d is not None and d.significant and row.is_better(d) is False, metric
    assert _row(c, "(performance)", "ttft_ms p50", "performance").best == 0
    assert _row(c, "t", "unparsed", "failures").higher_is_better is False


def test_same_model_columns_are_told_apart_by_backend_then_date() -> None:
    runs = [
        make_run("llama3-8b", {"t": [1.0]}, backend="vllm"),
        make_run("llama3-8b", {"t": [1.0]}, backend="hf"),
        make_run("qwen", {"t": [1.0]}),
    ]
    assert column_labels(runs) == ["llama3-8b · vllm", "llama3-8b · hf", "qwen"]
    same = [
        make_run("m", {"t": [1.0]}, created_at="2026-11-01T08:00:00+00:00"),
        make_run("m", {"t": [1.0]}, created_at="2026-11-02T08:00:00+00:00"),
        make_run("m", {"t": [1.0]}, created_at="2026-11-02T09:30:00+00:00"),
    ]
    assert column_labels(same) == ["m · 2026-11-01", "m · 2026-11-02 08:00", "m · 2026-11-02 09:30"]


def test_runs_of_one_model_over_backends_suites_and_dates_each_get_their_own_label() -> None:
    runs = [
        make_run("m", {"t": [1.0]}, backend=b, suite=s, created_at=f"2026-11-0{d}T08:00:00+00:00")
        for b in ("vllm", "hf")
        for s in ("math", "json")
        for d in (1, 2)
    ]
    labels = column_labels(runs)
    assert len(set(labels)) == len(runs)
    assert labels[0] == "m · vllm · math · 2026-11-01"


def test_best_column_is_lowest_latency_and_highest_throughput_and_score() -> None:
    fast = make_run("fast", {"t": verdicts(100, 0.5, 1)}, perf=performance(ttft_ms=30, tokens_per_s=3000))
    slow = make_run("slow", {"t": verdicts(100, 0.8, 2)}, perf=performance(ttft_ms=90, tokens_per_s=1000))
    c = build_comparison([fast, slow])
    assert _row(c, "(performance)", "ttft_ms p50", "performance").best == 0
    assert _row(c, "(performance)", "output_tokens_per_s", "performance").best == 0
    assert _row(c, "t", "accuracy").best == 1
    latency = _row(c, "(performance)", "ttft_ms p50", "performance").deltas[1]
    assert (
        latency is not None
        and latency.relative is not None
        and latency.relative > 1.5
        and latency.significant
    )


def test_rows_from_different_chat_templates_are_flagged() -> None:
    """One model run twice, once with a chat-template override: the rows it touched say so."""
    other = {**FINGERPRINT, "chat_template": "c-0000"}
    a = make_run("a", {"gsm8k": verdicts(50, 0.5, 1), "math": verdicts(50, 0.5, 2)}, run_id="a-1")
    b = make_run(
        "a",
        {"gsm8k": verdicts(50, 0.5, 3), "math": verdicts(50, 0.5, 4)},
        task_fingerprints={"gsm8k": other},
        run_id="a-2",
    )
    c = build_comparison([a, b])
    assert _row(c, "gsm8k", "accuracy").fingerprint_note == "chat_template differs"
    assert _row(c, "math", "accuracy").fingerprint_diff == []
    assert any("gsm8k" in w and "chat_template differs" in w for w in c.fingerprint_warnings)


def test_two_models_are_not_flagged_for_their_own_templates_but_for_the_suites_prompts() -> None:
    """Different models bring different chat templates and tokens; a different prompt template is still news."""
    own = {**FINGERPRINT, "chat_template": "c-0000", "prompt_tokens": "p-9999"}
    reworded = {**FINGERPRINT, "prompt_template": "t-reworded"}
    a = make_run("a", {"gsm8k": verdicts(50, 0.5, 1), "math": verdicts(50, 0.5, 2)})
    b = make_run(
        "b",
        {"gsm8k": verdicts(50, 0.5, 3), "math": verdicts(50, 0.5, 4)},
        task_fingerprints={"gsm8k": own, "math": reworded},
    )
    c = build_comparison([a, b])
    assert _row(c, "gsm8k", "accuracy").fingerprint_diff == []
    assert _row(c, "math", "accuracy").fingerprint_note == "prompt_template differs"


def test_mismatched_suites_are_shown_side_by_side() -> None:
    a = make_run("a", {"gsm8k": verdicts(50, 0.5, 1)}, suite="math")
    b = make_run("b", {"humaneval": verdicts(50, 0.5, 2)}, suite="coding")
    c = build_comparison([a, b])
    gsm = _row(c, "gsm8k", "accuracy")
    he = _row(c, "humaneval", "accuracy")
    assert gsm.cells[1] is None and gsm.cells[0] is not None
    assert he.cells[0] is None and he.cells[1] is not None
    assert gsm.deltas[1] is None


def test_failure_counts_and_breakdowns_become_rows() -> None:
    lc = longctx_scores([1024, 4096], [0.0, 1.0], per_cell=12, decay=0.2, seed=1)
    c = build_comparison(
        [
            make_run("a", {"gsm8k": verdicts(60, 0.5, 1)}, longctx=lc),
            make_run("b", {"gsm8k": verdicts(60, 0.6, 2)}, longctx=lc),
        ]
    )
    wrong = _row(c, "gsm8k", "wrong", "failures")
    assert wrong.cells[0] is not None and wrong.cells[0].value > 0
    cell = _row(c, "needle", "accuracy [length=4096,depth=1.0]", "breakdown")
    assert cell.cells[0] is not None and cell.cells[0].n == 12
    delta = cell.deltas[1]
    assert delta is not None and delta.test == "mcnemar" and delta.n_paired == 12 and delta.value == 0


def test_sweeps_give_ttft_against_input_length_and_throughput_against_concurrency() -> None:
    c = build_comparison(
        [
            make_run("a", {"t": [1.0]}, perf=performance(sweep=True)),
            make_run("b", {"t": [1.0]}, perf=performance(sweep=True, ttft_ms=80, seed=2)),
        ]
    )
    by_title = {t.title: t for t in c.sweeps}
    ttft = by_title["ttft_ms p50 vs input_tokens (output_tokens=128, concurrency=1)"]
    assert ttft.xs == [128, 512, 2048, 8192]
    assert all(b is not None and a is not None and b > a for a, b in ttft.values)  # b is slower everywhere
    conc = by_title["output_tokens_per_s vs concurrency (input_tokens=512, output_tokens=128)"]
    assert conc.xs == [1, 4, 16, 64] and conc.higher_is_better
    assert not any(t.x_name == "concurrency" and len(t.xs) == 1 for t in c.sweeps)
    lines = sweep_lines(conc, c.labels)
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["1", "4", "16", "64"]  # settings, not 1.000
    assert [setting(x) for x in (512.0, 8192.0, 0.5, 2.25)] == ["512", "8,192", "0.5", "2.25"]


def _point(conc: int, n_in: int = 1024, ttft: float = 50.0) -> PerfPoint:
    dist = Distribution(mean=ttft, p50=ttft, p90=ttft, p99=ttft, min=ttft, max=ttft, n=8)
    return PerfPoint(
        input_tokens=n_in, output_tokens=128, concurrency=conc, n_requests=8, ttft_ms=dist,
        output_tokens_per_s=10.0 * conc,
    )  # fmt: skip


def test_a_concurrency_sweep_is_two_curves_not_a_stack_of_one_row_tables() -> None:
    # a quality run beside a perf run: the quality run has no sweep, so no column in the sweep tables
    quality = make_run("q", {"gsm8k": [1.0, 0.0]})
    perf = make_run(
        "p", {}, suite="perf", perf=Performance(sweep=[_point(c, ttft=40.0 + c) for c in (1, 4, 16)])
    )
    c = build_comparison([quality, perf])
    assert [(t.metric, t.x_name, t.xs) for t in c.sweeps] == [
        ("ttft_ms p50", "concurrency", [1, 4, 16]),
        ("output_tokens_per_s", "concurrency", [1, 4, 16]),
    ]
    ttft = c.sweeps[0]
    assert ttft.columns == [1] and ttft.labels(c.labels) == [c.labels[1]]
    assert ttft.values == [[41.0], [44.0], [56.0]]
    assert sweep_lines(ttft, c.labels)[0] == f"| concurrency | {c.labels[1]} |"


def test_a_point_short_of_its_concurrency_is_on_no_curve() -> None:
    points = [_point(c) for c in (1, 4)] + [_point(16).model_copy(update={"most_in_flight": 4})]
    c = build_comparison([make_run("p", {}, suite="perf", perf=Performance(sweep=points))])
    assert {(t.x_name, tuple(t.xs)) for t in c.sweeps} == {("concurrency", (1, 4))}


def test_runs_of_several_suites_get_a_table_per_suite_with_that_suites_runs_only() -> None:
    runs = [
        make_run(m, {t: verdicts(30, 0.5, i)}, suite=s, backend=b, perf=performance(seed=i))
        for i, (m, s, t, b) in enumerate(
            [("q", "math", "gsm8k", "vllm"), ("q", "json", "schema", "vllm"), ("q", "math", "gsm8k", "hf")]
        )
    ]
    c = build_comparison(runs)
    quality = c.section_parts("quality")
    assert [(p.suite, p.columns) for p in quality] == [("math", [0, 2]), ("json", [1])]
    assert all(r.suite == p.suite for p in quality for r in p.rows)
    text = render_markdown(c)
    assert "### math" in text and "### json" in text
    one_suite = build_comparison([runs[0], runs[2]])
    assert [(p.suite, p.columns) for p in one_suite.section_parts("quality")] == [(None, [0, 1])]


def test_points_on_no_curve_are_each_shown_once_along_input_length() -> None:
    lone = make_run(
        "p", {}, suite="perf", perf=Performance(sweep=[_point(4, n_in=512), _point(1, n_in=2048)])
    )
    c = build_comparison([lone])
    assert sorted((t.metric, t.x_name, tuple(t.xs)) for t in c.sweeps) == [
        ("output_tokens_per_s", "input_tokens", (512,)),
        ("output_tokens_per_s", "input_tokens", (2048,)),
        ("ttft_ms p50", "input_tokens", (512,)),
        ("ttft_ms p50", "input_tokens", (2048,)),
    ]


def test_sweep_tables_keep_points_of_the_same_shape_but_other_traffic_apart() -> None:
    def run(label: str, slower: float) -> RunResult:
        points = [
            PerfPoint(
                workload="shared_prefix", input_tokens=n_in, output_tokens=8, concurrency=2, n_requests=6,
                prefix_caching=caching, ttft_ms=Distribution(
                    mean=1, p50=ttft * slower, p90=1, p99=1, min=1, max=1, n=6
                ), output_tokens_per_s=10.0,
            )
            for n_in, caching, ttft in ((128, True, 5.0), (512, True, 9.0), (128, False, 50.0), (512, False, 90.0))
        ]  # fmt: skip
        return make_run(label, {"t": [1.0]}, perf=Performance(sweep=points))

    c = build_comparison([run("a", 1.0), run("b", 2.0)])
    by_title = {t.title: t for t in c.sweeps if t.metric == "ttft_ms p50"}
    on = by_title[
        "ttft_ms p50 vs input_tokens (output_tokens=8, concurrency=2, workload=shared_prefix, prefix_caching=True)"
    ]
    off = by_title[
        "ttft_ms p50 vs input_tokens (output_tokens=8, concurrency=2, workload=shared_prefix, prefix_caching=False)"
    ]
    assert on.values == [[5.0, 10.0], [9.0, 18.0]] and off.values == [[50.0, 100.0], [90.0, 180.0]]


def test_accuracy_per_cost_includes_joules_per_correct_answer() -> None:
    run = make_run("a", {"t": [1.0] * 30 + [0.0] * 10}, perf=performance(energy_per_token_j=0.5))
    unknown = make_run("b", {"t": [1.0] * 40}, perf=performance(energy_per_token_j=None, peak_vram_mib=None))
    cost = build_comparison([run, unknown]).cost
    assert cost[0].joules_per_correct == pytest.approx(0.5 * 60_000 / 30)
    assert cost[1].joules_per_correct is None and cost[1].peak_vram_mib is None


def test_a_run_with_no_cost_figure_has_no_accuracy_per_cost_line_and_csv_names_each_lines_run() -> None:
    cpu_perf = make_run(
        "p", {}, suite="perf", perf=Performance(sweep=[_point(1), _point(4)])
    )  # no score, VRAM
    scored = make_run("a", {"t": [1.0] * 30 + [0.0] * 10}, perf=performance(energy_per_token_j=0.5))
    c = build_comparison([cpu_perf, scored])
    assert [row.label for row in c.cost] == [c.labels[1]]
    lines = [r for r in csv.DictReader(io.StringIO(render_csv(c))) if r["section"] == "cost"]
    assert lines and {r["run_id"] for r in lines} == {scored.run_id}


def test_a_baseline_outside_the_runs_becomes_the_first_column() -> None:
    base = make_run("base", {"t": verdicts(40, 0.5, 1)})
    c = build_comparison([make_run("cand", {"t": verdicts(40, 0.5, 2)})], baseline=base)
    assert c.labels == ["base", "cand"] and c.baseline == 0 and c.baseline_named


def test_load_runs_reads_files_and_names_a_bad_one(tmp_path: Path) -> None:
    path = write_results(make_run("a", {"t": [1.0, 0.0]}), tmp_path / "a.json")
    assert load_runs([path])[0].model_name == "a"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ResultsFileError, match=r"bad\.json"):
        load_runs([path, bad])


def test_sandbox_isolation_shares_are_set_up_facts_not_scores() -> None:
    runs = [
        make_run(
            m, {"humaneval": verdicts(20, 0.5, i)}, extra_metrics={"humaneval": {"isolation_uid": [1.0] * 20}}
        )
        for i, m in enumerate(("a", "b"))
    ]
    c = build_comparison(runs)
    (row,) = [r for r in c.rows if r.metric == "isolation_uid"]
    assert row.section == "setup" and row.deltas == [None, None] and row.best is None
    assert "isolation_uid" not in [r.metric for r in c.section("quality")]


@pytest.mark.parametrize("kind", ["mcnemar", "sign-flip", "two-proportion"])
def test_delta_intervals_are_at_the_level_that_marks_significance(kind: str) -> None:
    base = verdicts(120, 0.5, seed=3)
    cand = _improve(base, 12)
    if kind == "sign-flip":  # scores between 0 and 1: no longer pass/fail
        base, cand = [0.5 * v + 0.25 for v in base], [0.5 * v + 0.2 for v in cand]
    a, b = make_run("a", {"gsm8k": base}), make_run("b", {"gsm8k": cand})
    if kind == "two-proportion":
        b = _renamed_ids(b, "other-")
    at = {
        alpha: _row(build_comparison([a, b], alpha=alpha), "gsm8k", "accuracy").deltas[1]
        for alpha in (0.05, 0.01)
    }
    wide, narrow = at[0.01], at[0.05]
    assert wide is not None and narrow is not None and wide.test == narrow.test == kind
    assert wide.ci_low is not None and narrow.ci_low is not None and wide.ci_high and narrow.ci_high
    assert wide.ci_low < narrow.ci_low <= narrow.ci_high < wide.ci_high


def test_rows_of_another_suite_take_deltas_against_their_own_first_run() -> None:
    runs = [
        make_run("a", {"gsm8k": verdicts(40, 0.3, 0)}, suite="math"),
        make_run("b", {"gsm8k": verdicts(40, 0.6, 1)}, suite="math"),
        make_run("a", {"schema": verdicts(40, 0.2, 2)}, suite="json"),
        make_run("b", {"schema": verdicts(40, 0.9, 3)}, suite="json"),
    ]
    c = build_comparison(runs)
    json_row = _row(c, "schema", "accuracy")
    assert json_row.base == 2 and json_row.deltas[2] is None
    d = json_row.deltas[3]
    a, b = (runs[k].tasks[0].metrics["accuracy"].value for k in (2, 3))
    assert d is not None and d.value == pytest.approx(b - a) and d.significant
    assert json_row.marked_best(3)
    assert _row(c, "gsm8k", "accuracy").base == 0
    assert c.delta_basis() == ("the first run (in column order) with a value in each row", None)
    named = build_comparison(runs, baseline=runs[0])
    assert _row(named, "schema", "accuracy").deltas == [None] * 4  # a named baseline is every row's
    assert named.delta_basis() == ("the baseline", named.labels[0])
