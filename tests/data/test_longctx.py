"""The long-context generators: exact token lengths, needle depth, determinism, caching, skipping, errors.

Length tolerance: for every sample, `target - FIT_TOLERANCE (8) <= prompt tokens + output_budget <= target`,
counted independently here with the tokenizer's own `apply_chat_template(tokenize=True)`.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from llmbench.data.base import DataContext, Sample
from llmbench.data.longctx_prompts import FIT_TOLERANCE, docqa, needle
from llmbench.errors import ConfigError, DataError

SUITES = Path(__file__).resolve().parents[2] / "suites"


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from llmbench.testing.tinymodel import ensure_tiny_model

    return AutoTokenizer.from_pretrained(ensure_tiny_model())


@pytest.fixture(autouse=True)
def data_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own data cache, so a generator really builds (the model is loaded before)."""
    monkeypatch.setenv("LLMBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "data" / "longctx"


def make_ctx(tokenizer: Any, *, seed: int = 0, max_model_len: int | None = 32768) -> DataContext:
    return DataContext(suite_dir=SUITES, seed=seed, tokenizer=tokenizer, max_model_len=max_model_len)


def chat_tokens(tokenizer: Any, user: str, system: str | None = None) -> int:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}
    ]
    enc = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
    return len(enc["input_ids"])


