"""Exact log-probabilities of continuations from one forward pass per batch (Transformers backend).

Requests whose model inputs are identical share one row: the options of a lettered question
(" A", " B", ...) are single tokens after the same context, so one row scores them all. Rows are
left-padded with explicit position ids, and only the last positions' logits are computed, in
float32 whatever the model's dtype.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from llmbench.backends.common import first_line, free_device_memory, is_out_of_memory
from llmbench.backends.loglik import Span, scored, spans
from llmbench.telemetry.timing import ms_since, now_ns
from llmbench.types import Loglikelihood, LoglikelihoodRequest

Row = tuple[tuple[int, ...], list[tuple[LoglikelihoodRequest, Span]]]


def score(
    model: Any, tokenizer: Any, requests: Sequence[LoglikelihoodRequest], batch_size: int, device: Any
) -> Iterator[Loglikelihood]:
    rows: dict[tuple[int, ...], list[tuple[LoglikelihoodRequest, Span]]] = {}
    for req, span in zip(requests, spans(tokenizer, requests), strict=True):
        if isinstance(span, str):
            yield Loglikelihood(req.request_id, float("nan"), error=span)
        else:
            rows.setdefault(span.inputs, []).append((req, span))
    ordered = sorted(rows.items(), key=lambda kv: -len(kv[0]))  # similar lengths together: less padding
    for i in range(0, len(ordered), batch_size):
        yield from _batch(model, ordered[i : i + batch_size], device, pad_id=_pad_id(tokenizer))


def _batch(model: Any, rows: list[Row], device: Any, pad_id: int) -> Iterator[Loglikelihood]:
    import torch

    start = now_ns()
    try:
        width = max(len(inputs) for inputs, _ in rows)
        keep = max(len(span.ids) - span.start for _, items in rows for _, span in items)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (inputs, _) in enumerate(rows):
            ids[r, width - len(inputs) :] = torch.tensor(inputs, dtype=torch.long)
            mask[r, width - len(inputs) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            out = model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                logits_to_keep=keep,
            )
            logprobs = torch.log_softmax(out.logits[:, -keep:, :].float(), dim=-1).cpu()
    except Exception as exc:
        if is_out_of_memory(exc):
            free_device_memory()
        if len(rows) > 1:  # a batch too big for memory (or one bad row) must not fail the others
            for row in rows:
                yield from _batch(model, [row], device, pad_id)
            return
        for req, _ in rows[0][1]:
            yield Loglikelihood(
                req.request_id, float("nan"), error=f"{type(exc).__name__}: {first_line(exc)}"
            )
        return
    n_requests = sum(len(items) for _, items in rows)
    share_ms = ms_since(start) / n_requests
    for r, (_, items) in enumerate(rows):
        for req, span in items:
            yield _result(req, span, logprobs[r], keep, share_ms, len(rows))


def _result(
    req: LoglikelihoodRequest, span: Span, logprobs: Any, keep: int, share_ms: float, batch: int
) -> Loglikelihood:
    # The logits for token t sit at input position t - 1; the kept window ends at the last input.
    targets = span.continuation_ids
    first = keep - len(targets)
    rows = logprobs[first:keep]
    token_lps = [float(rows[j, t]) for j, t in enumerate(targets)]
    greedy = all(int(rows[j].argmax()) == t for j, t in enumerate(targets))
    return scored(req.request_id, span, token_lps, greedy, share_ms, batch)


def _pad_id(tokenizer: Any) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(tokenizer, "eos_token_id", None)
    return int(pad) if pad is not None else 0
