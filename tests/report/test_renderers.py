"""Renderers show every model column, mark significance and fingerprints; history orders and plots runs."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest
from rich.console import Console

from llmbench import api
from llmbench.analysis.compare import Comparison, build_comparison
from llmbench.analysis.history import load_history, metric_trend
from llmbench.errors import UserInputError
from llmbench.report import (
    print_comparison,
    print_history,
    render_csv,
    render_html,
    render_json,
    render_markdown,
)
from llmbench.results.io import write_results
from llmbench.results.schema import RunResult
from tests.factories import FINGERPRINT, longctx_scores, make_run, performance, verdicts

MODELS = ("llama3-8b", "qwen2.5-7b", "phi-3-mini")


def _runs() -> list[RunResult]:
    base = verdicts(120, 0.6, seed=1)
    improved = [1.0 if i < 30 else v for i, v in enumerate(base)]
    lc = longctx_scores([1024, 4096, 16384], [0.0, 0.5, 1.0], per_cell=6, decay=0.15, seed=2)
    return [
        make_run(MODELS[0], {"gsm8k": base}, longctx=lc, perf=performance(sweep=True)),
        make_run(
            MODELS[1],
            {"gsm8k": improved},
            longctx=lc,
            perf=performance(sweep=True, ttft_ms=70, seed=1),
            task_fingerprints={"gsm8k": {**FINGERPRINT, "prompt_template": "t-other"}},
        ),
        make_run(
            MODELS[2], {"gsm8k": verdicts(120, 0.4, seed=3)}, perf=performance(peak_vram_mib=None, seed=2)
        ),
    ]


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    return build_comparison(_runs())


def test_markdown_shows_every_model_and_marks_fingerprints(comparison: Comparison) -> None:
    text = render_markdown(comparison)
    header = next(line for line in text.splitlines() if line.startswith("| suite/task"))
    assert all(m in header for m in MODELS)
    assert "mcnemar)*" in text  # qwen's paired improvement on gsm8k is significant
    assert "[^1]" in text and "prompt_template differs" in text
    assert "## Accuracy per cost" in text and "ttft_ms p50 vs input_tokens" in text


def test_markdown_and_csv_carry_the_accuracy_per_cost_table(comparison: Comparison) -> None:
    lines = render_markdown(comparison).splitlines()
    start = lines.index("## Accuracy per cost")
    table = [line for line in lines[start + 1 :] if line.startswith("|")][: 2 + len(MODELS)]
    assert (
        table[0]
        == "| run | suite | suite score | J / output token | peak VRAM MiB | TTFT p50 ms (quality run) | J / correct answer |"
    )
    assert [row.split(" | ")[0].lstrip("| ") for row in table[2:]] == list(MODELS)
    phi = table[2 + MODELS.index("phi-3-mini")].split(" | ")
    assert phi[1] == "math"
    assert phi[4] == "-"  # phi-3-mini has no peak VRAM figure: shown as unknown, not 0
    cost = [r for r in csv.DictReader(io.StringIO(render_csv(comparison))) if r["section"] == "cost"]
    by_model = {(r["column"], r["metric"]): float(r["value"]) for r in cost}
    for j, model in enumerate(MODELS):
        assert by_model[(model, "suite_score")] == pytest.approx(comparison.cost[j].suite_score)
        assert by_model[(model, "joules_per_correct")] == pytest.approx(comparison.cost[j].joules_per_correct)
    assert (MODELS[2], "peak_vram_mib") not in by_model


def test_markdown_says_whether_a_significant_delta_is_better_or_worse(comparison: Comparison) -> None:
    line = next(
        x for x in render_markdown(comparison).splitlines() if x.startswith("| math/gsm8k | accuracy")
    )
    qwen, phi = line.rstrip(" |").split(" | ")[3:5]
    assert qwen.endswith("mcnemar)* better") and phi.endswith("mcnemar)* worse")


def test_csv_has_one_line_per_cell_for_every_model(comparison: Comparison) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(comparison))))
    assert {r["column"] for r in rows} == set(MODELS)
    gsm = {r["column"]: r for r in rows if r["task"] == "gsm8k" and r["metric"] == "accuracy"}
    assert gsm[MODELS[1]]["test"] == "mcnemar" and gsm[MODELS[1]]["significant"] == "True"
    assert gsm[MODELS[1]]["fingerprint_diff"] == "prompt_template"
    assert float(gsm[MODELS[0]]["value"]) == pytest.approx(comparison.rows[0].cells[0].value)  # type: ignore[union-attr]
    assert any(r["section"] == "sweep" for r in rows) and any(r["section"] == "cost" for r in rows)


def test_json_is_strict_and_has_every_model(comparison: Comparison) -> None:
    text = render_json(comparison)
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert [c["label"] for c in data["columns"]] == list(MODELS)
    assert data["baseline"] == MODELS[0] and data["baseline_named"] is False
    assert any("prompt_template differs" in w for w in data["fingerprint_warnings"])


def test_terminal_table_shows_every_model_and_footnotes(comparison: Comparison) -> None:
    console = Console(record=True, width=220, color_system=None)
    print_comparison(comparison, console)
    text = console.export_text()
    assert all(m in text for m in MODELS)
    assert "[1] math/gsm8k: produced with different fingerprints (prompt_template differs)" in text
    assert "▲" in text  # the significant improvement is marked


def test_html_is_self_contained_with_every_plot(comparison: Comparison) -> None:
    html = render_html([c.run for c in comparison.columns], comparison)
    assert all(m in html for m in MODELS)
    for plot_id in (
        "plot-suite-overview",
        "plot-task-scores",
        "plot-longctx-needle",
        "plot-ttft-vs-input",
        "plot-tps-vs-input",
        "plot-ttft-vs-concurrency",
        "plot-throughput-vs-concurrency",
        "plot-peak-vram",
        "plot-accuracy-vs-cost",
    ):
        assert f'<svg id="{plot_id}" role="img" aria-label="' in html, plot_id
    for external in ("src=", 'href="http', "url(http", "@import", "<script", "<link"):
        assert external not in html, external  # nothing to fetch when the file is opened offline


def test_html_without_matplotlib_keeps_the_tables(
    comparison: Comparison, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an install without the plots extra looks like
    html = render_html([c.run for c in comparison.columns], comparison)
    assert "Plots are not included" in html and "llmbench[plots]" in html
    assert "<svg" not in html and "gsm8k" in html and all(m in html for m in MODELS)


def test_history_orders_runs_by_date_and_skips_bad_files(tmp_path: Path) -> None:
    dates = ["2026-11-03T09:00:00+00:00", "2026-11-01T09:00:00+00:00", "2026-11-02T09:00:00+00:00"]
    for i, day in enumerate(dates):
        run = make_run("llama3-8b", {"gsm8k": verdicts(50, 0.5 + 0.1 * i, seed=i)}, created_at=day)
        write_results(run, tmp_path / "nightly" / f"run{i}.json")
    (tmp_path / "notes.json").write_text('{"hello": 1}')
    skipped: list[str] = []
    runs = load_history(tmp_path, skipped=skipped)
    assert [r.created_at[:10] for r in runs] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert len(skipped) == 1 and "notes.json" in skipped[0]
    for path in ("gsm8k.accuracy", "gsm8k/accuracy"):
        trend = metric_trend(runs, path)
        assert [p.value.value for p in trend if p.value] == [
            r.tasks[0].metrics["accuracy"].value for r in runs
        ]
    assert metric_trend(runs, "performance.ttft_ms.p50")[0].value is not None
    assert metric_trend(runs, "missing_task")[0].value is None
    plot = tmp_path / "trend.svg"
    console = Console(record=True, width=200, color_system=None)
    print_history(api.history(tmp_path, metric="gsm8k", plot=plot), console)
    assert "2026-11-01" in console.export_text()
    assert plot.read_text().startswith('<svg id="plot-history"')


def test_history_of_a_metric_no_run_has_is_a_user_error(tmp_path: Path) -> None:
    write_results(make_run("llama3-8b", {"gsm8k": verdicts(20, 0.5, seed=1)}), tmp_path / "run.json")
    with pytest.raises(UserInputError, match=r"no run in .* has the metric 'gsm8k\.acc'") as raised:
        api.history(tmp_path, metric="gsm8k.acc")
    assert raised.value.hint is not None and "gsm8k.accuracy" in raised.value.hint
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserInputError, match="no results files"):
        api.history(empty)


def test_markdown_tables_keep_one_row_per_model_whatever_its_name_holds() -> None:
    runs = [
        make_run("tiny\nqwen|2\\", {"gsm8k": verdicts(20, 0.5, 1)}),
        make_run("b", {"gsm8k": verdicts(20, 0.6, 2)}),
    ]
    text = render_markdown(build_comparison(runs))
    header = next(line for line in text.splitlines() if line.startswith("| ") and "b" in line)
    assert "tiny qwen\\|2\\\\ |" in header  # one cell: the break a space, the pipe and backslash escaped
    lines = [*text.splitlines(), ""]
    for i, line in enumerate(lines):  # every table runs unbroken from its header to a blank line
        if line.startswith("|---"):
            rows = lines[i + 1 : lines.index("", i)]
            assert rows and all(row.startswith("| ") and row.endswith(" |") for row in rows)


@pytest.mark.parametrize(("heights", "expected"), [([0.0, 0.0], (0.0, 1.0)), ([0.2, 0.9], (0.0, 1.0))])
def test_score_plots_start_at_zero_even_where_every_score_is_zero(
    heights: list[float], expected: tuple[float, float]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from llmbench.report.plots import score_axis

    ax = Figure().subplots()
    ax.bar([0, 1], heights)
    score_axis(ax)
    assert ax.get_ylim() == pytest.approx(expected)  # never an axis from -0.04 for scores of 0
