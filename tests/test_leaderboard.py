"""The leaderboard: a row per model and backend, a column per suite score and key cost figure."""

from __future__ import annotations

import pytest
from rich.console import Console

from llmbench.analysis.compare import build_comparison, measures_model
from llmbench.analysis.gate import GateThresholds, check_regressions
from llmbench.analysis.leaderboard import build_leaderboard
from llmbench.analysis.significance import paired_suite_delta
from llmbench.report.leaderboard_table import (
    column_groups,
    interval_text,
    legend,
    print_leaderboard,
    value_text,
)
from llmbench.results.schema import RunResult
from tests.factories import make_run, performance, verdicts


def _reference(run: RunResult) -> RunResult:
    """The run as the reference backend writes it: trivially small timings it does not stand behind."""
    backend = run.backend.model_copy(update={"backend": "reference", "measures_model": False})
    return run.model_copy(
        update={
            "backend": backend,
            "fingerprint": {**run.fingerprint, "backend": "reference", "chat_template": "none"},
            "performance": performance(ttft_ms=0.001, tokens_per_s=1e6, peak_vram_mib=None),
            "run_id": run.run_id + "-ref",
        }
    )


def test_rows_are_models_on_backends_and_columns_are_suites_then_costs() -> None:
    runs = [
        make_run(m, {"t": verdicts(60, rate, i)}, backend=b, suite=s, perf=performance(ttft_ms=ttft))
        for i, (m, b, rate, ttft) in enumerate(
            [("qwen", "vllm", 0.8, 40), ("qwen", "hf", 0.8, 90), ("llama", "vllm", 0.4, 50)]
        )
        for s in ("math", "json")
    ]
    board = build_leaderboard(runs)
    assert [c.key for c in board.suites] == ["suite:json", "suite:math"]
    assert [c.key for c in board.columns[2:]][:2] == ["ttft_p50_ms", "output_tokens_per_s"]
    assert {r.label for r in board.rows} == {"qwen · vllm", "qwen · hf", "llama · vllm"}
    assert board.rows[-1].model == "llama"  # ordered by mean suite score
    math = board.cell(board.rows[-1], board.suites[1])
    assert (
        math is not None and math.value is not None and math.ci_low is not None and math.ci_high is not None
    )
    assert math.run_ids == [runs[4].run_id]


def test_a_suite_without_a_score_gets_no_column_and_is_named_below() -> None:
    from llmbench.report.leaderboard_table import (
        legend,
    )

    quality = make_run("qwen", {"t": verdicts(20, 0.5, 0)}, suite="math", perf=performance(ttft_ms=40))
    sweep = make_run("qwen", {}, suite="perf", perf=performance(ttft_ms=90)).model_copy(
        update={"suite_score": None}
    )
    board = build_leaderboard([quality, sweep])
    assert [c.title for c in board.suites] == ["math"] and board.unscored == ["perf"]
    assert any(line.startswith("No score, so no column: perf") for line in legend(board))


def test_the_best_cell_is_marked_significant_only_when_it_beats_every_other_row() -> None:
    strong = make_run("strong", {"t": verdicts(200, 0.9, 1)}, backend="vllm")
    weak = make_run("weak", {"t": verdicts(200, 0.3, 2)}, backend="vllm")
    board = build_leaderboard([strong, weak])
    best = board.cell(board.rows[0], board.suites[0])
    other = board.cell(board.rows[1], board.suites[0])
    assert best is not None and best.best and best.significant
    assert other is not None and other.significant and other.p_value is not None and other.p_value < 0.05
    twin = make_run("twin", {"t": verdicts(200, 0.9, 1)}, backend="vllm")
    tied = build_leaderboard([strong, twin, weak])
    cells = [tied.cell(r, tied.suites[0]) for r in tied.rows]
    assert not any(c is not None and c.best and c.significant for c in cells)


