"""The performance sweep: fixed-length prompts at every input length x output length x concurrency (or rate).

Metric definitions (those of `vllm bench`, so users can compare):
- TTFT: first generated token minus the moment the request was submitted to the engine or server.
  Time in the engine's own queue counts; time before submission does not. A request-rate request is
  submitted at its scheduled arrival (the clock starts there even when the client wakes late), every
  request at its arrival however many are in flight; only under a client cap (the saturation search's
  `max_concurrency`) may one wait for a free slot, and then its clock starts when the slot frees, the
  wait being recorded apart as the completion's `queue_ms`, as `vllm bench serve --max-concurrency`
  does. A concurrency point is closed loop: each request is submitted when a slot frees.
  (The Transformers backend is its own engine: there a request's wait for its batch counts.)
- TPOT: (E2E - TTFT) / (output tokens - 1), per request. ITL: every gap between consecutive tokens
  (or stream chunks). E2E: last token minus submission.
- Output tokens/s: all output tokens of the point / the point's wall time (first submission to last
  completion, summed over repeats). Request throughput and goodput use the same wall time; goodput
  counts only requests that meet every SLO given (TTFT <= slo_ttft_ms, TPOT <= slo_tpot_ms).
- Bandwidth utilisation (MBU) = weights_bytes x decode steps per second / peak memory bandwidth,
  where one decode step serves the whole batch, so steps/s = 1000 / mean TPOT (ms). It counts weight
  reads only (KV-cache reads come on top), so it is a lower bound; None where a figure is unknown.
Warm-up requests run before each point, with the same shapes, and are left out of every figure.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, replace
from typing import Any, Literal

from llmbench.backends.base import Backend
from llmbench.backends.common import free_device_memory, is_out_of_memory
from llmbench.config.suite import PerfSweep
from llmbench.data.perfprompts import make_prompt_ids, make_prompt_text
from llmbench.errors import ConfigError
from llmbench.results.schema import PerfPoint
from llmbench.run import interrupts
from llmbench.run.arrivals import arrival_offsets
from llmbench.run.arrivals import poisson_offsets as poisson_offsets
from llmbench.scoring.clustered import clustered_distribution
from llmbench.scoring.stats import distribution
from llmbench.telemetry.gpus import load_pynvml, visible_targets
from llmbench.telemetry.nvml import NvmlSampler, TelemetryWindow
from llmbench.types import Completion, GenerationParams, GenerationRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PointSpec:
    """One point of the sweep before it runs."""

    input_tokens: int | Literal["max"]
    output_tokens: int
    concurrency: int | None = None
    request_rate: float | None = None


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


def describe_failure(exc: BaseException) -> str:
    """One line for a failed point; out-of-memory errors are named as such."""
    if is_out_of_memory(exc):
        return f"out of memory: {exc}"
    return f"{type(exc).__name__}: {exc}"


def peak_bandwidth_bytes_s(device_indices: list[int] | None = None) -> float | None:
    """Peak memory bandwidth from NVML, 2 (DDR) x max memory clock x bus width / 8, summed over GPUs.

    Pass the visible-device positions the model is spread over (tensor parallel); None sums every
    visible GPU. None without NVML or a GPU.
    """
    nvml, _reason = load_pynvml()
    if nvml is None:
        return None
    try:
        targets = visible_targets(nvml, os.environ.get("CUDA_VISIBLE_DEVICES"))
        if device_indices is not None:
            targets = [targets[i] for i in device_indices if 0 <= i < len(targets)]
        total, seen = 0.0, set()
        for target in targets:
            if id(target.parent) in seen:
                continue
            seen.add(id(target.parent))
            clock_mhz = nvml.nvmlDeviceGetMaxClockInfo(target.parent, nvml.NVML_CLOCK_MEM)
            width_bits = nvml.nvmlDeviceGetMemoryBusWidth(target.parent)
            total += 2 * clock_mhz * 1e6 * width_bits / 8
        return total or None
    except nvml.NVMLError:
        return None
    finally:
        with suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


class _PromptFactory:
    """Builds the requests of a sweep; every prompt gets its own index, so no two share a prefix."""

    def __init__(
        self,
        tokenizer: Any,
        kind: Literal["random", "text"],
        seed: int,
        needs_text: bool,
        vocab_size: int | None,
    ) -> None:
        self.tokenizer, self.kind, self.seed, self.needs_text = tokenizer, kind, seed, needs_text
        self.vocab_size = vocab_size
        self.next_index = 0

    def skip(self, n: int) -> None:
        """Advance past the prompts of a point that is not run again (resumed), keeping later ones the same."""
        self.next_index += n

    def requests(self, n: int, n_in: int, n_out: int, tag: str) -> list[GenerationRequest]:
        params = GenerationParams(max_new_tokens=n_out, ignore_eos=True, temperature=0.0)
        out = []
        for i in range(n):
            index, self.next_index = self.next_index, self.next_index + 1
            rid = f"perf-{tag}-{i}"
            if self.needs_text:
                text = make_prompt_text(self.tokenizer, n_in, self.seed, index, kind=self.kind)
                out.append(GenerationRequest(request_id=rid, params=params, prompt=text))
            else:
                ids = make_prompt_ids(self.tokenizer, n_in, self.kind, self.seed, index, self.vocab_size)
                out.append(GenerationRequest(request_id=rid, params=params, prompt_token_ids=ids))
        return out


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
    prompts = _PromptFactory(t.tokenizer, sweep.prompt_kind, t.seed, t.needs_text, t.vocab_size)
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
            point = _empty_point(spec, n_in, 0, reason)
        else:
            point = _run_point(t.backend, sweep, spec, n_in, point_no, prompts, t.sampler, t.seed)
            point = _with_bandwidth(point, t.weights_bytes, t.peak_bandwidth_bytes_s)
        log.info("perf point %s: %s", spec, point.error or f"{point.output_tokens_per_s} tok/s")
        results.append(point)
        if on_point is not None:
            on_point(point_no, point)
    return results


def _empty_point(spec: PointSpec, n_in: int, n_requests: int, error: str) -> PerfPoint:
    return PerfPoint(
        input_tokens=n_in,
        output_tokens=spec.output_tokens,
        concurrency=spec.concurrency,
        request_rate=spec.request_rate,
        n_requests=n_requests,
        error=error,
    )


def _run_point(
    backend: Backend,
    sweep: PerfSweep,
    spec: PointSpec,
    n_in: int,
    point_no: int,
    prompts: _PromptFactory,
    sampler: NvmlSampler | None,
    seed: int,
) -> PerfPoint:
    """Warm up, then run the point's repeats inside one telemetry window (their requests built before it)."""
    n_requests = sweep.requests_per_point * sweep.repeats
    try:
        if sweep.warmup_requests:
            warmup = prompts.requests(sweep.warmup_requests, n_in, spec.output_tokens, f"{point_no}-warmup")
            list(backend.generate(warmup, concurrency=spec.concurrency))
        batches = []
        for repeat in range(sweep.repeats):
            batch = prompts.requests(
                sweep.requests_per_point, n_in, spec.output_tokens, f"{point_no}-{repeat}"
            )
            offsets = None
            if spec.request_rate is not None:
                rng = random.Random(f"{seed}:{point_no}:{repeat}")
                offsets = arrival_offsets(len(batch), spec.request_rate, sweep.arrival, rng)
            batches.append((batch, offsets))
        completions: list[Completion] = []
        wall_ns = 0
        measuring = sampler.window() if sampler is not None else nullcontext(TelemetryWindow())
        with measuring as window:
            for batch, offsets in batches:
                t0 = time.perf_counter_ns()
                completions += backend.generate(
                    batch, concurrency=spec.concurrency, arrival_offsets_s=offsets
                )
                wall_ns += time.perf_counter_ns() - t0
    except Exception as exc:  # an OOM or a backend error fails this point only
        free_device_memory()  # give cached device memory back, so the next point starts clean
        return _empty_point(spec, n_in, n_requests, describe_failure(exc))
    point = summarise_point(spec, n_in, n_requests, completions, wall_ns / 1e9, window, sweep)
    if spec.request_rate is None:
        return point.model_copy(update={"note": _short_of_concurrency(sweep, spec)})
    return point.model_copy(
        update={"arrival_process": sweep.arrival.process, "burstiness": sweep.arrival.burstiness}
    )


