"""Log-likelihoods on the Transformers backend (tiny-qwen2, float32 on CPU): the shared span rule, exact values."""

from __future__ import annotations

import pytest

from llmbench.backends.loglik import continuation_span
from llmbench.backends.transformers import TransformersBackend
from llmbench.errors import BackendError
from llmbench.types import LoglikelihoodRequest

CONTEXT = "Which planet is closest to the Sun?\nA. Venus\nB. Mercury\nAnswer:"


@pytest.fixture(scope="module")
def backend(tiny_transformers: TransformersBackend) -> TransformersBackend:
    return tiny_transformers


def test_the_span_is_taken_from_context_and_continuation_tokenized_together(
    backend: TransformersBackend,
) -> None:
    tok = backend.tokenizer
    # The context's trailing space merges into the continuation's first token when tokenized together.
    span = continuation_span(tok, "The capital is ", "Paris")
    whole = tok("The capital is Paris")["input_ids"]
    assert list(span.ids) == whole
    assert tok.decode(list(span.continuation_ids)).endswith("Paris")
    assert span.start >= 1 and list(span.ids[: span.start]) == whole[: span.start]


def test_an_empty_continuation_has_no_span(backend: TransformersBackend) -> None:
    with pytest.raises(BackendError, match="empty continuation"):
        continuation_span(backend.tokenizer, CONTEXT, "")


def test_logprobs_equal_one_unbatched_forward_pass(backend: TransformersBackend) -> None:
    import torch

    requests = [
        LoglikelihoodRequest("a", CONTEXT, " A"),
        LoglikelihoodRequest("b", CONTEXT, " B"),
        LoglikelihoodRequest("long", "Short context:", " a much longer continuation of several tokens"),
    ]
    got = {r.request_id: r for r in backend.loglikelihood(requests)}
    assert set(got) == {"a", "b", "long"} and all(r.error is None for r in got.values())
    model = backend._model
    for req in requests:
        span = continuation_span(backend.tokenizer, req.context, req.continuation)
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([span.ids])).logits[0].float()
        lps = torch.log_softmax(logits, -1)
        expected = sum(float(lps[t - 1, span.ids[t]]) for t in range(span.start, len(span.ids)))
        assert got[req.request_id].logprob == pytest.approx(expected, abs=1e-4)
        assert got[req.request_id].continuation_tokens == len(span.ids) - span.start
        assert got[req.request_id].prompt_tokens == len(span.ids)


def test_batching_does_not_change_a_logprob(backend: TransformersBackend) -> None:
    requests = [
        LoglikelihoodRequest(f"r{i}", f"Question {i}: {'word ' * i}?\nAnswer:", " yes") for i in range(6)
    ]
    together = {r.request_id: r.logprob for r in backend.loglikelihood(requests)}
    alone = {
        rid: next(iter(backend.loglikelihood([r]))).logprob
        for rid, r in ((r.request_id, r) for r in requests)
    }
    for rid in together:
        assert together[rid] == pytest.approx(alone[rid], abs=1e-4)
