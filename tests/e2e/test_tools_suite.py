"""The tools suite end to end through the CLI: the reference backend scores 1.000, and tiny-qwen2 runs it through
Transformers and through a vLLM server with its tool-call parser, the functions reaching the chat template."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.helpers import llmbench

pytestmark = pytest.mark.e2e

CATEGORIES = ("simple", "multiple", "parallel", "irrelevance")
DATA = Path(__file__).resolve().parents[2] / "suites" / "data" / "tools" / "tools_mini.jsonl"

# tiny-qwen2's ChatML template, with the functions written into a system turn the way tool-calling templates do
TOOLS_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\nFunctions you may call, one JSON definition a line:\\n' }}"
    "{%- for tool in tools %}{{- tool | tojson }}{{- '\\n' }}{%- endfor %}"
    '{{- \'To call one, answer <tool_call>{"name": NAME, "arguments": {...}}</tool_call>.<|im_end|>\\n\' }}'
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def tiny_with_tools(tmp_path: Path, backend: str) -> Path:
    config = {
        "name": f"tiny-qwen2-tools-{backend}",
        "builtin": "tiny-qwen2",
        "model": "tiny-qwen2",
        "backend": backend,
        "dtype": "float32",
        "max_model_len": 4096,
        "enforce_eager": True,
        "chat_template": TOOLS_TEMPLATE,
        "tool_call_parser": "hermes",
        "generation": {"max_new_tokens": 8, "temperature": 0.0},
    }
    path = tmp_path / f"tiny-tools-{backend}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_tools(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "tools.json"
    r = llmbench("run", "suites/tools.yaml", "--output", str(out), "--no-warmup", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    data: dict[str, Any] = json.loads(out.read_text())
    assert all(s["error"] is None for s in data["samples"]), [s["error"] for s in data["samples"]][:3]
    return data


def test_the_reference_backend_scores_full_marks_in_every_category(tmp_path: Path) -> None:
    data = run_tools(tmp_path, "--model", "tiny-qwen2", "--backend", "reference")
    metrics = data["tasks"][0]["metrics"]
    assert metrics["accuracy"]["value"] == 1.0
    assert all(metrics[f"{c}_accuracy"]["value"] == 1.0 for c in CATEGORIES)
    assert all(metrics[k]["value"] == 0.0 for k in metrics if k.startswith("failed_"))
    calls = {s["id"]: s["tool_calls"] for s in data["samples"]}
    assert len(calls["parallel_02"]) == 3 and calls["irrelevance_01"] is None  # reported apart from the text


def test_tiny_qwen2_runs_it_through_transformers_with_the_functions_in_its_prompt(tmp_path: Path) -> None:
    data = run_tools(tmp_path, "--model", str(tiny_with_tools(tmp_path, "transformers")), "--limit", "4")
    assert [s["id"].split("_")[0] for s in data["samples"]] == list(CATEGORIES)
    offered = {
        rec["id"]: [t["function"]["name"] for t in rec["tools"]]
        for rec in map(json.loads, DATA.read_text().splitlines())
    }
    for s in data["samples"]:
        assert s["status"] in ("correct", "wrong", "unparsed", "truncated")
        assert all(f'"name": "{name}"' in s["prompt"] for name in offered[s["id"]]), s["prompt"]
    assert {f"{c}_accuracy" for c in CATEGORIES} <= set(data["tasks"][0]["metrics"])


@pytest.mark.vllm
@pytest.mark.slow
def test_tiny_qwen2_runs_it_through_a_vllm_server_with_its_tool_parser(tmp_path: Path) -> None:
    """The managed server starts with automatic tool choice and the hermes parser (else vLLM refuses
    `tool_choice: auto`); the functions reach its chat template, so every prompt is far longer than its question."""
    pytest.importorskip("vllm")
    model = tiny_with_tools(tmp_path, "openai")
    data = run_tools(tmp_path, "--model", str(model), "--limit", "4")
    assert data["backend"]["backend"] == "openai"
    for s in data["samples"]:
        assert s["status"] in ("correct", "wrong", "unparsed", "truncated")
        # without the functions the prompt is at most a token a character of the question, and the template's own
        assert s["tokens_in"] > len(s["prompt"][-1]["content"]) + 100
        assert s["ttft_ms"] is not None
