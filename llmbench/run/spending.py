"""What a run's requests cost at the model's per-token prices (`prices:` in its config), and `--max-cost`.

Each sample is priced from the token counts the server reported (checked against the stream, see
`server_claims`): its prompt tokens, of which those the server served from its cache at the cached price
where the provider bills them apart, and its output tokens. A task's cost and the run's are their samples'
sum; samples with unknown counts (a failed request) are counted apart, never guessed.

`--max-cost USD` bounds what one invocation of a run may spend. Before a request is sent its worst case is
reserved: its prompt (token ids counted, text bounded by the local tokenizer's count or, without one, by its
UTF-8 bytes, with a margin for the chat template) and all of its max_tokens. Requests go out in batches
whose worst cases fit in what is left; when a batch has finished, what it really cost (its usage; the
worst case where the server reported none) replaces the reservation. When not even the next request fits,
the run stops as at Ctrl-C: what finished is journaled and a resume runs the rest.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmbench.config.models import ModelConfig, Prices
from llmbench.config.suite import TaskSpec
from llmbench.errors import UserInputError
from llmbench.results.schema import ApiCost, RunResult, SampleRecord
from llmbench.types import Completion, GenerationRequest

TEMPLATE_TOKENS = 64  # a chat template's own tokens (and a server's default system prompt), per request
MESSAGE_TOKENS = 8  # a chat message's role and separators


def sample_cost(record: SampleRecord, prices: Prices) -> float | None:
    """The sample's tokens at `prices`; None where the server's counts are unknown."""
    if record.tokens_in is None or record.tokens_out is None:
        return None
    return prices.usd(record.tokens_in, record.tokens_out, record.cached_tokens_in or 0)


def price_result(result: RunResult, prices: Prices | None) -> None:
    """Each sample's, task's and the run's cost at `prices`, written into `result`; nothing without prices."""
    if prices is None:
        return
    per_task: dict[str, float] = {}
    priced: list[SampleRecord] = []
    for r in result.samples:
        r.cost_usd = sample_cost(r, prices)
        if r.cost_usd is not None:
            priced.append(r)
            per_task[r.task] = per_task.get(r.task, 0.0) + r.cost_usd
    for task in result.tasks:
        task.cost_usd = per_task.get(task.name)
    result.summary.cost = ApiCost(
        usd=sum(per_task.values()),
        input_tokens=sum(r.tokens_in or 0 for r in priced),
        cached_input_tokens=sum(r.cached_tokens_in or 0 for r in priced),
        output_tokens=sum(r.tokens_out or 0 for r in priced),
        priced_samples=len(priced),
        unpriced_samples=len(result.samples) - len(priced),
        input_per_mtok_usd=prices.input_per_mtok_usd,
        output_per_mtok_usd=prices.output_per_mtok_usd,
        cached_input_per_mtok_usd=prices.cached_input_per_mtok_usd,
        prices_as_of=prices.as_of.isoformat(),
        prices_source=prices.source,
    )


def budget_for(model: ModelConfig, specs: Sequence[TaskSpec], max_cost_usd: float | None) -> Budget | None:
    """The run's budget under `--max-cost`, refused (exit 2) where it cannot be kept: a model without prices,
    or a performance sweep, whose requests are not sent one answer at a time through the budget."""
    if max_cost_usd is None:
        return None
    if model.prices is None:
        raise UserInputError(
            f"--max-cost: model '{model.name}' has no prices, so what it spends cannot be counted",
            hint="add `prices: {input_per_mtok_usd, output_per_mtok_usd, as_of}` to its model config",
        )
    sweeps = [s.name for s in specs if s.perf is not None]
    if sweeps:
        raise UserInputError(
            f"--max-cost bounds answers to quality tasks; task '{sweeps[0]}' is a performance sweep",
            hint="leave it out with --tasks, or run it without --max-cost",
        )
    return Budget(max_cost_usd, model.prices)


def batches(
    budget: Budget | None, requests: Sequence[GenerationRequest], tokenizer: Any, task: str
) -> Iterator[list[GenerationRequest]]:
    """`requests` as the budget lets them go (see `Budget.batches`); all at once without one."""
    if budget is not None:
        yield from budget.batches(requests, tokenizer, task)
    elif requests:
        yield list(requests)


def refuse_unbounded(budget: Budget | None, task: str) -> None:
    """Under `--max-cost`, refuse a task that scores options by log-likelihood: those requests are not answers
    the budget sees one by one."""
    if budget is not None:
        raise UserInputError(
            f"--max-cost bounds generated answers; task '{task}' scores its options by log-likelihood here",
            hint="set `choices: {generative: always}` on the task, or run it without --max-cost",
        )


