"""The performance sweep, its exact-length prompts, and the dummy-weight architecture configs.

The sweep tests drive `run_sweep` with a small in-test backend that implements the Backend
Protocol and reports scripted timings. That fake stands in for a model only to check the
arithmetic (metric definitions, warm-up exclusion, failure handling, goodput, MBU) exactly; the
real backends' timings are tested in tests/backends. Prompts use tiny-qwen2's real tokenizer.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from llmbench.config.suite import PerfSweep
from llmbench.data.perfprompts import count_tokens, make_prompt_ids, make_prompt_text
from llmbench.results.schema import PerfPoint
from llmbench.run.arrivals import poisson_offsets
from llmbench.run.perf import PerfTarget, peak_bandwidth_bytes_s, run_sweep
from llmbench.telemetry.nvml import NvmlSampler
from llmbench.types import Completion, GenerationRequest
from tests.model_free_backend import ModelFreeBackend
from tests.telemetry import fake_pynvml
from tests.telemetry.fake_pynvml import FakeGpu

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from llmbench.testing.tinymodel import ensure_tiny_model

    return AutoTokenizer.from_pretrained(ensure_tiny_model())


@dataclass
class Call:
    requests: list[GenerationRequest]
    concurrency: int | None
    offsets: list[float] | None


class OutOfMemoryError(RuntimeError):
    """Named like torch.OutOfMemoryError, which the sweep recognises by name."""


@dataclass
class ScriptedBackend(ModelFreeBackend):
    """Reports request i of a call with TTFT ttft_ms[i] and a fixed TPOT; optionally a "cold" first call."""

    name: ClassVar[str] = "scripted"
    ttft_ms: Sequence[float] = (10.0, 20.0, 30.0, 40.0)
    tpot_ms: float = 2.0
    cold_ttft_ms: float | None = None  # TTFT of every request of the first call (a cold start)
    fail_at_input: int | None = None
    failure: Exception = field(
        default_factory=lambda: RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
    )
    calls: list[Call] = field(default_factory=list)
    on_generate: Any = None

    def answer(
        self, requests: list[GenerationRequest], concurrency: int | None, offsets: list[float] | None
    ) -> Iterator[Completion]:
        self.calls.append(Call(requests, concurrency, offsets or None))
        n_in = len(requests[0].prompt_token_ids or ()) if requests[0].prompt_token_ids else None
        if self.fail_at_input is not None and n_in is not None and n_in >= self.fail_at_input:
            raise self.failure
        if self.on_generate is not None:
            self.on_generate()
        cold = self.cold_ttft_ms if len(self.calls) == 1 else None
        time.sleep(0.001 * len(requests))  # deterministic work, so the point has a wall time
        for i, req in enumerate(requests):
            n_out = req.params.max_new_tokens
            ttft = cold if cold is not None else self.ttft_ms[i % len(self.ttft_ms)]
            yield Completion(
                request_id=req.request_id,
                text="x" * n_out,
                prompt_tokens=n_in,
                output_tokens=n_out,
                finish_reason="length",
                ttft_ms=ttft,
                latency_ms=ttft + self.tpot_ms * (n_out - 1),
                itl_ms=[self.tpot_ms] * (n_out - 1),
            )


def sweep_with(**kw: Any) -> PerfSweep:
    base: dict[str, Any] = {"input_tokens": [32], "output_tokens": [8], "concurrency": [4]}
    base |= {"requests_per_point": 4, "warmup_requests": 0}
    return PerfSweep(**(base | kw))


def run(backend: ScriptedBackend, sweep: PerfSweep, tokenizer: Any, **kw: Any) -> list[PerfPoint]:
    on_point = kw.pop("on_point", None)
    args: dict[str, Any] = {"sampler": None, "tokenizer": tokenizer, "max_model_len": 4096, "seed": 0}
    return run_sweep(PerfTarget(backend, **(args | {"needs_text": False} | kw)), sweep, on_point=on_point)


# -- the sweep --------------------------------------------------------------------------------------


def test_figures_follow_the_vllm_bench_definitions(tokenizer: Any) -> None:
    backend = ScriptedBackend()
    (point,) = run(backend, sweep_with(), tokenizer)
    assert point.error is None and point.n_requests == 4
    assert point.ttft_ms is not None and point.ttft_ms.mean == 25.0 and point.ttft_ms.max == 40.0
    assert point.tpot_ms is not None and point.tpot_ms.p50 == 2.0  # (E2E - TTFT) / (out - 1)
    assert point.itl_ms is not None and point.itl_ms.n == 4 * 7
    assert point.e2e_latency_ms is not None and point.e2e_latency_ms.mean == 25.0 + 14.0
    assert point.duration_s is not None and point.duration_s > 0
    assert point.output_tokens_per_s == pytest.approx(4 * 8 / point.duration_s)
    assert point.request_throughput_per_s == pytest.approx(4 / point.duration_s)
    per_request = [8 / ((t + 14.0) / 1000) for t in (10.0, 20.0, 30.0, 40.0)]
    assert point.per_request_output_tokens_per_s is not None
    assert point.per_request_output_tokens_per_s.mean == pytest.approx(sum(per_request) / 4)
    assert point.goodput_per_s is None  # no SLO given
    (call,) = backend.calls
    assert call.concurrency == 4 and call.offsets is None
    for req in call.requests:
        assert req.prompt_token_ids is not None and len(req.prompt_token_ids) == 32
        assert (req.params.max_new_tokens, req.params.ignore_eos, req.params.temperature) == (8, True, 0.0)


def test_ttft_is_the_backends_time_from_submission(tokenizer: Any) -> None:
    """Poisson arrival offsets are not added to TTFT: it runs from each request's own submission."""
    backend = ScriptedBackend()
    (point,) = run(backend, sweep_with(concurrency=[], request_rates=[50.0]), tokenizer)
    offsets = backend.calls[0].offsets
    assert offsets is not None and offsets[-1] > 0
    assert point.ttft_ms is not None and point.ttft_ms.max == 40.0
    assert point.request_rate == 50.0 and point.concurrency is None


