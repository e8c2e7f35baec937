"""Knowledge tests on in-process vLLM (CPU build): the suite runs, and its log-probs agree with Transformers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmbench.analysis.parity import LOGPROB_TOLERANCE
from llmbench.backends.transformers import TransformersBackend
from llmbench.config.models import resolve_model
from llmbench.config.suite import load_suite
from llmbench.data.base import DataContext
from llmbench.run.choice_loglik import loglikelihood_requests
from llmbench.run.pipeline import RunOptions, run_suite
from llmbench.run.prepare import prepare_task
from llmbench.run.session import BackendSession
from llmbench.testing.tinymodel import resolve_model_path
from llmbench.types import LoglikelihoodRequest

pytest.importorskip("vllm")
pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def session() -> Iterator[BackendSession]:
    s = BackendSession(resolve_model("tiny-qwen2", backend="vllm"))
    yield s
    s.close()


def every_choice() -> list[LoglikelihoodRequest]:
    """Every option of every question of the shipped knowledge suite, each rotation included."""
    suite = load_suite("knowledge")
    model = resolve_model("tiny-qwen2")
    ctx = DataContext(suite_dir=suite.directory)
    out = []
    for spec in suite.config.tasks:
        task = prepare_task(spec, suite, model, ctx, limit=None, seed=0, chat_template_hash=None)
        for rid in task.askings:  # one key per question; its rotations are in its askings
            out += loglikelihood_requests(task, rid)
    return out


def test_knowledge_suite_runs_on_vllm(session: BackendSession, tmp_path: Path) -> None:
    result, _ = run_suite(
        load_suite("knowledge"),
        session.model,
        RunOptions(limit=2, output=tmp_path / "r.json"),
        session=session,
    )
    assert result.backend.backend == "vllm"
    assert all(s.error is None for s in result.samples), [s.error for s in result.samples][:3]
    assert all(s.details["requests"] >= 2 and s.details["tokens_scored"] >= 2 for s in result.samples)
    assert all(s.latency_ms is not None and s.tokens_in for s in result.samples)


def test_logprobs_agree_with_transformers_on_every_builtin_choice(session: BackendSession) -> None:
    requests = every_choice()
    assert len(requests) > 100
    engine, _, _ = session.acquire("parity")
    on_vllm = {r.request_id: r for r in engine.loglikelihood(requests)}  # type: ignore[attr-defined]
    cfg = resolve_model("tiny-qwen2")
    hf = TransformersBackend(cfg, resolve_model_path(cfg))
    hf.load()
    try:
        on_hf = {r.request_id: r for r in hf.loglikelihood(requests)}
    finally:
        hf.close()
    assert set(on_vllm) == set(on_hf) == {r.request_id for r in requests}
    for rid, a in on_hf.items():
        b = on_vllm[rid]
        assert a.error is None and b.error is None, (rid, a.error, b.error)
        assert a.prompt_hash == b.prompt_hash, rid  # the same tokens were scored
        assert abs(a.logprob - b.logprob) <= LOGPROB_TOLERANCE, (rid, a.logprob, b.logprob)
        assert a.greedy == b.greedy, rid
