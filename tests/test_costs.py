"""Per-token API prices: what each sample, task and run cost, and where compare, the study leaderboard and
the HTML report show it beside (never mixed with) a host's price per hour."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from llmbench import api
from llmbench.analysis.direction import higher_is_better
from llmbench.analysis.leaderboard import build_leaderboard
from llmbench.config.models import Prices, load_model_config
from llmbench.errors import ConfigError
from llmbench.report.leaderboard_table import render_markdown
from llmbench.report.study_tables import render_leaderboard_markdown
from llmbench.results.io import write_results
from llmbench.results.schema import RunResult
from llmbench.run.journal import Journal, read_journal
from llmbench.run.spending import MESSAGE_TOKENS, TEMPLATE_TOKENS, Budget, price_result, prompt_bound
from llmbench.study.spec import LeaderboardSpec
from llmbench.study.study_leaderboard import build_leaderboard as build_study_leaderboard
from llmbench.types import GenerationParams, GenerationRequest
from tests.backends.faulty_server import FaultyServer, sums_suite
from tests.factories import make_run, verdicts

REPO = Path(__file__).resolve().parents[1]
PRICES = Prices(
    input_per_mtok_usd=2.0,
    output_per_mtok_usd=8.0,
    cached_input_per_mtok_usd=0.5,
    as_of=date(2026, 11, 2),
    source="https://example.com/pricing",
)


def priced_run(name: str, rate: float, seed: int, prices: Prices | None = PRICES) -> RunResult:
    run = make_run(name, {"t": verdicts(60, rate, seed)}, backend="openai" if prices else "vllm")
    if prices is not None:
        run.backend.gpus = None  # served elsewhere, as a hosted API is
    price_result(run, prices)
    return run


def test_each_sample_task_and_run_is_priced_from_its_tokens_cached_ones_at_the_cached_price() -> None:
    run = make_run("api", {"a": [1.0, 0.0], "b": [1.0]}, backend="openai")
    a0, a1, b0 = run.samples
    a0.tokens_in, a0.cached_tokens_in, a0.tokens_out = 1000, 400, 100
    a1.tokens_in, a1.cached_tokens_in, a1.tokens_out = 2000, None, 50
    b0.tokens_in, b0.tokens_out, b0.error = None, None, "HTTP 500"  # a failed request: counts unknown
    price_result(run, PRICES)
    assert a0.cost_usd == pytest.approx((600 * 2.0 + 400 * 0.5 + 100 * 8.0) / 1e6)
    assert a1.cost_usd == pytest.approx((2000 * 2.0 + 50 * 8.0) / 1e6)
    assert b0.cost_usd is None
    task_a, task_b = run.tasks
    assert task_a.cost_usd == pytest.approx(a0.cost_usd + a1.cost_usd) and task_b.cost_usd is None
    cost = run.summary.cost
    assert cost is not None and cost.usd == pytest.approx(task_a.cost_usd)
    assert (cost.priced_samples, cost.unpriced_samples) == (2, 1)
    assert (cost.input_tokens, cost.cached_input_tokens, cost.output_tokens) == (3000, 400, 150)
    assert cost.prices_as_of == "2026-11-02" and cost.prices_source == "https://example.com/pricing"


def test_a_provider_that_bills_no_cached_price_bills_cached_tokens_as_input() -> None:
    plain = PRICES.model_copy(update={"cached_input_per_mtok_usd": None})
    assert plain.usd(1000, 0, 400) == pytest.approx(1000 * 2.0 / 1e6)
    assert PRICES.usd(1000, 0, 400) == pytest.approx((600 * 2.0 + 400 * 0.5) / 1e6)


def test_compare_shows_api_cost_columns_only_where_a_run_has_prices() -> None:
    api_run, local = priced_run("glm-4", 0.7, 1), priced_run("qwen", 0.6, 2, prices=None)
    board = build_leaderboard([api_run, local])
    keys = [c.key for c in board.columns]
    assert keys[-2:] == ["api_cost_usd", "api_cost_per_correct_usd"]
    glm = next(r for r in board.rows if r.model == "glm-4")
    correct = sum(s.status == "correct" for s in api_run.samples)
    assert api_run.summary.cost is not None
    assert glm.cells["api_cost_usd"].value == pytest.approx(api_run.summary.cost.usd)
    assert glm.cells["api_cost_per_correct_usd"].value == pytest.approx(api_run.summary.cost.usd / correct)
    qwen = next(r for r in board.rows if r.model == "qwen")
    assert qwen.cells["api_cost_usd"].value is None
    text = render_markdown(board)
    assert "API $/correct" in text and "as read on 2026-11-02" in text and "prices change" in text
    unpriced = build_leaderboard([local, priced_run("llama", 0.5, 3, prices=None)])
    assert not [c for c in unpriced.columns if c.kind == "cost"]
    assert "API" not in render_markdown(unpriced)


def test_the_study_leaderboard_keeps_host_and_api_cost_per_correct_answer_apart() -> None:
    runs = [priced_run("glm-4", 0.7, 1), priced_run("qwen", 0.6, 2, prices=None)]
    board = build_study_leaderboard(runs, LeaderboardSpec(price_per_hour_usd=4.0))
    glm = next(r for r in board.rows if r.row.model == "glm-4")
    qwen = next(r for r in board.rows if r.row.model == "qwen")
    correct = sum(s.status == "correct" for s in runs[0].samples)
    assert runs[0].summary.cost is not None
    assert glm.costs["cost_per_correct_usd"] is None  # a hosted model used none of the host's time
    assert glm.costs["api_cost_per_correct_usd"] == pytest.approx(runs[0].summary.cost.usd / correct)
    assert qwen.costs["api_cost_per_correct_usd"] is None  # a self-hosted model has no per-token price
    wall = runs[1].performance.generation_wall_s or 0.0
    qwen_correct = runs[1].tasks[0].counts["correct"]
    assert qwen.costs["cost_per_correct_usd"] == pytest.approx(4.0 * wall / 3600 / qwen_correct)
    text = render_leaderboard_markdown(board)
    assert "host $/correct" in text and "API $/correct" in text
    assert "study's price per hour" in text and "per-token prices as read on 2026-11-02" in text


def test_the_html_report_has_an_api_cost_section_with_the_prices_and_their_day(tmp_path: Path) -> None:
    files = []
    for run in (priced_run("glm-4", 0.7, 1), priced_run("qwen", 0.6, 2, prices=None)):
        path = tmp_path / f"{run.model_name}.json"
        write_results(run, path)
        files.append(path)
    html = api.report(files, tmp_path / "report.html").read_text()
    assert 'id="section-api-cost"' in html and "2026-11-02 https://example.com/pricing" in html
    assert "API $/correct" in html  # the leaderboard's column
    section = html.split('id="section-api-cost"')[1]
    assert "glm-4" in section and "qwen" not in section.split("</table>")[0]


def test_a_price_written_as_a_typo_fails_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "api.yaml"
    bad.write_text(
        "name: api\nmodel: api\nbackend: openai\nprices:\n  input_per_mtok_usd: -1\n"
        "  output_per_mtok_usd: 8\n  as_of: 2026-11-02\n"
    )
    with pytest.raises(
        ConfigError, match=r"api.yaml:5: prices.input_per_mtok_usd: .*greater than or equal to 0"
    ):
        load_model_config(bad)
    proc = subprocess.run(
        [sys.executable, "-m", "llmbench", "validate", str(bad)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "prices.input_per_mtok_usd" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2  # the line, and at most its hint


def test_the_sample_api_config_is_priced_with_the_day_its_prices_were_read() -> None:
    glm = load_model_config(REPO / "configs" / "models" / "glm-4.yaml")
    assert glm.prices is not None and glm.prices.as_of is not None and glm.prices.source


def _priced_setup(tmp_path: Path, server: FaultyServer, n: int) -> tuple[Path, Path]:
    """A suite of `n` questions (8 new tokens at most) and a model config served by `server`, whose output
    costs $0.001 a token (prompts free): a request costs at most $0.008, and the server's answers $0.005."""
    suite = sums_suite(tmp_path, [str(2 * i) for i in range(n)])
    model = tmp_path / "priced.yaml"
    model.write_text(
        f"name: priced\nmodel: faulty\nbackend: openai\napi: {{base_url: '{server.base_url}'}}\n"
        "prices: {input_per_mtok_usd: 0, output_per_mtok_usd: 1000, as_of: 2026-11-02}\n"
    )
    return suite, model


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmbench", "run", *args, "-q", "--first-token-timeout", "600"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_max_cost_stops_before_the_budget_is_passed_and_a_resume_runs_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    with FaultyServer("ok") as server:  # every answer: 5 tokens
        suite, model = _priced_setup(tmp_path, server, 6)
        stopped = _run(str(suite), "-m", str(model), "-o", str(out), "--no-warmup", "--max-cost", "0.02")
        sent = server.posts
        # $0.02 holds two worst cases ($0.016): they cost $0.010; what is left holds one more ($0.005 spent);
        # the $0.005 then left cannot hold the next worst case ($0.008), so nothing more is sent.
        assert stopped.returncode == 1, stopped.stdout + stopped.stderr
        assert sent == 3 and not out.exists()
        assert "budget of $0.02 (--max-cost)" in stopped.stderr and "$0.015 spent" in stopped.stderr
        assert "3 requests of task 'sums'" in stopped.stderr
        assert f"resume with: llmbench run --resume --output {out}" in stopped.stderr
        assert len(read_journal(Journal.path_for(out)).samples) == 3
        resumed = _run("--resume", "--output", str(out), "--no-warmup")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert server.posts == 6  # only the three that were not run
    result = json.loads(out.read_text())
    assert [s["cost_usd"] for s in result["samples"]] == pytest.approx([0.005] * 6)
    assert result["summary"]["cost"]["usd"] == pytest.approx(0.03)
    assert result["tasks"][0]["cost_usd"] == pytest.approx(0.03)


