"""The table printed at the end of `llmbench run`."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from llmbench.analysis.significance import percentile_requests, percentile_shortfall
from llmbench.report.saturation_table import print_saturation
from llmbench.report.serving_notes import workload_note
from llmbench.results.schema import MetricValue, PerfPoint, RunResult


def _cells(m: MetricValue | None) -> tuple[str, str]:
    if m is None:
        return "-", ""
    ci = f"[{m.ci_low:.3f}, {m.ci_high:.3f}]" if m.ci_low is not None and m.ci_high is not None else ""
    return f"{m.value:.3f}", ci


def _failures(counts: dict[str, int]) -> str:
    """Every outcome that is not `correct`, e.g. "wrong 3, truncated 1"; "-" when all were correct."""
    parts = [f"{k} {v}" for k, v in counts.items() if k != "correct" and v]
    return ", ".join(parts) or "-"


def print_run_summary(result: RunResult, console: Console) -> None:
    table = Table(title=f"{result.suite_name} on {result.model_name} ({result.backend.backend})")
    for col in ("task", "metric", "value", "95% CI", "n", "failures"):
        table.add_column(col, justify="left" if col in ("task", "metric", "failures", "95% CI") else "right")
    for t in result.tasks:
        m = t.metrics.get(t.primary_metric)
        table.add_row(t.name, t.primary_metric, *_cells(m), str(t.n_samples), _failures(t.counts))
    if result.suite_score is not None:
        table.add_row("[bold]suite", "weighted score", *_cells(result.suite_score), "", "")
    if result.tasks:
        console.print(table)
    if result.performance.sweep:
        print_sweep(result.performance.sweep, console)
    if result.performance.saturation:
        print_saturation(result.performance.saturation, console)
    p = result.performance
    source = timing_source(result)
    if source is None:
        console.print("timings: none (this backend generates nothing to time)", highlight=False)
        _print_errors(result, console)
        return
    bits = [f"timed on {source}"] if p.ttft_ms or p.tpot_ms or p.output_tokens_per_s else []
    if p.ttft_ms:
        bits.append(f"TTFT p50 {p.ttft_ms.p50:.1f} ms (p90 {p.ttft_ms.p90:.1f})")
    if p.tpot_ms:
        bits.append(f"TPOT p50 {p.tpot_ms.p50:.2f} ms")
    if p.output_tokens_per_s:
        bits.append(f"{p.output_tokens_per_s:.1f} output tok/s")
    if p.load_time_s is not None:
        bits.append(f"load {p.load_time_s:.1f} s")
    if p.peak_vram_mib is not None:
        own = p.telemetry.peak_process_vram_mib if p.telemetry else None
        bits.append(
            f"peak VRAM {p.peak_vram_mib:.0f} MiB" + (f" (this run {own:.0f})" if own is not None else "")
        )
    elif p.peak_vram_reason:
        bits.append(f"peak VRAM n/a ({p.peak_vram_reason})")
    if p.energy_per_output_token_j is not None:
        bits.append(f"{p.energy_per_output_token_j:.3f} J/token")
    if bits:
        console.print(" | ".join(bits), highlight=False)
    if p.peak_vram_note:
        console.print(f"[dim]peak VRAM: {p.peak_vram_note}[/]", highlight=False)
    if (cached := result.summary.cached_generations) is not None:
        untimed = " (no timings for those)" if cached else ""
        console.print(
            f"{cached} of {result.summary.samples} generations from the cache{untimed}", highlight=False
        )
    _print_errors(result, console)


def timing_source(result: RunResult) -> str | None:
    """Where the timings come from, e.g. `cpu, batches of up to 16`; None when nothing was generated."""
    device = result.backend.device or ""
    if device == "none":
        return None
    sizes = [s.batch_size for s in result.samples if s.batch_size]
    where = device or f"a server at {result.backend.server_url or '?'}"
    if sizes:
        return f"{where}, batches of up to {max(sizes)}"
    cap = result.backend.max_batch_size
    return f"{where}, up to {cap} at once" if cap else where


def _print_errors(result: RunResult, console: Console) -> None:
    for warning in result.summary.warnings:
        console.print(f"[yellow]warning: {warning}[/]", highlight=False)
    print_run_errors(result, console)


def print_run_errors(result: RunResult, console: Console) -> None:
    """The one line a run's failed samples get, also under `--quiet`."""
    if result.summary.errors:
        console.print(
            f"[yellow]{result.summary.errors} sample(s) failed; see 'error' (generation) or "
            "'details.error' (scoring) in the results file[/]"
        )


def _p99(pt: PerfPoint) -> str:
    """TTFT p99, or "—" where the point has too few requests for one (`percentile_shortfall`)."""
    if pt.ttft_ms is None:
        return "-"
    return "—" if percentile_shortfall("p99", pt.ttft_ms.n) else format(pt.ttft_ms.p99, ".1f")


def print_sweep(points: list[PerfPoint], console: Console) -> None:
    table = Table(title="performance sweep")
    cols = (
        "in",
        "out",
        "conc",
        "rate/s",
        "TTFT p50 ms",
        "TTFT p99 ms",
        "TPOT p50 ms",
        "out tok/s",
        "req/s",
        "goodput/s",
        "peak VRAM MiB",
        "J/token",
        "note",
    )
    for col in cols:
        table.add_column(col, justify="left" if col == "note" else "right")

    def num(v: float | None, fmt: str = ".1f") -> str:
        return "-" if v is None else format(v, fmt)

    for pt in points:
        table.add_row(
            str(pt.input_tokens),
            str(pt.output_tokens),
            str(pt.concurrency or "-"),
            num(pt.request_rate, ".2f"),
            num(pt.ttft_ms.p50 if pt.ttft_ms else None),
            _p99(pt),
            num(pt.tpot_ms.p50 if pt.tpot_ms else None, ".2f"),
            num(pt.output_tokens_per_s),
            num(pt.request_throughput_per_s, ".2f"),
            num(pt.goodput_per_s, ".2f"),
            num(pt.peak_vram_mib, ".0f"),
            num(pt.energy_per_output_token_j, ".3f"),
            "; ".join(filter(None, (workload_note(pt), pt.error))),
        )
    console.print(table)
    if any(pt.ttft_ms and percentile_shortfall("p99", pt.ttft_ms.n) for pt in points):
        console.print(f"—: a point of fewer than {percentile_requests(0.99)} requests has no TTFT p99")
