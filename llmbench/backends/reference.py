"""The `reference` backend answers every sample with the output its scorer names as correct.

Running a suite with it must score 100%: that proves each scorer can reach full marks on every
sample, and that prompts, references and scorer options fit together. For a request that offers tools,
the reference output is the expected calls as a JSON list of `{"name", "arguments"}`: they come back as
tool calls, apart from the text, as an API server reports them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from llmbench.backends.base import BackendInfo, Completion, GenerationRequest, stable_hash
from llmbench.config.models import ModelConfig
from llmbench.telemetry.timing import TokenClock
from llmbench.types import Loglikelihood, LoglikelihoodRequest, ToolCall

WRONG_LOGPROB = -1000.0  # what a wrong option gets: far below any option's length-normalised score


class ReferenceBackend:
    """No model at all: echoes `request.reference_output`; timings are real but trivially small."""

    name: ClassVar[str] = "reference"
    uses_gpu: ClassVar[bool] = False  # a study places it on no GPU

    def __init__(self, model: ModelConfig, model_path: str) -> None:
        self.config = model
        self.model_path = model_path

    @property
    def tokenizer(self) -> Any:
        return None

    def load(self) -> BackendInfo:
        return BackendInfo(
            backend=self.name, model="reference", load_time_s=0.0, device="none", measures_model=False
        )

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        concurrency: int | None = None,
        arrival_offsets_s: Sequence[float] | None = None,
    ) -> Iterator[Completion]:
        for req in requests:
            clock = TokenClock()
            text = req.reference_output or ""
            calls = reported_calls(text) if req.tools else None
            clock.token()
            clock.finish()
            prompt = req.messages or req.prompt or req.prompt_token_ids
            yield Completion(
                request_id=req.request_id,
                text=text if calls is None else "",
                prompt_tokens=None,
                output_tokens=None,
                finish_reason="stop",
                prompt_hash=stable_hash(prompt),
                batch_size=1,
                tool_calls=calls or [],
            ).timed(clock.record())

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> Iterator[Loglikelihood]:
        """All the probability on the right option, none anywhere else: every question is answered right."""
        for req in requests:
            yield Loglikelihood(
                request_id=req.request_id,
                logprob=0.0 if req.reference else WRONG_LOGPROB,
                greedy=req.reference,
                continuation_tokens=1,
                prompt_tokens=0,
                latency_ms=0.0,
                prompt_hash=stable_hash([req.context, req.continuation]),
                batch_size=1,
            )

    def close(self) -> None:
        pass


def reported_calls(reference: str) -> list[ToolCall] | None:
    """The expected calls of a tool-calling sample's reference output, as a server reports calls; None where
    the reference is not a JSON list of calls (a scorer that expects text: it is answered as text)."""
    try:
        calls = json.loads(reference)
    except ValueError:
        return None
    if not isinstance(calls, list) or not all(isinstance(c, dict) and "name" in c for c in calls):
        return None
    return [
        ToolCall(name=str(c["name"]), arguments=json.dumps(c.get("arguments", {})), id=f"call_{i}")
        for i, c in enumerate(calls)
    ]
