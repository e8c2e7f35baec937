"""Reasoning blocks are cut before scoring; an output that ends inside its reasoning is truncated and never
scored; stop strings fire in the answer only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmbench import api
from llmbench.backends.base import reasoning_token_count
from llmbench.backends.common import load_tokenizer, model_reasons
from llmbench.backends.openai_wire import sampling
from llmbench.config.models import ApiSpec, ModelConfig, resolve_model
from llmbench.run.scoring import CUT_IN_REASONING
from llmbench.scoring.reasoning import answer_start, cut_at_stop, opened_by_prompt, split_reasoning
from llmbench.testing.known_timing_server import KnownTimingServer, Timings
from llmbench.testing.tinymodel import resolve_model_path
from llmbench.types import GenerationParams

THINK = [("<think>", "</think>")]


def test_block_removed_and_kept() -> None:
    s = split_reasoning("<think>2+2 is 4</think>The answer is 4.", THINK)
    assert (s.answer, s.reasoning, s.unclosed) == ("The answer is 4.", "2+2 is 4", False)


def test_unclosed_block_swallows_rest() -> None:
    s = split_reasoning("Sure. <think>let me think about 42 and", THINK)
    assert s.answer == "Sure." and s.unclosed and "42" in s.reasoning


def test_lone_closing_tag_from_template_opened_block() -> None:
    s = split_reasoning("thinking 12\n</think>\nThe answer is 7.", THINK)
    assert s.answer == "The answer is 7." and "12" in s.reasoning


def test_several_blocks_and_custom_markers() -> None:
    s = split_reasoning("[R]a[/R]x[R]b[/R]y", [("[R]", "[/R]")])
    assert s.answer == "xy" and s.reasoning == "a\nb"


def test_no_markers_leaves_text_untouched() -> None:
    assert split_reasoning("    return x\n", THINK).answer == "    return x\n"


def test_code_indentation_survives_a_cut_block() -> None:
    assert split_reasoning("<think>hm</think>\n    return x\n", THINK).answer == "    return x"


def test_a_stop_string_fires_in_the_answer_never_inside_the_reasoning() -> None:
    markers = [("<think>", "</think>")]
    text = "<think>a\n\nb</think>the answer\n\nmore"
    assert cut_at_stop(text, ["\n\n"], markers) == ("<think>a\n\nb</think>the answer", True)
    assert cut_at_stop("<think>a\n\nb and still thinking", ["\n\n"], markers) == (
        "<think>a\n\nb and still thinking",
        False,
    )
    # a block the prompt opened (`<think>` ends the rendered prompt) is reasoning until it closes
    assert answer_start("thinking\n\nmore", markers, opened_by_prompt("Q: 1+1?<think>\n", markers)) is None
    assert cut_at_stop("no reasoning\n\nhere", ["\n\n"], markers) == ("no reasoning", True)


def test_stop_strings_are_held_back_from_a_server_only_where_the_model_may_reason() -> None:
    stop = GenerationParams(stop=(" r1",))
    assert "stop" not in sampling(stop, chat=True, reasons=True)
    # a model that does not reason keeps the server's own stop: no token is generated past it
    assert sampling(stop, chat=True, reasons=False)["stop"] == [" r1"]
    assert sampling(GenerationParams(stop=(" r1",), reasoning_markers=()), chat=True, reasons=True)[
        "stop"
    ] == [" r1"]
    thinking = GenerationParams(stop=(" r1",), enable_thinking=True)
    assert "stop" not in sampling(thinking, chat=True, reasons=False)  # thinking was asked for
    off = GenerationParams(stop=(" r1",), enable_thinking=False)
    assert sampling(off, chat=True, reasons=True)["stop"] == [" r1"]  # and here it was turned off


def test_a_model_reasons_by_its_config_or_its_chat_templates_marker() -> None:
    cfg = resolve_model("tiny-qwen2")
    tokenizer = load_tokenizer(cfg, resolve_model_path(cfg))  # Qwen2.5's template: no reasoning block
    assert model_reasons(cfg, tokenizer) is False and model_reasons(cfg, None) is False
    tokenizer.chat_template = "{{ messages }}{% if add_generation_prompt %}<think>\n{% endif %}"
    assert model_reasons(cfg, tokenizer) is True
    assert model_reasons(cfg.model_copy(update={"reasoning": False}), tokenizer) is False
    assert model_reasons(cfg.model_copy(update={"reasoning": True}), None) is True


def served_model(server: KnownTimingServer, endpoint: str) -> ModelConfig:
    api_spec = ApiSpec(base_url=server.base_url, endpoint=endpoint)  # type: ignore[arg-type]
    return ModelConfig(name="known", backend="openai", model="known-timing", api=api_spec)


def one_task_suite(tmp_path: Path, reference: str, generation: str, mode: str = "completion") -> Path:
    (tmp_path / "data.jsonl").write_text(json.dumps({"id": "0", "q": "Q", "a": reference}) + "\n")
    suite = tmp_path / "s.yaml"
    suite.write_text(
        f"name: s\ngeneration: {generation}\ntasks:\n  - name: t\n"
        "    dataset: {local: data.jsonl, reference_field: a}\n"
        f"    prompt: {{mode: {mode}, template: '{{{{ q }}}}<think>'}}\n    scorer: {{name: exact}}\n"
    )
    return suite


def reasoned(
    tmp_path: Path, reasoning_tokens: int, reference: str, generation: str, mode: str = "completion"
) -> Any:
    """The one sample of a one-task run against a known-timing server that reasons `reasoning_tokens` tokens first
    (as text after a prompt that opens `<think>` on the completions route, on the reasoning channel in chat)."""
    with KnownTimingServer(
        Timings(first_token_ms=1, token_gap_ms=1, reasoning_tokens=reasoning_tokens)
    ) as server:
        suite = one_task_suite(tmp_path, reference, generation, mode=mode)
        endpoint = "chat" if mode == "chat" else "completions"
        result, _ = api.run(suite, served_model(server, endpoint), api.RunOptions(output=tmp_path / "r.json"))
    (sample,) = result.samples
    return sample


def test_a_reasoning_cut_by_the_token_limit_is_truncated_and_never_scored(tmp_path: Path) -> None:
    # The prompt opens the block; the server thinks " r0 r1 r2 r3 ..." and is cut after 4 tokens: the text holds
    # only the half-thought, which is the reference, yet no answer was given.
    sample = reasoned(tmp_path, 10, "r0 r1 r2 r3", "{max_new_tokens: 4}")
    assert sample.output == " r0 r1 r2 r3" and sample.finish_reason == "length"
    assert sample.status == "truncated" and sample.score == 0.0
    assert sample.details == {"truncated": CUT_IN_REASONING}
    assert sample.reasoning_tokens == 4 and sample.answer_tokens == 0 and sample.ttfot_ms is None


def test_a_reasoning_channel_cut_by_the_token_limit_is_truncated(tmp_path: Path) -> None:
    sample = reasoned(tmp_path, 10, "", "{max_new_tokens: 4}", mode="chat")
    assert (
        sample.output == ""
        and sample.status == "truncated"
        and sample.details == {"truncated": CUT_IN_REASONING}
    )
    assert sample.reasoning_tokens == 4 and sample.answer_tokens == 0


def test_a_stop_string_inside_the_reasoning_does_not_end_the_answer(tmp_path: Path) -> None:
    # " r1" comes inside the reasoning block, " t4" in the answer after it: only the second one stops it.
    sample = reasoned(tmp_path, 3, "t3", "{max_new_tokens: 8, stop: [' r1', ' t4']}")
    assert sample.output == " r0 r1 r2</think> t3"  # the prompt opened the block
    assert sample.finish_reason == "stop" and sample.status == "correct"
    assert sample.reasoning_tokens == 3 and sample.ttfot_ms is not None and sample.ttfot_ms > sample.ttft_ms  # type: ignore[operator]


def test_reasoning_tokens_are_counted_on_the_ids_through_the_closing_tag() -> None:
    cfg = resolve_model("tiny-qwen2")
    tokenizer = load_tokenizer(cfg, resolve_model_path(cfg))
    ids = tokenizer("<think>two and two</think> makes four", add_special_tokens=False)["input_ids"]
    n = reasoning_token_count(tokenizer, ids, tokenizer.decode(ids), THINK, None)
    assert "</think>" in tokenizer.decode(ids[:n]) and "</think>" not in tokenizer.decode(ids[: n - 1])
    unclosed = tokenizer("<think>two and", add_special_tokens=False)["input_ids"]
    assert reasoning_token_count(tokenizer, unclosed, "<think>two and", THINK, None) == len(unclosed)
    plain = tokenizer("four", add_special_tokens=False)["input_ids"]
    assert reasoning_token_count(tokenizer, plain, "four", THINK, None) == 0
