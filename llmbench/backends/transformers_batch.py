"""One batched `generate` call of the Transformers backend: left padding, `generate`'s arguments, the
streamer that times each decoding step, and where each row's own output ends in the padded result."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from llmbench.backends.base import (
    Completion,
    GenerationParams,
    GenerationRequest,
    engine_stop,
    fewest_holding,
    token_ids_hash,
)
from llmbench.scoring.reasoning import stop_in_answer
from llmbench.telemetry.timing import TokenClock


class StepStreamer:
    """A `generate` streamer that stamps every decoding step on the batch's token clock as it reaches the host.

    transformers calls `put` once with the prompt, then once per step with one token per
    sequence (after a device sync, since the tokens are copied to the CPU): the first step's
    timestamp is the batch's time to first token, measured at the token and not after generate.
    """

    def __init__(self, clock: TokenClock) -> None:
        self.clock = clock
        self._seen_prompt = False

    def put(self, value: Any) -> None:
        if not self._seen_prompt:
            self._seen_prompt = True
            return
        self.clock.token()

    def end(self) -> None:
        pass


def left_padded(batch: list[list[int]], pad: int, device: Any) -> tuple[Any, Any]:
    """Input ids and attention mask, padded on the left: every prompt ends where generation starts."""
    import torch

    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for i, ids in enumerate(batch):
        input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention[i, width - len(ids) :] = 1
    return input_ids.to(device), attention.to(device)


def generate_kwargs(params: GenerationParams, pad_id: int, tokenizer: Any, reasons: bool) -> dict[str, Any]:
    """`generate`'s arguments for one set of generation parameters."""
    kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "pad_token_id": pad_id}
    if params.temperature > 0:
        kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        if params.top_k:
            kwargs["top_k"] = params.top_k
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if params.ignore_eos:
        kwargs["eos_token_id"] = None
        kwargs["min_new_tokens"] = params.max_new_tokens
    if tokenizer is not None and (stop := engine_stop(params, can_watch=True, reasons=reasons)):
        kwargs.update(stop_strings=stop, tokenizer=tokenizer)
    return kwargs


class AnswerStop:
    """A `generate` stopping criterion: a row stops once a stop string has come in its answer, after any
    reasoning (`engine_stop` holds them back from `generate`'s own `stop_strings`, which would fire inside
    reasoning). Each step decodes the rows' outputs so far: its cost grows with the output's length."""

    def __init__(
        self, tokenizer: Any, params: GenerationParams, width: int, opened: list[str | None]
    ) -> None:
        self.tokenizer, self.params, self.width, self.opened = tokenizer, params, width, opened

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        p = self.params
        texts = self.tokenizer.batch_decode(input_ids[:, self.width :], skip_special_tokens=True)
        done = [
            stop_in_answer(text, p.stop, p.reasoning_markers, opened) is not None
            for text, opened in zip(texts, self.opened, strict=True)
        ]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def cut_at_stop_string(
    tokenizer: Any, tokens: list[int], params: GenerationParams, opened: str | None = None
) -> list[int]:
    """The shortest prefix whose text holds a stop string in its answer: where `generate` stopped this sequence.

    What follows it is the padding `generate` writes for finished sequences while others go on.
    """
    if tokenizer is None:
        return tokens

    def holds_stop(n: int) -> bool:
        text = tokenizer.decode(tokens[:n], skip_special_tokens=True)
        return stop_in_answer(text, params.stop, params.reasoning_markers, opened) is not None

    if not holds_stop(len(tokens)):
        return tokens
    return tokens[: fewest_holding(len(tokens), holds_stop)]


def generated_part(tokens: list[int], stop_ids: set[int], ignore_eos: bool) -> tuple[list[int], bool]:
    """The tokens up to and including the first EOS, and whether there was one.

    After its EOS a sequence only holds the padding `generate` appends while others go on. The pad
    id is not a marker by itself: a model may generate that token for real (tiny-qwen2's pad is BOS).
    """
    if ignore_eos:
        return tokens, False
    for i, t in enumerate(tokens):
        if t in stop_ids:
            return tokens[: i + 1], True
    return tokens, False


def failed(request: GenerationRequest, ids: list[int], text: str | None, error: str) -> Completion:
    """The completion of a request that could not be generated: its error, and what is known of its prompt."""
    return Completion(
        request.request_id,
        "",
        prompt_tokens=len(ids) if ids else None,
        output_tokens=0,
        finish_reason="error",
        error=error,
        prompt_hash=token_ids_hash(ids) if ids else None,
        rendered_prompt=text,
        batch_size=1,
    )


def params_key(params: GenerationParams) -> str:
    """Requests that may share a `generate` call: same settings; JSON schemas may differ per row."""
    shared = replace(params, json_schema={} if params.json_schema is not None else None)
    return shared.fingerprint() + str(params.seed)
