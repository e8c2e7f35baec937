"""Reasoning blocks are cut before scoring; an unclosed block marks the output as truncated."""

from __future__ import annotations

from llmbench.scoring.reasoning import split_reasoning

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