def test_warmup_requests_are_left_out_of_the_figures(tokenizer: Any) -> None:
    backend = ScriptedBackend(cold_ttft_ms=5000.0)
    (point,) = run(backend, sweep_with(warmup_requests=2, repeats=2), tokenizer)
    warmup, *measured = backend.calls
    assert len(warmup.requests) == 2 and len(measured) == 2
    assert all(len(r.prompt_token_ids or ()) == 32 for r in warmup.requests)  # same shape as the point
    assert point.n_requests == 8 and point.ttft_ms is not None and point.ttft_ms.n == 8
    assert point.ttft_ms.max == 40.0  # the cold 5000 ms of the warm-up is not in it


def test_a_point_with_fewer_requests_than_slots_says_it_never_reached_them(tokenizer: Any) -> None:
    """`--limit 2` on a concurrency-16 point runs 2 at a time: recorded, and flagged as not at 16."""
    short, full = run(ScriptedBackend(), sweep_with(concurrency=[16, 2], requests_per_point=2), tokenizer)
    assert (short.concurrency, full.concurrency) == (16, 2)
    assert short.note is not None and short.note == "only 2 requests: at most 2 in flight"
    assert short.most_in_flight == 2 and full.most_in_flight is None
    assert full.note is None


def test_failed_point_is_recorded_and_the_sweep_goes_on(tokenizer: Any) -> None:
    backend = ScriptedBackend(fail_at_input=256)
    points = run(backend, sweep_with(input_tokens=[64, 256, 128]), tokenizer)
    assert [p.input_tokens for p in points] == [64, 256, 128]
    assert points[0].error is None and points[2].error is None
    assert points[1].error is not None and points[1].error.startswith("out of memory")
    assert points[1].ttft_ms is None and points[1].n_requests == 4


def test_oom_is_recognised_by_the_torch_exception_type(tokenizer: Any) -> None:
    backend = ScriptedBackend(fail_at_input=1, failure=OutOfMemoryError("allocation failed"))
    (point,) = run(backend, sweep_with(), tokenizer)
    assert point.error == "out of memory: allocation failed"
    other = ScriptedBackend(fail_at_input=1, failure=ValueError("engine died"))
    (point,) = run(other, sweep_with(), tokenizer)
    assert point.error == "ValueError: engine died"


def test_max_input_is_the_model_length_minus_the_output(tokenizer: Any) -> None:
    backend = ScriptedBackend()
    points = run(backend, sweep_with(input_tokens=["max", 200]), tokenizer, max_model_len=128)
    assert points[0].input_tokens == 120 and points[0].error is None
    assert {len(r.prompt_token_ids or ()) for c in backend.calls for r in c.requests} == {120}
    assert points[1].error is not None and "exceeds max_model_len 128" in points[1].error
    assert len(backend.calls) == 1  # the point that cannot fit never reaches the backend
    (unknown,) = run(ScriptedBackend(), sweep_with(input_tokens=["max"]), tokenizer, max_model_len=None)
    assert unknown.error is not None and "max_model_len" in unknown.error


def test_fit_to_model_runs_lengths_past_the_limit_once_at_the_limit(tokenizer: Any) -> None:
    backend = ScriptedBackend()
    sweep = sweep_with(input_tokens=[64, 200, 500], fit_to_model=True)
    points = run(backend, sweep, tokenizer, max_model_len=128)
    assert [(p.input_tokens, p.error) for p in points] == [(64, None), (120, None)]
    assert len(backend.calls) == 2  # 200 and 500 both cut to 120: that point runs once