def token_depth(tokenizer: Any, context: str, needle_text: str) -> float:
    start = context.index(needle_text)
    before = len(tokenizer(context[:start], add_special_tokens=False)["input_ids"])
    return before / len(tokenizer(context, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("budget", [16, 200])
def test_chat_prompt_plus_budget_lands_within_tolerance_of_each_target(tokenizer: Any, budget: int) -> None:
    targets = [700, 1000, 2048, 5000, 16384]
    samples = needle(
        {"lengths": targets, "depths": [0.0, 0.5, 1.0], "output_budget": budget}, make_ctx(tokenizer)
    )
    assert sorted({s.metadata["length"] for s in samples}) == targets
    for s in samples:
        total = chat_tokens(tokenizer, s.fields["prompt"]) + budget
        assert s.metadata["length"] - FIT_TOLERANCE <= total <= s.metadata["length"], s.id
        assert s.metadata["actual_tokens"] == total - budget


def test_system_prompt_and_plain_text_prompts_are_measured_too(tokenizer: Any) -> None:
    system = "You answer questions about long documents carefully and briefly."
    with_system = needle({"lengths": [1500], "system": system}, make_ctx(tokenizer))[0]
    assert 1500 - FIT_TOLERANCE <= chat_tokens(tokenizer, with_system.fields["prompt"], system) + 32 <= 1500
    plain = needle({"lengths": [1500], "chat": False}, make_ctx(tokenizer))[0]
    plain_tokens = len(tokenizer(plain.fields["prompt"], add_special_tokens=True)["input_ids"])
    assert 1500 - FIT_TOLERANCE <= plain_tokens + 32 <= 1500
    assert (
        plain_tokens > chat_tokens(tokenizer, with_system.fields["prompt"], system) - 40
    )  # no template to pay


def test_needle_sits_at_the_requested_token_depth(tokenizer: Any) -> None:
    depths = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
    samples = needle({"lengths": [8192], "depths": depths}, make_ctx(tokenizer))
    for s, depth in zip(samples, depths, strict=True):
        assert s.metadata["depth"] == depth
        sentence = f"is {s.reference}."
        found = re.search(r"The special magic number for \w+ " + re.escape(sentence), s.fields["context"])
        assert found is not None and s.fields["context"].count(s.reference) == 1
        assert abs(token_depth(tokenizer, s.fields["context"], found.group(0)) - depth) <= 0.03, s.id
        assert abs(s.metadata["actual_depth"] - depth) <= 0.03


def test_needle_is_planted_at_a_sentence_boundary(tokenizer: Any) -> None:
    for s in needle({"lengths": [3000], "depths": [0.2, 0.4, 0.6, 0.8]}, make_ctx(tokenizer)):
        context = s.fields["context"]
        start = context.index("The special magic number")
        assert context[start - 2 : start] in (". ", ".\n") or start == 0
        assert context[context.index(s.reference) + len(s.reference) :][:2] in (". ", ".\n")


def test_multi_needle_plants_every_value_spread_out_and_asks_for_all(tokenizer: Any) -> None:
    s = needle({"lengths": [4096], "depths": [0.3], "needles_per_prompt": 4}, make_ctx(tokenizer))[0]
    values = s.reference
    assert isinstance(values, list) and len(set(values)) == 4 and s.metadata["n_needles"] == 4
    positions = [token_depth(tokenizer, s.fields["context"], v) for v in values]
    expected = [0.3, 0.55, 0.8, 0.05]  # the first at the depth, the others a quarter apart, wrapping around
    assert all(abs(p - e) <= 0.04 for p, e in zip(positions, expected, strict=True)), positions
    cities = re.findall(r"The special magic number for (\w+) is", s.fields["context"])
    assert all(city in s.fields["question"] for city in cities) and len(cities) == 4
    assert 4096 - FIT_TOLERANCE <= chat_tokens(tokenizer, s.fields["prompt"]) + 32 <= 4096


def test_retrieve_one_asks_for_the_needle_at_the_depth_among_distractors(tokenizer: Any) -> None:
    opts = {"lengths": [3000], "depths": [0.6], "needles_per_prompt": 3, "retrieve": "one"}
    s = needle(opts, make_ctx(tokenizer))[0]
    assert isinstance(s.reference, str) and len(re.findall(r"magic number for", s.fields["context"])) == 3
    asked = re.search(r"number for (\w+) mentioned", s.fields["question"]).group(1)  # type: ignore[union-attr]
    assert f"for {asked} is {s.reference}." in s.fields["context"]
    assert abs(token_depth(tokenizer, s.fields["context"], s.reference) - 0.6) <= 0.04


def test_same_seed_gives_identical_samples_and_another_seed_other_needles(
    tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = {"lengths": [1024, 2048], "depths": [0.5], "samples_per_point": 3}
    first = needle(opts, make_ctx(tokenizer, seed=7))
    monkeypatch.setenv("LLMBENCH_CACHE", str(tmp_path / "other-cache"))  # rebuild, do not read the cache
    again = needle(opts, make_ctx(tokenizer, seed=7))
    other = needle(opts, make_ctx(tokenizer, seed=8))
    assert first == again
    assert {s.reference for s in first}.isdisjoint({s.reference for s in other})
    # Within one seed, a repetition keeps its needle at every length: only the length varies.
    by_rep: dict[str, set[str]] = {}
    for s in first:
        by_rep.setdefault(s.id.rsplit("-", 1)[1], set()).add(s.reference)
    assert len(by_rep) == 3 and all(len(refs) == 1 for refs in by_rep.values())
    assert len({s.id for s in first}) == len(first) == 6


def test_options_seed_overrides_the_context_seed(tokenizer: Any) -> None:
    a = needle({"lengths": [800], "seed": 3}, make_ctx(tokenizer, seed=1))
    b = needle({"lengths": [800], "seed": 3}, make_ctx(tokenizer, seed=2))
    assert a == b


def test_second_call_reads_the_disk_cache(tokenizer: Any, data_cache: Path) -> None:
    opts = {"lengths": [2048], "depths": [0.25, 0.75]}
    built = needle(opts, make_ctx(tokenizer))
    files = list(data_cache.glob("needle-*.json"))
    assert len(files) == 1
    assert needle(opts, make_ctx(tokenizer)) == built
    rows = json.loads(files[0].read_text())
    rows[0]["reference"] = "marker-from-the-cache"
    files[0].write_text(json.dumps(rows))
    assert needle(opts, make_ctx(tokenizer))[0].reference == "marker-from-the-cache"


def test_cache_key_follows_the_tokenizer_and_the_options(tokenizer: Any, data_cache: Path) -> None:
    needle({"lengths": [1024]}, make_ctx(tokenizer))
    needle({"lengths": [1024], "depths": [0.1]}, make_ctx(tokenizer))
    other = copy.deepcopy(tokenizer)
    other.chat_template = tokenizer.chat_template.replace("You are a helpful assistant.", "Be brief.")
    samples = needle({"lengths": [1024]}, make_ctx(other))
    assert len(list(data_cache.glob("needle-*.json"))) == 3
    assert 1024 - FIT_TOLERANCE <= chat_tokens(other, samples[0].fields["prompt"]) + 32 <= 1024


def test_unreadable_cache_file_is_rebuilt(tokenizer: Any, data_cache: Path) -> None:
    built = needle({"lengths": [1024]}, make_ctx(tokenizer))
    (path,) = data_cache.glob("needle-*.json")
    path.write_text("{not json")
    assert needle({"lengths": [1024]}, make_ctx(tokenizer)) == built


def test_lengths_beyond_max_model_len_are_skipped_with_a_warning(
    tokenizer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="llmbench.data.longctx_prompts"):
        samples = needle({"lengths": [2048, 4096, 8192, "max"]}, make_ctx(tokenizer, max_model_len=4096))
    assert sorted(s.metadata["length"] for s in samples) == [2048, 4096]
    assert "length 8192 exceeds the model's max_model_len 4096" in caplog.text


def test_max_length_resolves_to_the_models_length(tokenizer: Any) -> None:
    (s,) = needle({"lengths": ["max"], "output_budget": 64}, make_ctx(tokenizer, max_model_len=3000))
    assert s.id == "needle-L3000-D0.50-i0" and s.metadata["length"] == 3000
    assert 3000 - FIT_TOLERANCE <= chat_tokens(tokenizer, s.fields["prompt"]) + 64 <= 3000


def test_length_too_short_for_the_template_is_skipped_and_nothing_left_is_an_error(tokenizer: Any) -> None:
    samples = needle({"lengths": [60, 1024]}, make_ctx(tokenizer))
    assert [s.metadata["length"] for s in samples] == [1024]
    with pytest.raises(DataError, match="produced no samples"):
        needle({"lengths": [60]}, make_ctx(tokenizer))


def test_missing_tokenizer_is_a_data_error() -> None:
    ctx = DataContext(suite_dir=SUITES, tokenizer=None, max_model_len=4096)
    with pytest.raises(DataError, match="needs the model's tokenizer"):
        needle({"lengths": [1024]}, ctx)
    with pytest.raises(DataError, match="needs the model's tokenizer"):
        docqa({"lengths": [1024]}, ctx)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lenghts": [1024]}, "lenghts"),
        ({"depths": [1.5]}, "depths"),
        ({"lengths": [0]}, "lengths"),
        ({"needles_per_prompt": 0}, "needles_per_prompt"),
        ({"prompt_template": "no placeholders"}, "{context} and {question}"),
    ],
)
def test_bad_options_are_config_errors(tokenizer: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        needle(options, make_ctx(tokenizer))


def test_docqa_plants_each_whole_document_and_fits_each_target(tokenizer: Any) -> None:
    records = [
        json.loads(line) for line in (SUITES / "data/longctx/docqa_mini.jsonl").read_text().splitlines()
    ]
    samples = docqa({"lengths": [2048, 6000], "depths": [0.0, 0.5]}, make_ctx(tokenizer))
    assert len(samples) == len(records) * 4
    by_id = {r["id"]: r for r in records}
    for s in samples:
        rec = by_id[s.metadata["doc_id"]]
        assert rec["document"] in s.fields["context"] and rec["title"] in s.fields["context"]
        assert s.reference == rec["answer"] and s.fields["question"] == rec["question"]
        assert rec["question"] in s.fields["prompt"]
        total = chat_tokens(tokenizer, s.fields["prompt"]) + 32
        assert s.metadata["length"] - FIT_TOLERANCE <= total <= s.metadata["length"], s.id
        if s.metadata["depth"] == 0.0:
            assert s.fields["context"].startswith(rec["title"])
        else:
            # Depth is the share of the filler before the document, so depth 1 puts it at the very end.
            ctx_tokens = len(tokenizer(s.fields["context"], add_special_tokens=False)["input_ids"])
            doc = f"{rec['title']}\n\n{rec['document']}"
            doc_tokens = len(tokenizer(doc, add_special_tokens=False)["input_ids"])
            before = token_depth(tokenizer, s.fields["context"], rec["title"]) * ctx_tokens
            assert abs(before / (ctx_tokens - doc_tokens) - 0.5) <= 0.05, s.id


def test_docqa_answers_are_not_in_the_filler() -> None:
    haystack = (SUITES / "data/longctx/haystack.txt").read_text().casefold()
    records = [
        json.loads(line) for line in (SUITES / "data/longctx/docqa_mini.jsonl").read_text().splitlines()
    ]
    assert len(records) >= 8
    for rec in records:
        assert rec["answer"].casefold() in rec["document"].casefold()
        assert not re.search(rf"\b{re.escape(rec['answer'].casefold())}\b", haystack), rec["id"]


def test_samples_feed_the_default_prompt_template(tokenizer: Any) -> None:
    (s,) = needle({"lengths": [1024]}, make_ctx(tokenizer))
    assert isinstance(s, Sample) and s.fields["prompt"].endswith(s.fields["question"])
    assert s.fields["context"] in s.fields["prompt"]


def test_the_tasks_own_system_prompt_is_measured(tokenizer: Any) -> None:
    """A suite that sets `prompt.system` on the task (not in the dataset options) still lands on target."""
    from llmbench.config.suite import PromptSpec

    system = "You are a meticulous archivist. Answer with the exact value only."
    ctx = make_ctx(tokenizer)
    ctx.prompt = PromptSpec(system=system, template="{{ prompt }}")
    (s,) = needle({"lengths": [1500]}, ctx)
    assert 1500 - FIT_TOLERANCE <= chat_tokens(tokenizer, s.fields["prompt"], system) + 32 <= 1500


@pytest.mark.parametrize(
    ("prompt", "options", "message"),
    [
        ({"template": "Read this: {{ prompt }}"}, {}, "must be template"),
        ({"few_shot": [{"user": "q", "assistant": "a"}]}, {}, "no few_shot"),
        ({"mode": "completion"}, {"chat": True}, "prompt.mode is completion"),
        ({"system": "one"}, {"system": "another"}, "system differs"),
    ],
)
def test_a_task_prompt_the_generator_cannot_measure_is_refused(
    tokenizer: Any, prompt: dict[str, Any], options: dict[str, Any], message: str
) -> None:
    from llmbench.config.suite import PromptSpec

    ctx = make_ctx(tokenizer)
    ctx.prompt = PromptSpec(**({"template": "{{ prompt }}"} | prompt))
    with pytest.raises(ConfigError, match=message):
        needle({"lengths": [1024]} | options, ctx)
