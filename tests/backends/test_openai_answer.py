"""An answer's usage check is taken off the event loop, a batch at a time, and records what a check on the
loop recorded: the local tokenizer's counts where the server's usage is missing or implausible."""

from __future__ import annotations

from typing import Any

from llmbench.backends.common import load_tokenizer
from llmbench.backends.openai_answer import answer_of, settle
from llmbench.config.models import resolve_model
from llmbench.telemetry.timing import TokenClock
from llmbench.testing.tinymodel import resolve_model_path
from llmbench.types import Completion, GenerationParams, GenerationRequest


class CountingTokenizer:
    """tiny-qwen2's tokenizer, counting its calls."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer, self.calls = tokenizer, 0

    def __call__(self, texts: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.tokenizer(texts, **kwargs)


def test_a_batch_of_answers_is_counted_in_one_call_with_the_counts_of_one_call_each() -> None:
    cfg = resolve_model("tiny-qwen2")
    hf = load_tokenizer(cfg, resolve_model_path(cfg))
    tokenizer = CountingTokenizer(hf)
    texts = ["The answer is 42.", "", "naïve café — 東京 🙂"]
    answers = []
    for i, text in enumerate(texts):
        clock = TokenClock(start_ns=0)
        request = GenerationRequest(f"r{i}", GenerationParams(max_new_tokens=64), prompt="q")
        result = {"pieces": [text], "usage": {"completion_tokens": 10_000}}  # implausible: ours is kept
        answers.append(answer_of(request, {"prompt": "q"}, ("h", "q"), result, None, clock))
    done = settle(answers, tokenizer, lambda c: c)
    assert tokenizer.calls == 1
    assert [c.output_tokens for c in done] == [
        len(hf(t, add_special_tokens=False)["input_ids"]) for t in texts
    ]
    assert all("not plausible" in c.warnings[0] for c in done)


def test_an_error_needs_no_count_and_no_tokenizer_counts_nothing() -> None:
    failed = answer_of(
        GenerationRequest("r", GenerationParams(), prompt="q"),
        {"prompt": "q"},
        ("h", None),
        {},
        "boom",
        TokenClock(start_ns=0),
    )
    assert failed.counted is None
    [c] = settle([failed], None, lambda c: c)
    assert isinstance(c, Completion) and c.error == "boom" and c.output_tokens is None
