"""Multi-turn chats in lockstep: turn k of every conversation together, each prompt the whole chat so far."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llmbench.backends.base import Backend
from llmbench.config.serving import MultiTurnWorkload
from llmbench.data.workload_prompts import Conversation, PromptBuilder, part_index, perf_request
from llmbench.results.schema import TurnFigures
from llmbench.run.point_measure import Sent
from llmbench.scoring.stats import distribution
from llmbench.types import Completion


@dataclass
class Chats(Sent):
    """A chat point's completions, its figures per turn index, and the time its turns took, summed (the
    gaps between turns left out)."""

    turns: list[TurnFigures] = field(default_factory=list)


Questions = list[list[list[str]]]  # [repeat][turn][chat]: each user message


def chat_questions(
    builder: PromptBuilder, tag: tuple[object, ...], repeats: int, w: MultiTurnWorkload, n_in: int
) -> Questions:
    """Every user message of a point, built up front (`tag` names the point: its messages are its own)."""
    return [
        [
            [builder.user_message(n_in, part_index(*tag, repeat, c, turn)) for c in range(w.conversations)]
            for turn in range(w.turns)
        ]
        for repeat in range(repeats)
    ]


def run_conversations(
    backend: Backend,
    asked: Questions,
    salt: Callable[..., str | None],
    point_no: int,
    w: MultiTurnWorkload,
    n_out: int,
    concurrency: int | None,
) -> Chats:
    """Every repeat's conversations, turn by turn; a failed answer leaves an empty reply in its chat's history.

    `asked` holds each repeat's user messages (`chat_questions`); `salt(repeat, chat, turn)` gives a
    request its cache salt where the point runs with prefix caching off.
    """
    chats = Chats()
    by_turn: list[list[Completion]] = [[] for _ in range(w.turns)]
    for repeat, turns in enumerate(asked):
        conversations = [Conversation() for _ in range(w.conversations)]
        for turn, questions in enumerate(turns):
            requests = [
                perf_request(
                    f"perf-{point_no}-{repeat}-c{c}-t{turn + 1}", conv.ask(q), n_out, salt(repeat, c, turn)
                )
                for c, (conv, q) in enumerate(zip(conversations, questions, strict=True))
            ]
            t0 = time.perf_counter_ns()
            answers = {a.request_id: a for a in backend.generate(requests, concurrency=concurrency)}
            chats.wall_s += (time.perf_counter_ns() - t0) / 1e9
            for conv, question, request in zip(conversations, questions, requests, strict=True):
                answer = answers.get(request.request_id)
                conv.answered(question, answer.text if answer is not None and answer.error is None else "")
            chats.completions += answers.values()
            by_turn[turn] += answers.values()
    for turn, completions in enumerate(by_turn, start=1):
        ok = [c for c in completions if c.error is None and c.ttft_ms is not None]
        prompts = [c.prompt_tokens for c in ok if c.prompt_tokens]
        chats.turns.append(
            TurnFigures(
                turn=turn,
                ttft_ms=distribution([c.ttft_ms for c in ok if c.ttft_ms is not None]),
                prompt_tokens_mean=statistics.fmean(prompts) if prompts else None,
            )
        )
    return chats
