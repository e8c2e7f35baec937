"""The generation cache: a repeated quality run generates nothing and scores the same; anything that decides
an output (dtype, a generation parameter, the model's files) misses; performance runs never touch it."""

from __future__ import annotations

import multiprocessing
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from llmbench import api
from llmbench.backends import backends
from llmbench.backends.transformers import TransformersBackend
from llmbench.config.models import ModelConfig
from llmbench.results.schema import RunResult
from llmbench.run.gen_cache import GenerationCache, store_path
from llmbench.run.gen_cache_keys import kept, restored
from llmbench.run.gen_store import CacheStore
from llmbench.run.progress_events import Progress
from llmbench.testing.tinymodel import ensure_tiny_model
from llmbench.types import Completion, GenerationParams, GenerationRequest
from tests.gen_cache_writer import write_entries

COUNTING = "counting-transformers"


class CountingTransformers(TransformersBackend):
    """The real Transformers backend, counting the requests it is asked to generate (warm-up included)."""

    name: ClassVar[str] = COUNTING
    asked: ClassVar[list[int]] = []

    def generate(self, requests: Sequence[GenerationRequest], **kwargs: Any) -> Iterator[Completion]:
        type(self).asked.append(len(requests))
        return super().generate(requests, **kwargs)


class Messages(Progress):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cache folder of the test's own (tiny-qwen2 copied in, not rebuilt), the cache on, the backend counting."""
    tiny = ensure_tiny_model()
    home = tmp_path / "cache"
    shutil.copytree(tiny, home / "models" / tiny.name)
    monkeypatch.setenv("LLMBENCH_CACHE", str(home))
    monkeypatch.delenv("LLMBENCH_NO_CACHE", raising=False)
    backends.add(COUNTING, CountingTransformers)
    CountingTransformers.asked.clear()
    yield home
    backends.remove(COUNTING)


def tiny(**changes: Any) -> ModelConfig:
    return api.model("tiny-qwen2", backend=COUNTING).model_copy(update=changes)


def quality_run(
    tmp_path: Path, name: str, model: ModelConfig, progress: Progress | None = None, **opts: Any
) -> RunResult:
    """gsm8k, 3 samples of 8 new tokens at most, greedy unless `opts` say otherwise."""
    options = {"limit": 3, "tasks": ["gsm8k"], "max_new_tokens": 8} | opts
    result, _ = api.run(
        "suites/math.yaml", model, api.RunOptions(output=tmp_path / f"{name}.json", **options), progress
    )
    return result


def generated(since: int = 0) -> int:
    return sum(CountingTransformers.asked[since:])


def test_a_repeated_quality_run_generates_nothing_and_scores_the_same(
    cache_home: Path, tmp_path: Path
) -> None:
    first = quality_run(tmp_path, "first", tiny())
    assert generated() > 0 and first.summary.cached_generations == 0
    assert all(s.cached_from is None and s.latency_ms is not None for s in first.samples)
    asked = len(CountingTransformers.asked)

    second = quality_run(tmp_path, "second", tiny())
    assert CountingTransformers.asked[asked:] == []  # not even a warm-up
    assert second.summary.cached_generations == len(second.samples) == 3
    assert {s.cached_from for s in second.samples} == {first.run_id}
    assert [(s.id, s.output, s.score, s.status, s.prompt_hash, s.tokens_out) for s in second.samples] == [
        (s.id, s.output, s.score, s.status, s.prompt_hash, s.tokens_out) for s in first.samples
    ]
    assert second.suite_score == first.suite_score
    assert all(s.ttft_ms is None and s.latency_ms is None and not s.itl_ms for s in second.samples)
    assert second.performance.ttft_ms is None and second.performance.e2e_latency_ms is None
    assert not second.performance.total_output_tokens


