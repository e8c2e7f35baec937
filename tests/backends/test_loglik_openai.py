"""Knowledge tests against a real vLLM OpenAI server: echoed prompt log-probs, the same as in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench.analysis.parity import LOGPROB_TOLERANCE
from llmbench.backends.transformers import TransformersBackend
from llmbench.config.models import ModelConfig, resolve_model
from llmbench.config.suite import load_suite
from llmbench.run.pipeline import RunOptions, run_suite
from llmbench.testing.tinymodel import resolve_model_path
from llmbench.types import LoglikelihoodRequest
from tests.backends.conftest import ServedModel
from tests.backends.test_loglik_vllm import every_choice

pytest.importorskip("vllm")
pytestmark = [pytest.mark.vllm, pytest.mark.slow]

# The server runs float32 like the in-process backends, so the same tolerance holds; with vLLM's
# "auto" dtype a float32 checkpoint is served in bfloat16 and gaps of about 1e-3 nats appear.
CONTEXT = "Which planet is closest to the Sun?\nA. Venus\nB. Mercury\nAnswer:"


def test_the_server_scores_continuations_like_transformers(served: ServedModel) -> None:
    backend = served.backend
    assert backend.can_score_loglikelihood()
    requests = [
        LoglikelihoodRequest("a", CONTEXT, " A"),
        LoglikelihoodRequest("b", CONTEXT, " B"),
        LoglikelihoodRequest("text", "Question: what is water made of?\nAnswer:", " hydrogen and oxygen"),
    ]
    # and every option of each built-in task's first question, rotations included
    builtin = every_choice()
    first: dict[str, str] = {}
    for r in builtin:
        task, sample = r.request_id.split("/")[:2]
        first.setdefault(task, sample)
    requests += [r for r in builtin if r.request_id.split("/")[1] == first[r.request_id.split("/")[0]]]
    remote = {r.request_id: r for r in backend.loglikelihood(requests)}
    cfg = resolve_model("tiny-qwen2")
    hf = TransformersBackend(cfg, resolve_model_path(cfg))
    hf.load()
    try:
        local = {r.request_id: r for r in hf.loglikelihood(requests)}
    finally:
        hf.close()
    for rid, a in local.items():
        b = remote[rid]
        assert b.error is None, b.error
        assert a.prompt_hash == b.prompt_hash and a.continuation_tokens == b.continuation_tokens
        assert abs(a.logprob - b.logprob) <= LOGPROB_TOLERANCE, (rid, a.logprob, b.logprob)
        assert b.latency_ms is not None and b.latency_ms > 0


def test_knowledge_suite_runs_on_the_openai_backend(served: ServedModel, tmp_path: Path) -> None:
    model = ModelConfig(
        name="tiny-served",
        backend="openai",
        model=served.config.model,
        tokenizer=served.config.model,
        api={"base_url": served.base_url},  # type: ignore[arg-type]
    )
    result, _ = run_suite(load_suite("knowledge"), model, RunOptions(limit=2, output=tmp_path / "r.json"))
    assert result.backend.backend == "openai"
    assert all(s.error is None for s in result.samples), [s.error for s in result.samples][:3]
    assert all("logprobs" in s.details and s.details["requests"] >= 2 for s in result.samples)