def test_max_cost_without_prices_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with FaultyServer("ok") as server:
        suite, _ = _priced_setup(tmp_path, server, 2)
        proc = _run(str(suite), "-m", "faulty", "--base-url", server.base_url, "-o", str(tmp_path / "r.json"),
                    "--max-cost", "1")  # fmt: skip
        assert server.posts == 0
    assert proc.returncode == 2 and "has no prices" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("r.*"))  # no journal, no results


def test_a_request_s_worst_case_bounds_its_prompt_by_bytes_without_a_tokenizer() -> None:
    budget = Budget(1.0, PRICES)
    params = GenerationParams(max_new_tokens=100)
    ids = GenerationRequest("a", params, prompt_token_ids=tuple(range(50)))
    assert prompt_bound(ids, None) == 50
    text = GenerationRequest("b", params, messages=({"role": "user", "content": "日本"},))  # 6 bytes
    assert prompt_bound(text, None) == 6 + TEMPLATE_TOKENS + MESSAGE_TOKENS
    assert budget.worst_usd(ids, None) == pytest.approx((50 * 2.0 + 100 * 8.0) / 1e6)


def test_money_is_a_cost_to_every_view_that_marks_the_better_side() -> None:
    assert higher_is_better("api_cost_per_correct_usd") is False and higher_is_better("cost_usd") is False