@dataclass
class Budget:
    """`--max-cost`: what this invocation of a run may spend, what it has spent, and where it stopped."""

    limit_usd: float
    prices: Prices
    spent_usd: float = 0.0
    estimated: int = 0  # requests whose usage is unknown, counted at their worst case
    held_back: int = 0  # requests of the task it stopped in that were not sent
    next_worst_usd: float | None = None  # the worst case of the first request not sent
    task: str | None = None  # the task it stopped in
    reserved: dict[str, float] = field(default_factory=dict)  # in flight: request id -> worst case

    @property
    def reached(self) -> bool:
        return self.next_worst_usd is not None

    def batches(
        self, requests: Sequence[GenerationRequest], tokenizer: Any, task: str
    ) -> Iterator[list[GenerationRequest]]:
        """`requests` in batches whose worst cases fit in what is left, each settled (`charge`) before the
        next is formed; raises KeyboardInterrupt, the run's stop, when not even the next request fits."""
        worst = [self.worst_usd(r, tokenizer) for r in requests]
        start = 0
        while start < len(requests):
            end, held = start, 0.0
            while end < len(requests) and held + worst[end] <= self._room():
                self.reserved[requests[end].request_id] = worst[end]
                held += worst[end]
                end += 1
            if end == start:
                self.held_back, self.next_worst_usd, self.task = len(requests) - start, worst[start], task
                raise KeyboardInterrupt  # the run stops as at Ctrl-C: what finished is journaled
            yield list(requests[start:end])
            for rid in list(self.reserved):  # a request the backend never answered: its worst case
                self._spend(self.reserved.pop(rid), estimated=True)
            start = end

    def charge(self, completion: Completion) -> None:
        """What one answered request cost, in place of its reservation (its worst case without usage)."""
        worst = self.reserved.pop(completion.request_id, None)
        if worst is None:  # not a request this budget let through
            return
        known = completion.prompt_tokens is not None and completion.output_tokens is not None
        if not known:
            self._spend(worst, estimated=True)
            return
        cost = self.prices.usd(
            completion.prompt_tokens or 0, completion.output_tokens or 0, completion.cached_prompt_tokens or 0
        )
        self._spend(cost, estimated=False)

    def reserve(self, request: GenerationRequest, tokenizer: Any) -> bool:
        """Count an untimed request (the warm-up) at its worst case if it fits; False: it must not be sent."""
        worst = self.worst_usd(request, tokenizer)
        if self._room() < worst:
            return False
        self._spend(worst, estimated=True)
        return True

    def worst_usd(self, request: GenerationRequest, tokenizer: Any) -> float:
        """The most `request` can cost: its prompt's bound at the higher input price, all its max_tokens."""
        prompt_price = max(self.prices.input_per_mtok_usd, self.prices.cached_input_per_mtok_usd or 0.0)
        output = request.params.max_new_tokens * self.prices.output_per_mtok_usd
        return (prompt_bound(request, tokenizer) * prompt_price + output) / 1e6

    def why(self) -> str:
        """Where the run stopped and what it spent, in one line."""
        estimate = (
            f" ({self.estimated} requests at their worst case, their usage unknown: the warm-up, failures)"
            if self.estimated
            else ""
        )
        return (
            f"the run's budget of ${self.limit_usd:g} (--max-cost) would be passed by the next request "
            f"(up to ${self.next_worst_usd or 0.0:.4g}): ${self.spent_usd:.4g} spent{estimate}; "
            f"{self.held_back} requests of task '{self.task}' and any later tasks not sent"
        )

    def _room(self) -> float:
        return self.limit_usd - self.spent_usd

    def _spend(self, usd: float, *, estimated: bool) -> None:
        self.spent_usd += usd
        self.estimated += estimated


def prompt_bound(request: GenerationRequest, tokenizer: Any) -> int:
    """At least as many tokens as the server will count for `request`'s prompt: token ids counted; text
    counted by the local tokenizer or, without one, as its UTF-8 bytes (no token is shorter than a byte);
    plus a margin for the chat template."""
    if request.prompt_token_ids is not None:
        return len(request.prompt_token_ids)
    texts = (
        [request.prompt]
        if request.prompt is not None
        else [m.get("content") or "" for m in request.messages or ()]
    )
    if tokenizer is not None:
        counted = (
            sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]) if texts else 0
        )
    else:
        counted = sum(len(t.encode()) for t in texts)
    return counted + TEMPLATE_TOKENS + MESSAGE_TOKENS * len(request.messages or ())
