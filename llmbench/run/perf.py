"""The performance sweep: fixed-length prompts at every input length x output length x concurrency (or rate).

Each point is measured by `point_measure.Meter` (the figures are defined there): its warm-up requests,
with the point's shapes, run before it and are left out of every figure.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from llmbench.backends.base import Backend
from llmbench.config.suite import PerfSweep
from llmbench.data.workload_prompts import PromptBuilder
from llmbench.errors import ConfigError
from llmbench.results.schema import PerfPoint
from llmbench.run import interrupts
from llmbench.run.arrivals import repeat_offsets
from llmbench.run.point_measure import Batches, Meter, PointSpec, Sent, empty_point
from llmbench.telemetry.gpus import load_pynvml, visible_targets
from llmbench.telemetry.nvml import NvmlSampler

log = logging.getLogger(__name__)


def sweep_points(sweep: PerfSweep) -> list[PointSpec]:
    """Every point in run order: per (input, output), each concurrency, then each request rate."""
    points: list[PointSpec] = []
    for n_in in sweep.input_tokens:
        for n_out in sweep.output_tokens:
            points += [PointSpec(n_in, n_out, concurrency=c) for c in sweep.concurrency]
            points += [PointSpec(n_in, n_out, request_rate=r) for r in sweep.request_rates]
    return points


def resolve_input_tokens(
    spec: PointSpec, max_model_len: int | None, fit: bool = False
) -> tuple[int, str | None]:
    """The prompt length of a point, and why it cannot run (None when it can); `fit` cuts it to the limit."""
    if spec.input_tokens == "max":
        if max_model_len is None:
            return 0, "input_tokens 'max' needs the model's max_model_len"
        n_in = max_model_len - spec.output_tokens
        if n_in < 1:
            return (
                0,
                f"output_tokens {spec.output_tokens} leaves no room for a prompt in max_model_len {max_model_len}",
            )
        return n_in, None
    n_in = spec.input_tokens
    if fit and max_model_len is not None and n_in + spec.output_tokens > max_model_len:
        return resolve_input_tokens(replace(spec, input_tokens="max"), max_model_len)
    if max_model_len is not None and n_in + spec.output_tokens > max_model_len:
        return n_in, (
            f"input_tokens + output_tokens = {n_in + spec.output_tokens} exceeds max_model_len {max_model_len}"
        )
    return n_in, None


def peak_bandwidth_bytes_s(
    device_indices: list[int] | None = None, at_once: int | None = None
) -> float | None:
    """Peak memory bandwidth from NVML, 2 (DDR) x max memory clock x bus width / 8, of the GPUs that read
    the weights at the same time.

    `device_indices`: the visible-device positions the model is spread over (None: every visible GPU).
    `at_once`: how many of them read at once: the tensor-parallel size; 1 where layers run one GPU after
    another (Transformers' device_map), where the figure is one GPU's (their mean); None: all of them
    (their sum). None without NVML or a GPU.
    """
    nvml, _reason = load_pynvml()
    if nvml is None:
        return None
    try:
        targets = visible_targets(nvml, os.environ.get("CUDA_VISIBLE_DEVICES"))
        if device_indices is not None:
            targets = [targets[i] for i in device_indices if 0 <= i < len(targets)]
        per_gpu, seen = [], set()
        for target in targets:
            if id(target.parent) in seen:
                continue
            seen.add(id(target.parent))
            clock_mhz = nvml.nvmlDeviceGetMaxClockInfo(target.parent, nvml.NVML_CLOCK_MEM)
            width_bits = nvml.nvmlDeviceGetMemoryBusWidth(target.parent)
            per_gpu.append(2 * clock_mhz * 1e6 * width_bits / 8)
        if not per_gpu:
            return None
        n = len(per_gpu) if at_once is None else min(at_once, len(per_gpu))
        return sum(per_gpu) / len(per_gpu) * n
    except nvml.NVMLError:
        return None
    finally:
        with suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


def task_prompt_seed(seed: int, task: str) -> int:
    """The prompt seed of one perf task of a run: each task's prompts differ from every other task's.

    With the run's seed alone, two tasks of a suite (a context sweep and a concurrency sweep) sent the same
    prompts, and the second one's TTFT was the engine's prefix cache answering what the first had sent.
    """
    digest = hashlib.sha256(f"{seed}:{task}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class PerfTarget:
    """The loaded model a sweep or a saturation search measures, and what building its prompts needs.

    Without a tokenizer (a dummy-weight architecture) prompts are random ids below `vocab_size`.
    `weights_bytes` and `peak_bandwidth_bytes_s` give the bandwidth utilisation where both are known.
    """

    backend: Backend
    sampler: NvmlSampler | None
    tokenizer: Any
    max_model_len: int | None
    seed: int
    needs_text: bool
    vocab_size: int | None = None
    weights_bytes: int | None = None
    peak_bandwidth_bytes_s: float | None = None
    client_process: bool = False  # the engine runs elsewhere (a server): this process only sends and reads

    def prompts(self, sweep: PerfSweep) -> PromptBuilder:
        """The builder of `sweep`'s prompts for this model."""
        return PromptBuilder(self.tokenizer, sweep.prompt_kind, self.seed, self.needs_text, self.vocab_size)

    def meter(self, sweep: PerfSweep) -> Meter:
        """What measures this model's points, with `sweep`'s SLOs for goodput and the bandwidth where known."""
        return Meter(
            self.backend,
            self.sampler,
            sweep,
            weights_bytes=self.weights_bytes,
            peak_bandwidth_bytes_s=self.peak_bandwidth_bytes_s,
            client_process=self.client_process,
        )


def run_sweep(
    target: PerfTarget,
    sweep: PerfSweep,
    *,
    on_point: Callable[[int, PerfPoint], None] | None = None,
    done: dict[int, PerfPoint] | None = None,
) -> list[PerfPoint]:
    """Run every point of `sweep` on a loaded backend; a point that fails is recorded and the sweep goes on.

    Points in `done` (by their number, from a resumed run's journal) are taken as they are; the
    prompts of the points after them are the same as in an uninterrupted sweep.
    """
    done = done or {}
    t = target
    if t.tokenizer is None and (not t.vocab_size or t.needs_text or sweep.prompt_kind != "random"):
        raise ConfigError(
            "a perf sweep needs the model's tokenizer to build prompts of exact token lengths",
            hint="without one, only random token-id prompts can run (prompt_kind: random, a completions endpoint)",
        )
    prompts, meter = t.prompts(sweep), t.meter(sweep)
    results: list[PerfPoint] = []
    seen: set[tuple[int, int, int | None, float | None]] = set()
    for point_no, spec in enumerate(sweep_points(sweep)):
        interrupts.check()
        n_in, reason = resolve_input_tokens(spec, t.max_model_len, sweep.fit_to_model)
        shape = (n_in, spec.output_tokens, spec.concurrency, spec.request_rate)
        if reason is None and shape in seen:  # two lengths cut to the same limit: one point
            continue
        seen.add(shape)
        if point_no in done:
            if reason is None:
                prompts.skip(sweep.warmup_requests + sweep.requests_per_point * sweep.repeats)
            results.append(done[point_no])
            continue
        if reason is not None:
            point = empty_point(spec, n_in, 0, reason)
        else:
            point = _run_point(meter, sweep, spec, n_in, point_no, prompts, t.seed)
        log.info("perf point %s: %s", spec, point.error or f"{point.output_tokens_per_s} tok/s")
        results.append(point)
        if on_point is not None:
            on_point(point_no, point)
    return results


def _run_point(
    meter: Meter,
    sweep: PerfSweep,
    spec: PointSpec,
    n_in: int,
    point_no: int,
    prompts: PromptBuilder,
    seed: int,
) -> PerfPoint:
    """The point's repeats in one measurement; their requests are built after the warm-up."""

    def prepare() -> Callable[[Backend, int | None], Sent]:
        batches = []
        for repeat in range(sweep.repeats):
            batch = prompts.requests(
                sweep.requests_per_point, n_in, spec.output_tokens, f"{point_no}-{repeat}"
            )
            rate = spec.request_rate
            batches.append((batch, repeat_offsets(len(batch), rate, sweep.arrival, seed, point_no, repeat)))
        return Batches(batches).send

    warmup = partial(prompts.requests, sweep.warmup_requests, n_in, spec.output_tokens, f"{point_no}-warmup")
    point, sent = meter.measure(spec, n_in, sweep.requests_per_point * sweep.repeats, warmup, prepare)
    if sent is None:
        return point
    if spec.request_rate is None:
        short = _short_of_concurrency(sweep, spec)
        said = f"only {short} requests: at most {short} in flight" if short is not None else None
        note = "; ".join(filter(None, (said, point.note)))
        return point.model_copy(update={"note": note or None, "most_in_flight": short})
    return point.model_copy(
        update={"arrival_process": sweep.arrival.process, "burstiness": sweep.arrival.burstiness}
    )


def _short_of_concurrency(sweep: PerfSweep, spec: PointSpec) -> int | None:
    """The most requests a closed-loop point had in flight where that is short of its concurrency: fewer
    requests than slots in each of its repeats (`--limit`); None where it reached it."""
    n, c = sweep.requests_per_point, spec.concurrency
    return None if c is None or n >= c else n
