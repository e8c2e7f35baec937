"""Sample-by-sample comparison of runs: backend parity and determinism (flip rates).

Two runs of the same suite are matched on (task, sample id, sample index). Matching prompt hashes
show the two backends saw the same tokens; matching output hashes show they generated the same
tokens (compared before the text, so a difference in how the text was written is told apart from a
difference in what was generated); verdicts that flip show where they disagree; a paired test says
whether the score difference is more than noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from llmbench.results.schema import RunResult, SampleRecord
from llmbench.scoring.stats import mcnemar

Key = tuple[str, str, int]
# Two backends' log-probabilities of the same continuation (float32 on CPU, tiny-qwen2) agree to this,
# in nats, summed over the continuation's tokens; docs/knowledge.md states it.
LOGPROB_TOLERANCE = 1e-4


def _by_key(run: RunResult) -> dict[Key, SampleRecord]:
    return {(r.task, r.id, r.sample_index): r for r in run.samples}


@dataclass
class Flip:
    task: str
    id: str
    sample_index: int
    a_status: str | None
    b_status: str | None


@dataclass
class TaskParity:
    task: str
    n: int
    a_score: float
    b_score: float
    a_only_correct: int
    b_only_correct: int
    p_value: float


@dataclass
class ParityReport:
    a_label: str
    b_label: str
    n_common: int
    prompt_hash_matches: int
    prompt_hash_compared: int
    output_matches: int
    output_tokens_matches: int = 0
    output_tokens_compared: int = 0  # pairs where both runs recorded their generated token ids
    flips: list[Flip] = field(default_factory=list)
    tasks: list[TaskParity] = field(default_factory=list)
    prompt_mismatches: list[Key] = field(default_factory=list)
    text_only_differences: list[Key] = field(default_factory=list)  # same tokens, different text
    logprobs_compared: int = 0  # multiple-choice samples whose option log-probabilities both runs hold
    max_logprob_diff: float | None = None
    logprob_tolerance: float = LOGPROB_TOLERANCE

    @property
    def logprobs_agree(self) -> bool:
        return self.max_logprob_diff is not None and self.max_logprob_diff <= self.logprob_tolerance

    @property
    def prompts_match(self) -> bool:
        return self.prompt_hash_compared > 0 and self.prompt_hash_matches == self.prompt_hash_compared


def parity(a: RunResult, b: RunResult) -> ParityReport:
    """Compare two runs of the same samples (different backends, batch sizes or repeats)."""
    ra, rb = _by_key(a), _by_key(b)
    common = sorted(set(ra) & set(rb))
    report = ParityReport(
        a_label=_label(a),
        b_label=_label(b),
        n_common=len(common),
        prompt_hash_matches=0,
        prompt_hash_compared=0,
        output_matches=0,
    )
    by_task: dict[str, list[tuple[SampleRecord, SampleRecord]]] = {}
    for key in common:
        x, y = ra[key], rb[key]
        if x.prompt_hash and y.prompt_hash:
            report.prompt_hash_compared += 1
            if x.prompt_hash == y.prompt_hash:
                report.prompt_hash_matches += 1
            else:
                report.prompt_mismatches.append(key)
        report.output_matches += x.output == y.output
        if x.output_hash and y.output_hash:
            report.output_tokens_compared += 1
            if x.output_hash == y.output_hash:
                report.output_tokens_matches += 1
                if x.output != y.output:
                    report.text_only_differences.append(key)
        _compare_logprobs(report, x, y)
        if (x.status == "correct") != (y.status == "correct"):
            report.flips.append(Flip(key[0], key[1], key[2], x.status, y.status))
        by_task.setdefault(key[0], []).append((x, y))
    for task, pairs in by_task.items():
        ca = [x.status == "correct" for x, _ in pairs]
        cb = [y.status == "correct" for _, y in pairs]
        b01, b10, p = mcnemar(ca, cb)
        report.tasks.append(
            TaskParity(
                task=task,
                n=len(pairs),
                a_score=sum(x.score or 0 for x, _ in pairs) / len(pairs),
                b_score=sum(y.score or 0 for _, y in pairs) / len(pairs),
                a_only_correct=int(b10),
                b_only_correct=int(b01),
                p_value=float(p),
            )
        )
    return report


def _compare_logprobs(report: ParityReport, x: SampleRecord, y: SampleRecord) -> None:
    """Multiple-choice samples: the largest gap between the two runs' option log-probabilities."""
    lx, ly = x.details.get("logprobs"), y.details.get("logprobs")
    if not isinstance(lx, list) or not isinstance(ly, list) or len(lx) != len(ly) or not lx:
        return
    report.logprobs_compared += 1
    gap = max(abs(float(a) - float(b)) for a, b in zip(lx, ly, strict=True))
    report.max_logprob_diff = max(gap, report.max_logprob_diff or 0.0)


@dataclass
class FlipRate:
    runs: int
    n: int
    output_flip_rate: float  # share of samples whose output differs in some run (token ids where known)
    verdict_flip_rate: float  # share of samples whose correct/incorrect verdict differs in some run
    flipped: list[Key] = field(default_factory=list)


def flip_rate(runs: Sequence[RunResult]) -> FlipRate:
    """How often greedy decoding gives a different output (or verdict) for the same sample across runs."""
    maps = [_by_key(r) for r in runs]
    common = sorted(set.intersection(*(set(m) for m in maps))) if maps else []
    out_flips = verdict_flips = 0
    flipped: list[Key] = []
    for key in common:
        records = [m[key] for m in maps]
        by_tokens = all(r.output_hash for r in records)  # the same tokens are the same output
        outputs = {r.output_hash if by_tokens else r.output for r in records}
        verdicts = {m[key].status == "correct" for m in maps}
        out_flips += len(outputs) > 1
        if len(verdicts) > 1:
            verdict_flips += 1
            flipped.append(key)
    n = len(common)
    return FlipRate(
        runs=len(runs),
        n=n,
        output_flip_rate=out_flips / n if n else 0.0,
        verdict_flip_rate=verdict_flips / n if n else 0.0,
        flipped=flipped,
    )


def _label(run: RunResult) -> str:
    backend = run.backend.backend
    batch = run.backend.max_batch_size
    return f"{run.model_name}/{backend}" + (f"/bs{batch}" if batch else "")
