"""The knowledge suite from the command line, and its generative variant for backends without log-probs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmbench.config.models import resolve_model
from llmbench.config.suite import load_suite
from llmbench.run.pipeline import RunOptions, run_suite
from tests.e2e.helpers import ROOT, llmbench

pytestmark = pytest.mark.e2e


def test_knowledge_suite_runs_from_the_cli_with_per_question_costs(tmp_path: Path) -> None:
    out = tmp_path / "k.json"
    proc = llmbench(
        "run", "suites/knowledge.yaml", "--model", "tiny-qwen2", "--limit", "3", "--output", str(out)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    tasks = {t["name"]: t for t in data["tasks"]}
    assert set(tasks) == {"mmlu", "mmlu_circular", "ceval", "cmmlu", "arc"}
    assert {"acc", "acc_norm_char", "acc_norm_token", "prob_correct"} <= set(tasks["mmlu"]["metrics"])
    assert tasks["mmlu"]["breakdown"], "scores break down by subject"
    for s in data["samples"]:
        assert s["error"] is None
        assert s["details"]["requests"] >= 2 and s["details"]["tokens_scored"] >= 2
        assert s["latency_ms"] is not None and s["tokens_in"]
    circular = [s for s in data["samples"] if s["task"] == "mmlu_circular"]
    assert all(s["details"]["rotations"] == 4 and s["details"]["requests"] == 16 for s in circular)


def generative_suite(tmp_path: Path) -> Path:
    text = (ROOT / "suites" / "knowledge.yaml").read_text(encoding="utf-8")
    text = text.replace("    choices:\n", "    choices:\n      generative: always\n")
    text = text.replace("data/knowledge/", str(ROOT / "suites" / "data" / "knowledge") + "/")
    path = tmp_path / "knowledge-generative.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_generative_variant_reads_letters_and_counts_the_rest_apart(tmp_path: Path) -> None:
    suite = load_suite(generative_suite(tmp_path))
    ref, _ = run_suite(
        suite, resolve_model("tiny-qwen2", backend="reference"), RunOptions(output=tmp_path / "r.json")
    )
    assert len(ref.tasks) == 5 and all(t.metrics[t.primary_metric].value == 1.0 for t in ref.tasks)
    assert not any("logprobs" in s.details for s in ref.samples)
    circular = [s for s in ref.samples if s.task == "mmlu_circular"]
    assert len(circular) == 4 * len({s.id for s in circular}), "each rotation asked as its own request"
    assert {s.reference for s in circular if s.id == circular[0].id} == {"A", "B", "C", "D"}
    real, _ = run_suite(suite, resolve_model("tiny-qwen2"), RunOptions(limit=2, output=tmp_path / "g.json"))
    mmlu = next(t for t in real.tasks if t.name == "mmlu")
    assert sum(mmlu.counts.values()) == 2
    samples = [s for s in real.samples if s.task == "mmlu"]
    assert all(s.tokens_out and s.status in ("correct", "wrong", "unparsed", "truncated") for s in samples)
