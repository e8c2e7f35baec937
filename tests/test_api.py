"""The Python API returns data and prints nothing; what the CLI decided before is decided here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmbench import api
from llmbench.errors import UserInputError
from llmbench.report import Renderer, renderers
from llmbench.results.io import write_results
from tests.factories import make_run, performance, verdicts, with_flips

TRUTH = verdicts(200, 0.8, seed=3)


def _files(tmp_path: Path) -> tuple[Path, Path]:
    base = write_results(make_run("base", {"gsm8k": TRUTH}), tmp_path / "base.json")
    worse = [0.0 if i % 3 == 0 else v for i, v in enumerate(with_flips(TRUTH, 0.05, seed=1))]
    cand = write_results(make_run("cand", {"gsm8k": worse}), tmp_path / "cand.json")
    return base, cand


def test_compare_render_and_gate_return_data_and_print_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand = _files(tmp_path)
    compared = api.compare([base, cand], baseline=base)
    assert compared.baseline is not None and [r.model_name for r in compared.candidates] == ["cand"]
    assert [c["label"] for c in json.loads(api.render("json", compared))["columns"]] == ["base", "cand"]
    findings = api.gate(compared)
    assert findings and all(str(f).startswith("REGRESSION cand:") for f in findings)
    assert capsys.readouterr() == ("", "")


def test_the_gate_needs_a_baseline(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="needs --baseline"):
        api.gate(api.compare(list(_files(tmp_path))))


def test_an_unknown_format_names_the_registered_ones(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="unknown format 'yaml'") as raised:
        api.render("yaml", api.compare(list(_files(tmp_path))))
    assert raised.value.hint is not None and "markdown" in raised.value.hint


def test_a_registered_renderer_is_a_format_of_compare(tmp_path: Path) -> None:
    renderers.add("count", Renderer(lambda comparison, runs: f"{len(runs)} runs"))
    try:
        assert api.render("count", api.compare(list(_files(tmp_path)))) == "2 runs"
    finally:
        renderers.remove("count")


def test_variants_are_repeats_per_batch_size() -> None:
    cfg = api.model("tiny-qwen2")
    labels = [(v.label, v.model.batch_size) for v in api.variants(cfg, repeat=2, batch_sizes=[1, 16])]
    assert labels == [("bs1-r1", 1), ("bs1-r2", 1), ("bs16-r1", 16), ("bs16-r2", 16)]
    assert [v.model for v in api.variants(cfg, repeat=2)] == [cfg, cfg]


def test_a_base_url_points_the_model_at_an_openai_compatible_server() -> None:
    cfg = api.model("tiny-qwen2", base_url="http://127.0.0.1:9/v1", api_key_env="KEY")
    assert (cfg.backend, cfg.api.base_url, cfg.api.api_key_env) == ("openai", "http://127.0.0.1:9/v1", "KEY")
    with pytest.raises(UserInputError, match="unknown backend"):
        api.model("tiny-qwen2", backend="nope")


def test_parity_on_a_suite_needs_a_model_and_two_backends() -> None:
    with pytest.raises(UserInputError, match="needs --model"):
        api.parity([Path("suites/math.yaml")])
    with pytest.raises(UserInputError, match="exactly two"):
        api.parity([Path("suites/math.yaml")], model_spec="tiny-qwen2", backends=["reference"])


def test_validate_and_catalogue_return_what_they_found() -> None:
    checked = api.validate([Path("suites/math.yaml"), Path("configs/models/tiny-qwen2.yaml")])
    assert [c.kind for c in checked] == ["suite", "model"]
    cat = api.catalogue()
    assert "math" in [name for name, _, _ in cat.suites] and "reference" in cat.backends


def test_runs_of_one_suite_read_side_by_side_and_runs_of_several_suites_as_a_leaderboard(
    tmp_path: Path,
) -> None:
    base, cand = _files(tmp_path)
    assert api.compare([base, cand]).leaderboard is None  # two maths runs: metric by metric
    perf = write_results(
        make_run("base", {}, suite="perf", perf=performance(sweep=True)), tmp_path / "perf.json"
    )
    mixed = api.compare([base, perf])  # a maths run and a perf sweep share no metric
    assert mixed.leaderboard is not None
    assert api.compare([base, perf], view="detail").leaderboard is None