def test_goodput_counts_only_requests_within_every_slo(tokenizer: Any) -> None:
    backend = ScriptedBackend()
    (point,) = run(backend, sweep_with(slo_ttft_ms=25.0), tokenizer)
    assert point.duration_s is not None
    assert point.goodput_per_s == pytest.approx(2 / point.duration_s)
    (point,) = run(ScriptedBackend(), sweep_with(slo_ttft_ms=25.0, slo_tpot_ms=1.0), tokenizer)
    assert point.goodput_per_s == 0.0  # TPOT is 2 ms for every request


def test_bandwidth_utilisation_is_weight_reads_per_decode_step(tokenizer: Any) -> None:
    backend = ScriptedBackend(tpot_ms=2.0)
    kw = {"weights_bytes": 1_000_000_000, "peak_bandwidth_bytes_s": 2e12}
    (point,) = run(backend, sweep_with(), tokenizer, **kw)
    assert point.bandwidth_utilisation == pytest.approx(1e9 * (1000 / 2.0) / 2e12)
    (unknown,) = run(ScriptedBackend(), sweep_with(), tokenizer)
    assert unknown.bandwidth_utilisation is None


def test_request_rates_use_seeded_poisson_arrivals(tokenizer: Any) -> None:
    def offsets(seed: int) -> list[float]:
        backend = ScriptedBackend()
        run(
            backend,
            sweep_with(concurrency=[], request_rates=[4.0], requests_per_point=16),
            tokenizer,
            seed=seed,
        )
        result = backend.calls[0].offsets
        assert result is not None
        return result

    first = offsets(0)
    assert len(first) == 16 and first[0] == 0.0 and first == sorted(first)
    assert offsets(0) == first
    assert offsets(1) != first


def test_poisson_gaps_have_the_requested_mean_rate() -> None:
    import random

    arrivals = poisson_offsets(20_000, 8.0, random.Random(0))
    assert arrivals[-1] / (len(arrivals) - 1) == pytest.approx(1 / 8.0, rel=0.03)


def test_text_backends_get_prompts_of_exact_token_length(tokenizer: Any) -> None:
    backend = ScriptedBackend()
    run(backend, sweep_with(input_tokens=[48], prompt_kind="text"), tokenizer, needs_text=True)
    prompts = [r.prompt for r in backend.calls[0].requests]
    assert all(p is not None and count_tokens(tokenizer, p) == 48 for p in prompts)
    assert len(set(prompts)) == 4


def test_no_two_prompts_of_a_sweep_share_their_first_tokens(tokenizer: Any) -> None:
    backend = ScriptedBackend()
    run(backend, sweep_with(warmup_requests=1, concurrency=[1, 2], output_tokens=[4, 8]), tokenizer)
    heads = [r.prompt_token_ids[:2] for c in backend.calls for r in c.requests if r.prompt_token_ids]
    assert len(heads) == 4 * (4 + 1) and len(set(heads)) == len(heads)


def test_every_point_is_reported_as_it_finishes(tokenizer: Any) -> None:
    seen: list[PerfPoint] = []
    points = run(
        ScriptedBackend(),
        sweep_with(concurrency=[1, 2], output_tokens=[4, 8]),
        tokenizer,
        on_point=lambda _no, p: seen.append(p),
    )
    assert seen == points
    assert [(p.output_tokens, p.concurrency) for p in points] == [(4, 1), (4, 2), (8, 1), (8, 2)]