def test_a_run_without_the_cache_generates_again_and_keeps_its_timings(
    cache_home: Path, tmp_path: Path
) -> None:
    quality_run(tmp_path, "first", tiny())
    asked = len(CountingTransformers.asked)
    bypass = quality_run(tmp_path, "bypass", tiny(), cache=False)
    assert generated(asked) >= 3
    assert bypass.summary.cached_generations is None
    assert all(s.cached_from is None and s.latency_ms is not None for s in bypass.samples)


@pytest.mark.parametrize(
    ("change", "opts"),
    [
        ({"dtype": "bfloat16"}, {}),
        ({"batch_size": 2}, {}),
        ({}, {"max_new_tokens": 6}),
        ({}, {"seed": 7}),
    ],
    ids=["dtype", "batch-size", "max-new-tokens", "seed"],
)
def test_what_decides_an_output_is_part_of_the_key(
    cache_home: Path, tmp_path: Path, change: dict[str, Any], opts: dict[str, Any]
) -> None:
    quality_run(tmp_path, "first", tiny())
    asked = len(CountingTransformers.asked)
    other = quality_run(tmp_path, "other", tiny(**change), **opts)
    assert other.summary.cached_generations == 0
    assert generated(asked) >= 3


def test_rewritten_weights_miss_and_a_copy_with_the_same_content_hits(
    cache_home: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    model_dir = tmp_path / "model"
    shutil.copytree(ensure_tiny_model(), model_dir)
    quality_run(tmp_path, "first", api.model(str(model_dir), backend=COUNTING))

    same = tmp_path / "same-content"
    shutil.copytree(model_dir, same)
    assert (
        quality_run(tmp_path, "copy", api.model(str(same), backend=COUNTING)).summary.cached_generations == 3
    )

    weights = load_file(model_dir / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] + 0.25
    save_file(weights, model_dir / "model.safetensors", metadata={"format": "pt"})
    asked = len(CountingTransformers.asked)
    rewritten = quality_run(tmp_path, "rewritten", api.model(str(model_dir), backend=COUNTING))
    assert rewritten.summary.cached_generations == 0 and generated(asked) >= 3


def test_sampled_requests_are_kept_only_where_a_seed_repeats(cache_home: Path, tmp_path: Path) -> None:
    sampled = quality_run(tmp_path, "sampled", tiny(), sets={"generation.temperature": 0.8})
    assert sampled.summary.cached_generations == 0
    assert api.cache_info().entries == 0  # batch-seeded sampling in Transformers does not repeat per request

    request = GenerationRequest("r", GenerationParams(temperature=0.8, seed=3), prompt="hi")
    unseeded = GenerationRequest("r", GenerationParams(temperature=0.8), prompt="hi")
    repeats = GenerationCache(None, None, seeded_ok=True, run_id="x", warn=print)
    assert repeats.cacheable(request) and not repeats.cacheable(unseeded)
    assert not GenerationCache.off().cacheable(request)


def test_performance_runs_never_read_or_write_the_cache(cache_home: Path, tmp_path: Path) -> None:
    suite = tmp_path / "perf.yaml"
    suite.write_text(
        "name: perf-only\ntasks:\n  - name: sweep\n    perf:\n      input_tokens: [16]\n"
        "      output_tokens: [4]\n      concurrency: [1]\n      requests_per_point: 2\n      warmup_requests: 0\n"
    )
    result, _ = api.run(suite, tiny(), api.RunOptions(output=tmp_path / "perf.json"))
    assert result.performance.sweep[0].ttft_ms is not None
    assert result.summary.cached_generations is None
    assert not store_path().exists()


def test_a_corrupt_store_is_one_line_and_the_run_goes_on(cache_home: Path, tmp_path: Path) -> None:
    store_path().parent.mkdir(parents=True, exist_ok=True)
    store_path().write_bytes(b"this is not an SQLite database, not even its header" * 100)
    progress = Messages()
    result = quality_run(tmp_path, "corrupt", tiny(), progress)
    assert len(result.samples) == 3 and all(s.latency_ms is not None for s in result.samples)
    assert result.summary.cached_generations is None
    [line] = [m for m in progress.lines if "generation cache" in m]
    assert str(store_path()) in line and "goes on without" in line and "llmbench cache clear" in line

    api.cache_clear()
    quality_run(tmp_path, "after-clear", tiny())
    assert api.cache_info().entries == 3


def test_the_reference_backend_is_not_cached(cache_home: Path, tmp_path: Path) -> None:
    result = quality_run(tmp_path, "reference", api.model("tiny-qwen2", backend="reference"))
    assert result.summary.cached_generations is None
    assert not store_path().exists()


def test_prune_removes_old_entries_and_those_of_models_gone_or_changed(
    cache_home: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(ensure_tiny_model(), model_dir)
    quality_run(tmp_path, "tiny", tiny())
    quality_run(tmp_path, "copy", api.model(str(model_dir), backend=COUNTING), max_new_tokens=6)
    assert api.cache_info().entries == 6 and len(api.cache_info().models) == 2

    assert api.cache_prune(missing_models=True) == 0  # both models are here, unchanged
    shutil.rmtree(model_dir)
    assert api.cache_prune(missing_models=True) == 3
    assert [m.model_name for m in api.cache_info().models] == ["tiny-qwen2"]
    assert api.cache_prune(older_than_days=1) == 0
    assert api.cache_prune(older_than_days=0) == 3
    assert api.cache_clear() == 0 and api.cache_info().entries == 0


def test_a_restored_completion_has_its_answer_and_no_timings() -> None:
    done = Completion(
        "a", "The answer is 4.", prompt_tokens=9, output_tokens=5, finish_reason="length", ttft_ms=3.0,
        latency_ms=9.0, itl_ms=[1.5, 1.5], prompt_hash="p", output_hash="o", batch_size=4, queue_ms=1.0,
        attempts=2, schedule_lag_ms=0.5, sent_ns=12, warnings=["usage differs"],
    )  # fmt: skip
    back = restored("b", kept(done))
    assert (back.request_id, back.text, back.finish_reason) == ("b", "The answer is 4.", "length")
    assert (back.prompt_tokens, back.output_tokens, back.prompt_hash, back.output_hash) == (9, 5, "p", "o")
    assert back == Completion(
        "b", "The answer is 4.", prompt_tokens=9, output_tokens=5, finish_reason="length", prompt_hash="p",
        output_hash="o",
    )  # fmt: skip


def test_processes_writing_at_once_meet_no_lock_error(tmp_path: Path) -> None:
    path = tmp_path / "generations.sqlite"
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=write_entries, args=(str(path), w, 150)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    store = CacheStore(path)
    [model] = store.models()
    assert model.entries == 600
    store.close()


def test_an_entry_that_no_longer_fits_a_completion_is_a_miss(tmp_path: Path) -> None:
    from llmbench.run.gen_cache_keys import ModelIdentity, request_key
    from llmbench.run.gen_store import NewGeneration

    store = CacheStore(tmp_path / "generations.sqlite")
    model = ModelIdentity("m", "/m", "fp", "model-key")
    good = GenerationRequest("good", GenerationParams(), prompt="2+2=")
    stale = GenerationRequest("stale", GenerationParams(), prompt="3+3=")
    store.put(
        [
            NewGeneration(request_key(model.key, good), "m", "/m", "fp", "run-1", {"text": "4"}),
            NewGeneration(request_key(model.key, stale), "m", "/m", "fp", "run-1", {"output_tokens": "many"}),
        ]
    )
    cache = GenerationCache(store, model, seeded_ok=False, run_id="run-2", warn=print)
    hits = cache.look_up([good, stale])
    assert list(hits) == ["good"] and hits["good"].completion.text == "4"
    assert hits["good"].source_run == "run-1"
    store.close()
