"""A hosted API's rate limits: requests and tokens per minute paced, 429s waited out as their Retry-After says
with the requests in flight halved and then won back, and every wait kept out of TTFT and latency."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from pydantic import ValidationError

from llmbench.backends.base import Completion, GenerationParams, GenerationRequest
from llmbench.backends.openai import OpenAIBackend
from llmbench.backends.rate_limits import Bucket, RateControl, tokens_asked
from llmbench.config.models import ApiSpec, ModelConfig, RateLimits
from tests.backends.faulty_server import FaultyServer, sums_suite

REPO = Path(__file__).resolve().parents[2]
CHAT = ({"role": "user", "content": "What is the answer?"},)
GUARD_S = 120  # against a hang only


def generate(
    server: FaultyServer, n: int, rate_limits: RateLimits | None = None, **api: object
) -> tuple[list[Completion], float]:
    """The call's completions and what the whole call took (ms): a bound on any request's waits and timings
    added up, which a wait counted inside a timing as well would pass."""
    spec = ApiSpec(base_url=server.base_url, **api)  # type: ignore[arg-type]
    config = ModelConfig(name="faulty", backend="openai", model="faulty", api=spec, rate_limits=rate_limits)
    backend = OpenAIBackend(config, "faulty")
    backend.load()
    try:
        params = GenerationParams(max_new_tokens=16)
        start = time.perf_counter()
        done = list(backend.generate([GenerationRequest(f"q{i}", params, messages=CHAT) for i in range(n)]))
        return done, (time.perf_counter() - start) * 1000
    finally:
        backend.close()


def test_429s_are_waited_out_as_retry_after_says_outside_ttft_and_use_up_no_retries() -> None:
    with FaultyServer("rate_limited", fail_first=3) as server:  # 429 with Retry-After: 1, three times
        done, took = generate(server, 4, max_retries=0, concurrency=4)
        posts = server.wait_for_posts(7)
    assert [c.error for c in done] == [None] * 4 and all(c.text == "The answer is 42." for c in done)
    assert posts == 7  # the three refused tries went again, though no retry was allowed for failures
    waited = [c for c in done if c.attempts == 2]
    assert len(waited) == 3
    for c in waited:
        assert (
            c.rate_wait_ms is not None and c.rate_wait_ms >= 900
        )  # the Retry-After second (timer ticks aside)
        assert c.ttft_ms is not None and c.latency_ms is not None
        assert c.latency_ms + c.rate_wait_ms <= took  # the wait is not in it


def test_requests_per_minute_are_paced_and_the_pacing_is_outside_ttft() -> None:
    with FaultyServer("ok") as server:
        done, took = generate(server, 3, RateLimits(rpm=60), concurrency=3)  # one a second, none in a burst
    assert [c.error for c in done] == [None] * 3
    waits = sorted(c.rate_wait_ms or 0.0 for c in done)
    assert waits[0] < waits[1] and waits[1] >= 900 and waits[2] >= 1900
    assert all(c.latency_ms is not None and c.latency_ms + (c.rate_wait_ms or 0.0) <= took for c in done)


def test_a_429_halves_the_requests_in_flight_once_per_round_and_answers_win_them_back() -> None:
    async def scenario() -> list[int | None]:
        control, seen = RateControl(), []
        async with AsyncExitStack() as held:
            for _ in range(8):
                await held.enter_async_context(control.slot())
            ticket = await control.go(10)
            control.refused(ticket, 0.0)
            control.refused(ticket, 0.0)  # another answer of the same round: no second cut
            seen.append(control.limit)
        async with AsyncExitStack() as held:
            for _ in range(4):
                await held.enter_async_context(control.slot())
            fifth = asyncio.create_task(held.enter_async_context(control.slot()))
            for _ in range(10):
                await asyncio.sleep(0)
            seen.append(int(fifth.done()))  # no room at the halved limit
            for _ in range(4):
                control.answered()
            seen.append(control.limit)
            await asyncio.wait_for(fifth, GUARD_S)  # the fifth gets in now
            seen.append(control.in_flight)
        for _ in range(5 + 6 + 7 + 8):
            control.answered()
        seen.append(control.limit)
        return seen

    assert asyncio.run(scenario()) == [4, 0, 5, 5, None]  # back past the 8 seen in flight: no limit


def test_a_large_request_waits_for_a_full_bucket_and_leaves_it_in_debt() -> None:
    tpm = Bucket.per_minute(6000, now=0.0)  # 100 tokens a second, a second's worth held
    assert tpm.wait_s(600, 0.0) == 0.0
    tpm.take(600, 0.0)
    assert tpm.wait_s(10, 0.0) == pytest.approx(5.1)  # 500 of debt and 10 more, at 100 a second
    assert tpm.wait_s(10, 5.1) == pytest.approx(0.0)


def test_a_request_counts_its_prompt_and_max_tokens_against_tokens_per_minute() -> None:
    chat = {"messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 16}
    assert tokens_asked(chat) == 10 + 4 + 16
    assert tokens_asked({"prompt": [1, 2, 3], "max_tokens": 5}) == 8
    assert tokens_asked({"prompt": "abcdefgh", "max_tokens": 1}) == 3


def test_rate_limits_in_a_model_config_must_be_positive() -> None:
    with pytest.raises(ValidationError, match=r"rate_limits\.rpm"):
        ModelConfig.model_validate({"name": "m", "model": "m", "rate_limits": {"rpm": 0}})


def test_a_run_against_a_server_that_answers_429_first_finishes_with_every_sample_scored(
    tmp_path: Path,
) -> None:
    suite = sums_suite(tmp_path, ["The answer is 42."] * 4)
    out = tmp_path / "r.json"
    with FaultyServer("rate_limited", fail_first=3) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "llmbench", "run", str(suite), "-m", "faulty", "--base-url", server.base_url,
             "-o", str(out), "-q", "--no-warmup", "--first-token-timeout", "600"],
            cwd=REPO, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    samples = json.loads(out.read_text())["samples"]
    assert len(samples) == 4 and all(s["error"] is None and s["status"] == "correct" for s in samples)
    waited = [s for s in samples if s["rate_wait_ms"]]
    assert (
        len(waited) == 3
        and all(s["attempts"] == 2 for s in waited)
        and all(s["rate_wait_ms"] >= 900 > s["ttft_ms"] for s in waited)
    )
