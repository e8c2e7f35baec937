"""The study's answer: scores with intervals, a composite, costs, the Pareto front and the best model that fits."""

from __future__ import annotations

import pytest

from llmbench.report.study_tables import leaderboard_html, render_leaderboard_markdown
from llmbench.study.spec import LeaderboardSpec
from llmbench.study.study_leaderboard import build_leaderboard, pareto_front
from tests.factories import make_run, performance, verdicts


def study_runs() -> list:
    runs = []
    for name, rate, vram, ttft in (
        ("big", 0.8, 30000.0, 80.0),
        ("small", 0.5, 9000.0, 30.0),
        ("bad", 0.3, 20000.0, 90.0),
    ):
        for suite, seed in (("math", 1), ("coding", 2)):
            runs.append(
                make_run(
                    name,
                    {"t": verdicts(200, rate, seed)},
                    suite=suite,
                    perf=performance(peak_vram_mib=vram, ttft_ms=ttft, sweep=True),
                )
            )
    return runs


def test_rows_rank_by_composite_with_suite_scores_and_intervals() -> None:
    board = build_leaderboard(study_runs(), LeaderboardSpec())
    assert [r.model for r in board.rows] == ["big", "small", "bad"]
    assert board.suites == ["coding", "math"]
    top = board.rows[0]
    assert top.composite is not None and top.composite.ci_low is not None
    assert top.composite.ci_low < top.composite.value < top.composite.ci_high  # type: ignore[operator]
    assert top.composite_kind == "accuracy"
    assert top.costs["peak_vram_mib"] == 30000.0 and top.costs["load_time_s"] == 38.0
    assert top.costs["ttft_ms_p50_2k"] is not None and top.costs["ttft_ms_p50_32k"] is None  # not measured
    assert top.costs["cost_per_correct_usd"] is None  # no price given


def test_suite_weights_move_the_composite() -> None:
    runs = study_runs()
    even = build_leaderboard(runs, LeaderboardSpec()).rows[0].composite
    math_only = (
        build_leaderboard(runs, LeaderboardSpec(weights={"math": 1.0, "coding": 0.0})).rows[0].composite
    )
    math_score = next(r.suite_score for r in runs if r.model_name == "big" and r.suite_name == "math")
    assert even is not None and math_only is not None and math_score is not None
    assert math_only.value == pytest.approx(math_score.value)


def test_pareto_front_keeps_models_no_other_beats_on_quality_and_cost() -> None:
    board = build_leaderboard(study_runs(), LeaderboardSpec(pareto_cost="peak_vram_mib"))
    assert board.pareto == ["small", "big"]  # "bad" costs more than "small" and scores less
    assert pareto_front(board.rows, "ttft_ms_p50_2k")[0] == "small"


def test_constraints_name_the_best_model_that_fits() -> None:
    spec = LeaderboardSpec.model_validate({"constraints": {"max_vram_mib": 24000}})
    board = build_leaderboard(study_runs(), spec)
    assert board.best_fit == "small"
    assert "peak VRAM" in board.excluded["big"]


def test_differences_from_the_leader_are_tested() -> None:
    board = build_leaderboard(study_runs(), LeaderboardSpec())
    assert any(line.startswith("math: big vs bad: significant") for line in board.significance)


def test_markdown_and_html_show_every_model_and_the_front() -> None:
    board = build_leaderboard(study_runs(), LeaderboardSpec())
    md = render_leaderboard_markdown(board)
    assert md.count("\n| ") >= 3 and "Pareto front" in md and "| big *" in md
    page = leaderboard_html(board)
    assert "<table>" in page and "small" in page


def test_a_judged_study_blends_accuracy_and_rating_as_its_weights_say() -> None:
    runs = study_runs()
    accuracy = build_leaderboard(runs, LeaderboardSpec()).rows[0].composite
    for run in runs:
        run.summary.combined = {"rating": {"value": 0.5, "stderr": 0.01, "n": 200}}
    spec = LeaderboardSpec.model_validate({"composite": {"accuracy_weight": 0.6, "rating_weight": 0.4}})
    row = build_leaderboard(runs, spec).rows[0]
    assert row.composite_kind == "accuracy+judge" and row.composite is not None and accuracy is not None
    assert row.composite.value == pytest.approx(0.6 * accuracy.value + 0.4 * 0.5)