def test_the_reference_backend_has_no_timings_is_no_contender_and_raises_no_fingerprint_warning() -> None:
    model = make_run("tiny", {"t": verdicts(30, 0.1, 1)}, perf=performance(ttft_ms=300))
    reference = _reference(make_run("tiny", {"t": [1.0] * 30}))
    assert not measures_model(reference)
    board = build_leaderboard([model, reference])
    ref_row = board.rows[-1]
    assert not ref_row.measures_model and ref_row.label == "tiny · reference"
    ttft = board.cell(ref_row, next(c for c in board.columns if c.key == "ttft_p50_ms"))
    assert ttft is not None and ttft.value is None and not ttft.measured
    assert not any(c.best for c in ref_row.cells.values())
    comparison = build_comparison([model, reference], baseline=model)
    assert all(r.cells[1] is None for r in comparison.section("performance"))
    assert comparison.fingerprint_warnings == []
    assert comparison.cost[1].ttft_p50_ms is None
    assert check_regressions(model, reference, GateThresholds()) == []
    assert check_regressions(reference, model, GateThresholds()) == [] or all(
        r.kind == "quality" for r in check_regressions(reference, model, GateThresholds())
    )


def test_samples_of_the_same_questions_are_paired_at_suite_level() -> None:
    wrong = make_run("a", {"t1": [0.0] * 5, "t2": [0.0] * 5})
    right = make_run("b", {"t1": [1.0] * 5, "t2": [1.0] * 5})
    delta = paired_suite_delta(wrong, right)
    assert delta is not None and delta.test == "mcnemar" and delta.n_paired == 10
    assert delta.value == 1.0 and delta.p_value == pytest.approx(1 / 1024)  # mid-p: 10 of 10 flipped
    comparison = build_comparison([wrong, right])
    suite = comparison.section("suite")[0].deltas[1]
    assert suite is not None and suite.test == "mcnemar" and suite.p_value == delta.p_value
    tasks = [r.deltas[1] for r in comparison.section("quality") if r.metric == "accuracy"]
    # Each task alone has 5 of 5 flipped (mid-p 1/32): the pairs of the whole suite say much more.
    assert all(d is not None and d.p_value == pytest.approx(1 / 32) for d in tasks)


def test_gate_and_report_mark_the_same_rows_significant_at_the_gates_alpha() -> None:
    base = make_run("m", {"t1": [1.0] * 5, "t2": [1.0] * 5})
    cand = make_run("m", {"t1": [0.0] * 5, "t2": [0.0] * 5})
    strict = GateThresholds.model_validate({"alpha": 0.0005})  # below the suite's p = 1/1024
    assert check_regressions(base, cand, strict) == []
    shown = build_comparison([base, cand], baseline=base, alpha=strict.alpha)
    assert not any(d is not None and d.significant for r in shown.rows for d in r.deltas)
    at_1pct = GateThresholds.model_validate({"alpha": 0.01})  # tasks p = 1/32 pass, the suite's 1/1024 fails
    found = check_regressions(base, cand, at_1pct)
    assert [r.metric for r in found] == ["suite_score"]
    shown = build_comparison([base, cand], baseline=base, alpha=at_1pct.alpha)
    marked = [r.metric for r in shown.rows for d in r.deltas if d is not None and d.significant]
    assert marked == ["suite_score"]


def test_the_detailed_view_shows_the_reference_backends_timings_as_not_measured() -> None:
    from llmbench.report.markdown import render_markdown

    model = make_run("tiny", {"t": verdicts(30, 0.1, 1)}, perf=performance(ttft_ms=300))
    reference = _reference(make_run("tiny", {"t": [1.0] * 30}))
    line = next(
        x for x in render_markdown(build_comparison([model, reference])).splitlines() if "ttft_ms p50" in x
    )
    assert line.rstrip(" |").endswith("| n/a") and "%" not in line


