"""The figures of a perf run (and of decode_step.py) as Markdown tables for docs/benchmarks.md.

Run: python benchmarks/gpu_figures.py CONTEXT.json CONCURRENCY.json [--decode decode_step.json] > figures.md
(the results of the context sweep and of the concurrency sweep, each its own run)
     python benchmarks/gpu_figures.py --small

`--small` (CI): runs both sweeps first, cut to two points of a few requests, on tiny-qwen2 through the
Transformers backend on this host (a CPU here), into a temporary folder, then renders their tables.

NVML figures are device-wide ("used", other processes included) or this run's processes; torch's are
what its allocator handed out (allocated) or holds (reserved): the tables show them side by side.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from llmbench.results.io import read_results
from llmbench.results.schema import PerfPoint, RunResult


def _n(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def _decode_tok_s(pt: PerfPoint) -> float | None:
    return 1000 / pt.tpot_ms.p50 if pt.tpot_ms and pt.tpot_ms.p50 > 0 else None


def _header(run: RunResult) -> str:
    b = run.backend
    return f"Run `{run.run_id}`: {run.model_name} on {b.backend}, {b.device}, {b.dtype}, attention {b.attention_backend}"


def context_table(run: RunResult) -> list[str]:
    lines = [
        "| prompt tokens | TTFT p50 ms | TPOT p50 ms | decode tok/s | peak VRAM MiB (NVML) | J/token | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in run.performance.sweep:
        lines.append(
            f"| {p.input_tokens} | {_n(p.ttft_ms.p50 if p.ttft_ms else None)} | "
            f"{_n(p.tpot_ms.p50 if p.tpot_ms else None, '.2f')} | {_n(_decode_tok_s(p))} | "
            f"{_n(p.peak_vram_mib, '.0f')} | {_n(p.energy_per_output_token_j, '.3f')} | {p.error or ''} |"
        )
    return lines


def concurrency_table(run: RunResult) -> list[str]:
    lines = [
        "| concurrency | out tok/s | req/s | TTFT p50 ms | TTFT p99 ms | TPOT p50 ms | goodput/s "
        "| peak VRAM MiB (NVML) | J/token | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in run.performance.sweep:
        lines.append(
            f"| {p.concurrency} | {_n(p.output_tokens_per_s)} | {_n(p.request_throughput_per_s, '.2f')} | "
            f"{_n(p.ttft_ms.p50 if p.ttft_ms else None)} | {_n(p.ttft_ms.p99 if p.ttft_ms else None)} | "
            f"{_n(p.tpot_ms.p50 if p.tpot_ms else None, '.2f')} | {_n(p.goodput_per_s, '.2f')} | "
            f"{_n(p.peak_vram_mib, '.0f')} | {_n(p.energy_per_output_token_j, '.3f')} | {p.error or ''} |"
        )
    return lines


def memory_rows(run: RunResult) -> list[str]:
    perf, tel = run.performance, run.performance.telemetry
    rows = [
        ("NVML peak used, device-wide (MiB)", _n(perf.peak_vram_mib, ".0f")),
        ("NVML peak, this run's processes (MiB)", _n(tel.peak_process_vram_mib if tel else None, ".0f")),
        ("torch peak allocated (MiB)", _n(tel.torch_peak_allocated_mib if tel else None, ".0f")),
        ("torch peak reserved (MiB)", _n(tel.torch_peak_reserved_mib if tel else None, ".0f")),
        ("NVML energy while generating (J)", _n(perf.energy_j, ".0f")),
        ("energy per output token (J)", _n(perf.energy_per_output_token_j, ".3f")),
        ("weights (bytes)", str(perf.weights_bytes or "-")),
        ("load time (s)", _n(perf.load_time_s)),
        ("load state", _load_state(run)),
        ("why no GPU figures", (tel.unavailable if tel else None) or "-"),
    ]
    return [f"| {k} | {v} |" for k, v in rows]


def _load_state(run: RunResult) -> str:
    state = run.backend.load_state
    shown = state.model_dump(exclude_none=True) if state is not None else {}
    return "; ".join(f"{k} {v}" for k, v in shown.items()) or "-"


def decode_table(path: Path) -> list[str]:
    fig = json.loads(path.read_text(encoding="utf-8"))
    lines = [
        f"Decode step at batch 1: {fig['model']} on {fig.get('gpu') or fig['device']}, "
        f"{fig['prompt_tokens']} prompt tokens, {fig['decode_tokens']} decoded, torch {fig['torch']}",
        "",
        "| path | ms per step | note |",
        "|---|---|---|",
    ]
    for name, ms in fig["per_step_ms"].items():
        lines.append(
            f"| {name} | {_n(ms, '.2f') if ms is not None else 'failed'} | {fig['notes'].get(name, '')} |"
        )
    if fig.get("bandwidth_floor_ms") is not None:
        lines.append(f"| weights / peak bandwidth (the floor) | {fig['bandwidth_floor_ms']:.2f} | |")
    return lines


SMALL_SUITE = """name: gpu_figures_small
tasks:
  - name: context_sweep
    perf: {input_tokens: [32], output_tokens: [4], concurrency: [1], requests_per_point: 2, warmup_requests: 1}
  - name: concurrency_sweep
    perf: {input_tokens: [32], output_tokens: [4], concurrency: [2], requests_per_point: 4, warmup_requests: 1,
           slo_ttft_ms: 2000, slo_tpot_ms: 100}
"""


def small_runs() -> tuple[Path, Path]:
    """Both sweeps of a cut-down suite on tiny-qwen2 (Transformers), each its own run, in a temporary folder."""
    from llmbench import api
    from llmbench.run.options import RunOptions

    folder = Path(tempfile.mkdtemp(prefix="gpu-figures-"))
    suite = folder / "suite.yaml"
    suite.write_text(SMALL_SUITE, encoding="utf-8")
    paths = []
    for task in ("context_sweep", "concurrency_sweep"):
        out = folder / f"{task}.json"
        api.run(suite, "tiny-qwen2", RunOptions(tasks=[task], output=out))
        paths.append(out)
    return paths[0], paths[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("context", type=Path, nargs="?", help="results of the context sweep")
    parser.add_argument("concurrency", type=Path, nargs="?", help="results of the concurrency sweep")
    parser.add_argument("--decode", type=Path, default=None, help="decode_step.py's JSON")
    parser.add_argument(
        "--small", action="store_true", help="measure two tiny sweeps first, then render (CI)"
    )
    args = parser.parse_args()
    if args.small:
        args.context, args.concurrency = small_runs()
    if args.context is None or args.concurrency is None:
        parser.error("give CONTEXT.json and CONCURRENCY.json, or --small")
    ctx, conc = read_results(args.context), read_results(args.concurrency)
    lines = ["### Context sweep, batch 1", "", _header(ctx), "", *context_table(ctx), ""]
    lines += ["### Concurrency sweep", "", _header(conc), "", *concurrency_table(conc), ""]
    lines += ["### Memory and energy (context sweep | concurrency sweep)", "", "| | context | concurrency |"]
    lines += ["|---|---|---|"]
    for a, b in zip(memory_rows(ctx), memory_rows(conc), strict=True):
        lines.append(a + b.split("|", 2)[2])
    if args.decode is not None and args.decode.exists():
        lines += ["", "### Decode step at batch 1", "", *decode_table(args.decode)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