def _short_of_concurrency(sweep: PerfSweep, spec: PointSpec) -> str | None:
    """Why a closed-loop point never reached its concurrency: fewer requests than slots (`--limit`)."""
    n, c = sweep.requests_per_point, spec.concurrency
    if c is None or n >= c:
        return None
    return f"only {n} requests: at most {n} in flight"


def summarise_point(
    spec: PointSpec,
    n_in: int,
    n_requests: int,
    completions: Sequence[Completion],
    wall_s: float,
    window: TelemetryWindow,
    sweep: PerfSweep,
) -> PerfPoint:
    """The figures of one point from its completions (see the module docstring for the definitions)."""
    ok = [c for c in completions if c.error is None and c.finish_reason != "error"]
    failed = [c for c in completions if c not in ok]
    error = None
    if failed:
        first = failed[0].error or "finish_reason=error"
        error = f"{len(failed)} of {len(completions)} requests failed: {first}"
        if "out of memory" in first.lower():
            error = f"out of memory: {error}"
    if len(completions) < n_requests and error is None:
        error = f"{n_requests - len(completions)} of {n_requests} requests returned no completion"
    total_out = sum(c.output_tokens or 0 for c in ok)
    per_request = [
        c.output_tokens / (c.latency_ms / 1000)
        for c in ok
        if c.output_tokens and c.latency_ms and c.latency_ms > 0
    ]
    tpots = [t for c in ok if (t := c.tpot_ms) is not None]
    return PerfPoint(
        input_tokens=n_in,
        output_tokens=spec.output_tokens,
        concurrency=spec.concurrency,
        request_rate=spec.request_rate,
        n_requests=n_requests,
        ttft_ms=distribution([c.ttft_ms for c in ok if c.ttft_ms is not None]),
        tpot_ms=distribution(tpots),
        itl_ms=clustered_distribution([c.itl_ms for c in ok]),
        e2e_latency_ms=distribution([c.latency_ms for c in ok if c.latency_ms is not None]),
        output_tokens_per_s=_per_s(total_out, wall_s) if ok else None,
        per_request_output_tokens_per_s=distribution(per_request),
        request_throughput_per_s=_per_s(len(ok), wall_s) if ok else None,
        goodput_per_s=_per_s(sum(_meets_slo(c, sweep) for c in ok), wall_s)
        if _has_slo(sweep) and ok
        else None,
        peak_vram_mib=window.peak_vram_mib,
        energy_per_output_token_j=window.energy_j / total_out
        if window.energy_j is not None and total_out
        else None,
        duration_s=wall_s,
        error=error,
    )


def _per_s(count: int, wall_s: float) -> float | None:
    return count / wall_s if wall_s > 0 else None


def _has_slo(sweep: PerfSweep) -> bool:
    return sweep.slo_ttft_ms is not None or sweep.slo_tpot_ms is not None


def _meets_slo(c: Completion, sweep: PerfSweep) -> bool:
    """Within every SLO given; a request with a single output token has no TPOT and passes that one."""
    if sweep.slo_ttft_ms is not None and (c.ttft_ms is None or c.ttft_ms > sweep.slo_ttft_ms):
        return False
    tpot = c.tpot_ms
    return not (sweep.slo_tpot_ms is not None and tpot is not None and tpot > sweep.slo_tpot_ms)


def _with_bandwidth(point: PerfPoint, weights_bytes: int | None, peak_bw: float | None) -> PerfPoint:
    """MBU = weights_bytes x (1000 / mean TPOT ms) / peak bandwidth; None where any part is unknown."""
    if not weights_bytes or not peak_bw or point.tpot_ms is None or point.tpot_ms.mean <= 0:
        return point
    steps_per_s = 1000.0 / point.tpot_ms.mean
    return point.model_copy(update={"bandwidth_utilisation": weights_bytes * steps_per_s / peak_bw})