def test_ttft_and_throughput_come_from_the_perf_sweep_at_a_stated_load_when_there_is_one() -> None:
    quality = [
        make_run(m, {"t": verdicts(40, 0.6, i)}, perf=performance(ttft_ms=900.0)) for i, m in enumerate("ab")
    ]
    sweeps = [
        make_run(m, {}, suite="perf", perf=performance(ttft_ms=ttft, tokens_per_s=tps, sweep=True, seed=i))
        for i, (m, ttft, tps) in enumerate([("a", 20.0, 3200.0), ("b", 30.0, 1600.0)])
    ]
    board = build_leaderboard([*quality, *sweeps])
    ttft, tps = (next(c for c in board.columns if c.key == k) for k in ("ttft_p50_ms", "output_tokens_per_s"))
    assert (ttft.source, ttft.load, ttft.title) == ("sweep", (128, 128, 1), "TTFT p50 (128 in, c1)")
    assert (tps.source, tps.load, tps.title) == ("sweep", (512, 128, 64), "tok/s (c64)")
    by_model = {r.model: r for r in board.rows}
    point = sweeps[0].performance.sweep[0]
    assert point.ttft_ms is not None
    assert board.cell(by_model["a"], ttft).value == point.ttft_ms.p50  # not the quality runs' 900 ms
    assert board.cell(by_model["a"], tps).value == sweeps[0].performance.sweep[-1].output_tokens_per_s
    assert "the perf sweep point at the load in the title" in "\n".join(legend(board))


def test_a_point_that_never_reached_its_concurrency_is_not_read_at_that_load() -> None:
    # `--limit 16` on the sweep: the c64 point ran 16 at a time, so tok/s is read at c16, the highest reached
    perf = performance(sweep=True)
    perf.sweep[-1] = perf.sweep[-1].model_copy(update={"most_in_flight": 16})
    board = build_leaderboard([make_run("a", {}, suite="perf", perf=perf)])
    tps = next(c for c in board.columns if c.key == "output_tokens_per_s")
    assert (tps.load, tps.title) == ((512, 128, 16), "tok/s (c16)")
    assert board.cell(board.rows[0], tps).value == perf.sweep[-2].output_tokens_per_s


def test_without_a_sweep_the_quality_runs_timings_are_named_as_such() -> None:
    board = build_leaderboard([make_run(m, {"t": verdicts(40, 0.6, i)}) for i, m in enumerate("ab")])
    ttft = next(c for c in board.columns if c.key == "ttft_p50_ms")
    assert (ttft.source, ttft.load, ttft.title) == ("quality runs", None, "TTFT p50")
    assert any("timed in quality runs" in line and "not a serving figure" in line for line in legend(board))


SUITES = ("coding", "instruction", "json", "knowledge", "long_context", "math", "multilingual", "tools")


@pytest.mark.parametrize("width", [80, 100, 140])
def test_a_board_wider_than_the_terminal_is_cut_into_tables_that_keep_every_figure_on_one_line(
    width: int,
) -> None:
    runs = [
        make_run(m, {"t": verdicts(40, rate, i)}, backend=b, suite=s, perf=performance(ttft_ms=40 + i))
        for i, (m, b, rate) in enumerate([("qwen2.5-7b", "transformers", 0.8), ("llama3-8b", "vllm", 0.4)])
        for s in SUITES
    ]
    board = build_leaderboard(runs)
    console = Console(record=True, width=width, color_system=None)
    print_leaderboard(board, console)
    text = console.export_text()
    assert all(len(line) <= width for line in text.splitlines())
    tables = [line for line in text.splitlines() if line.startswith("Leaderboard")]
    assert len(tables) == len(column_groups(board, width)) > 1
    for row in board.rows:  # each row in every table, each figure and interval whole on its line
        assert text.count(row.label) == len(tables)
        for col in board.columns:
            cell = board.cell(row, col)
            assert value_text(cell, col) in text and interval_text(cell) in text


def test_a_board_that_fits_is_one_table() -> None:
    runs = [make_run("qwen", {"t": verdicts(40, 0.8, 1)}, suite=s) for s in ("math", "json")]
    board = build_leaderboard(runs)
    console = Console(record=True, width=100, color_system=None)
    print_leaderboard(board, console)
    assert [
        line.strip() for line in console.export_text().splitlines() if line.startswith("Leaderboard")
    ] == ["Leaderboard"]
