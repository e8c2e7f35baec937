"""Parity compares generated token ids before text, and every backend writes the same ids as the same text."""

from __future__ import annotations

from llmbench.analysis.parity import flip_rate, parity
from llmbench.backends.base import decode_output
from llmbench.results.schema import RunResult
from llmbench.testing.tinymodel import ensure_tiny_model
from tests.factories import make_run


def _with_outputs(run_id: str, outputs: list[tuple[str, str]]) -> RunResult:
    run = make_run(run_id, {"arith": [1.0] * len(outputs)}, run_id=run_id)
    for record, (text, token_hash) in zip(run.samples, outputs, strict=True):
        record.output, record.output_hash = text, token_hash
    return run


def test_parity_tells_same_tokens_with_other_text_from_other_tokens() -> None:
    a = _with_outputs("a", [("4", "h1"), ("ab\ufffd", "h2"), ("x", "h3")])
    b = _with_outputs("b", [("4", "h1"), ("ab", "h2"), ("y", "h9")])
    report = parity(a, b)
    assert (report.output_tokens_matches, report.output_tokens_compared) == (2, 3)
    assert report.output_matches == 1
    assert [key[1] for key in report.text_only_differences] == [a.samples[1].id]


def test_flip_rate_counts_the_same_tokens_as_the_same_output() -> None:
    a = _with_outputs("a", [("ab\ufffd", "h2")])
    b = _with_outputs("b", [("ab", "h2")])
    assert flip_rate([a, b]).output_flip_rate == 0.0


def test_decode_writes_a_lone_byte_as_the_replacement_character_and_keeps_what_follows() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(ensure_tiny_model()))
    # The first byte of "é" (0xC3) alone is a byte-level token that forms no character.
    lone = tokenizer.convert_tokens_to_ids("Ã")
    ids = [*tokenizer.encode("ok "), lone, *tokenizer.encode(" then more")]
    text, cut = decode_output(tokenizer, ids, {tokenizer.eos_token_id}, ())
    assert text == "ok \ufffd then more" and not cut
    stopped, cut = decode_output(
        tokenizer, [*ids, tokenizer.eos_token_id], {tokenizer.eos_token_id}, ("then",)
    )
    assert stopped == "ok \ufffd " and cut
