"""Terminal rendering of parity and determinism reports."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from llmbench.analysis.parity import FlipRate, ParityReport


def print_parity(report: ParityReport, console: Console, *, max_flips: int = 20) -> None:
    ok = "[green]match[/]" if report.prompts_match else "[red]DIFFER[/]"
    console.print(f"parity {report.a_label} vs {report.b_label}: {report.n_common} common samples")
    console.print(f"prompt token ids: {report.prompt_hash_matches}/{report.prompt_hash_compared} {ok}")
    if report.output_tokens_compared:
        console.print(
            f"identical output token ids: {report.output_tokens_matches}/{report.output_tokens_compared}"
        )
    console.print(f"identical outputs: {report.output_matches}/{report.n_common}")
    if report.text_only_differences:
        first = report.text_only_differences[0]
        console.print(
            f"[yellow]same tokens, different text on {len(report.text_only_differences)} sample(s), "
            f"e.g. {first[0]}/{first[1]}: the backends decoded the same ids differently[/]"
        )
    if report.max_logprob_diff is not None:
        verdict = "[green]within[/]" if report.logprobs_agree else "[red]OUTSIDE[/]"
        console.print(
            f"option log-probs: {report.logprobs_compared} samples, max |diff| {report.max_logprob_diff:.2e} "
            f"nats ({verdict} tolerance {report.logprob_tolerance:g})"
        )
    table = Table(title="score per task (paired: McNemar mid-p test)")
    for col in (
        "task",
        "n",
        report.a_label,
        report.b_label,
        "only A correct",
        "only B correct",
        "p",
        "verdict",
    ):
        table.add_column(col, justify="left" if col == "task" else "right")
    for t in report.tasks:
        sig = "[red]significant[/]" if t.p_value < 0.05 else "noise"
        table.add_row(
            t.task,
            str(t.n),
            f"{t.a_score:.3f}",
            f"{t.b_score:.3f}",
            str(t.a_only_correct),
            str(t.b_only_correct),
            f"{t.p_value:.3g}",
            sig,
        )
    console.print(table)
    if report.flips:
        console.print(f"{len(report.flips)} verdict flip(s):")
        for f in report.flips[:max_flips]:
            console.print(
                f"  {f.task}/{f.id}#{f.sample_index}: {f.a_status} -> {f.b_status}", highlight=False
            )
        if len(report.flips) > max_flips:
            console.print(f"  ... and {len(report.flips) - max_flips} more")
    if report.prompt_mismatches:
        first = report.prompt_mismatches[0]
        console.print(
            f"[yellow]prompt tokens differ on {len(report.prompt_mismatches)} sample(s), e.g. {first[0]}/{first[1]}:"
            " the backends did not see the same input (chat template, BOS, truncation)[/]"
        )


def print_flip_rate(rate: FlipRate, label: str, console: Console) -> None:
    console.print(
        f"determinism over {rate.runs} runs ({label}): {rate.n} samples, output flip rate "
        f"{rate.output_flip_rate:.1%}, verdict flip rate {rate.verdict_flip_rate:.1%}",
        highlight=False,
    )
    for key in rate.flipped[:10]:
        console.print(f"  verdict differs: {key[0]}/{key[1]}#{key[2]}", highlight=False)