def test_sampler_window_gives_peak_vram_and_energy_per_token(
    tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (gpu,) = fake_pynvml.configure([FakeGpu(uuid="GPU-1", memory_used_mib=[16_000.0], energy_mj=0)])
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def generation_load() -> None:  # each measured call adds 64 J and a KV-cache spike
        gpu.memory_used_mib = [21_000.0, 16_500.0]
        gpu.memory_reads = 0
        gpu.energy_mj = (gpu.energy_mj or 0) + 64_000

    backend = ScriptedBackend(on_generate=generation_load)
    with NvmlSampler(hz=50) as sampler:
        (point,) = run(backend, sweep_with(requests_per_point=4), tokenizer, sampler=sampler)
    assert point.peak_vram_mib == 21_000.0
    assert point.energy_per_output_token_j == pytest.approx(64.0 / (4 * 8))
    fake_pynvml.configure([])


def test_peak_bandwidth_from_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pynvml.configure([FakeGpu(uuid="GPU-0"), FakeGpu(uuid="GPU-1")])
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert peak_bandwidth_bytes_s() == pytest.approx(2 * 2619e6 * 5120 / 8)  # H100: 3.35 TB/s
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert peak_bandwidth_bytes_s() == pytest.approx(2 * 2 * 2619e6 * 5120 / 8)
    assert peak_bandwidth_bytes_s([0]) == pytest.approx(2 * 2619e6 * 5120 / 8)
    fake_pynvml.configure([], library_present=False)
    assert peak_bandwidth_bytes_s() is None


def test_sweep_on_the_real_transformers_backend() -> None:
    """The same sweep on tiny-qwen2 in Transformers: real timings, exact output lengths, a rate point."""
    from llmbench.backends.transformers import TransformersBackend
    from llmbench.config.models import resolve_model
    from llmbench.testing.tinymodel import resolve_model_path

    cfg = resolve_model("tiny-qwen2")
    backend = TransformersBackend(cfg, resolve_model_path(cfg))
    info = backend.load()
    try:
        sweep = PerfSweep(
            input_tokens=[16, "max"],
            output_tokens=[6],
            concurrency=[2],
            request_rates=[20.0],
            requests_per_point=3,
            warmup_requests=1,
        )
        target = PerfTarget(
            backend,
            NvmlSampler().start(),
            backend.tokenizer,
            max_model_len=64,
            seed=0,
            needs_text=False,
            weights_bytes=info.weights_bytes,
        )
        points = run_sweep(target, sweep)
    finally:
        backend.close()
    assert [(p.input_tokens, p.concurrency, p.request_rate) for p in points] == [
        (16, 2, None),
        (16, None, 20.0),
        (58, 2, None),
        (58, None, 20.0),
    ]
    for point in points:
        assert point.error is None, point.error
        assert point.ttft_ms is not None and point.ttft_ms.n == 3
        assert point.e2e_latency_ms is not None and point.e2e_latency_ms.min >= point.ttft_ms.min
        assert point.tpot_ms is not None and point.itl_ms is not None and point.itl_ms.n == 3 * 5
        assert point.duration_s is not None
        assert point.output_tokens_per_s == pytest.approx(3 * 6 / point.duration_s)
        assert point.peak_vram_mib is None  # no GPU here


# -- prompts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["random", "text"])
def test_prompt_ids_have_exact_length_and_no_special_tokens(tokenizer: Any, kind: str) -> None:
    special = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
    for n in (1, 2, 17, 1000):
        ids = make_prompt_ids(tokenizer, n, kind, seed=3, index=5)  # type: ignore[arg-type]
        assert len(ids) == n and not special & set(ids)
        assert ids == make_prompt_ids(tokenizer, n, kind, seed=3, index=5)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["random", "text"])
def test_prompt_text_retokenizes_to_exact_length(tokenizer: Any, kind: str) -> None:
    for n in (1, 3, 64, 777):
        for index in range(3):
            text = make_prompt_text(tokenizer, n, seed=0, index=index, kind=kind)  # type: ignore[arg-type]
            assert count_tokens(tokenizer, text) == n


def test_text_prompts_read_as_english(tokenizer: Any) -> None:
    ids = make_prompt_ids(tokenizer, 200, "text", seed=0, index=0)
    words = tokenizer.decode(ids[2:]).split()
    assert sum(w.strip(".,;:") in {"the", "and", "of", "a", "to"} for w in words) >= 5


# -- dummy-weight architectures ---------------------------------------------------------------------

PUBLISHED_PARAMS_B = {
    "qwen2.5-7b": (7.62, "Qwen2ForCausalLM"),
    "phi-3-mini": (3.82, "Phi3ForCausalLM"),
    "llama3-8b": (8.03, "LlamaForCausalLM"),
    "yi-1.5-6b": (6.06, "LlamaForCausalLM"),
    "deepseek-coder-7b": (6.74, "LlamaForCausalLM"),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS_B))
def test_architecture_config_matches_the_published_model_size(name: str, tmp_path: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    shutil.copy(ROOT / "configs" / "architectures" / f"{name}.json", tmp_path / "config.json")
    config = AutoConfig.from_pretrained(tmp_path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    params_b = sum(p.numel() for p in model.parameters()) / 1e9
    published, architecture = PUBLISHED_PARAMS_B[name]
    assert type(model).__name__ == architecture == config.architectures[0]
    assert params_b == pytest.approx(published, rel=0.02)


def test_bandwidth_of_layers_placed_one_gpu_after_another_is_one_gpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one_gpu = 2 * 2619e6 * 5120 / 8
    fake_pynvml.configure([FakeGpu(uuid=f"GPU-{i}") for i in range(4)])
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert peak_bandwidth_bytes_s([0, 1, 2, 3], at_once=1) == pytest.approx(one_gpu)  # a device_map
    assert peak_bandwidth_bytes_s([0, 1, 2, 3], at_once=2) == pytest.approx(2 * one_gpu)  # tp 2 x pp 2
    assert peak_bandwidth_bytes_s([0, 1]) == pytest.approx(2 * one_gpu)  # tensor parallel over both
    fake_pynvml.configure([])
