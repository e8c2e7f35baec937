"""How much of a measured TTFT and TPOT is the client's: llmbench and `vllm bench serve` against one server of
known timings (llmbench.testing.known_timing_server: first token 20 ms after the request is read, then a token
every 4 ms), 32 tokens in, 16 out, constant arrivals at each rate, in interleaved rounds.

Run: .venv/bin/python benchmarks/client_accuracy.py [--rates 20,80,160,320,640] [--requests 400] [--rounds 3]
     [--small] [--out DIR]

The server runs in its own process, so it competes with the clients only for the CPU; its own lateness
(first write minus read, less the promised 20 ms) is printed beside each run, to show it kept up. Each round
runs every rate, both tools per rate, in alternating order so that drift in the host's load hits both alike.
The table gives each figure's median over the rounds (the range where rounds differ by more than 5%), the
requests completed per second of each run (completed / duration, vLLM's request_throughput), and llmbench's
schedule lag p99 and client-bound mark. llmbench's TTFT starts at each request's scheduled send, vLLM's at
its actual send: where a client lags, llmbench's TTFT shows it and vLLM's does not.
`--small` (80 req/s, 40 requests, one round: about 30 s, most of it vLLM's imports) is what CI runs; its
figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from side_by_side import run_llmbench as llmbench_run
from side_by_side import vllm_bench_command, vllm_bench_env, write_served_model

from llmbench.testing.tinymodel import ensure_tiny_model

FIRST_TOKEN_MS, TOKEN_GAP_MS, INPUT, OUTPUT = 20.0, 4.0, 32, 16


def start_server(out: Path) -> tuple[subprocess.Popen[bytes], str]:
    cmd = [
        sys.executable,
        "-m",
        "llmbench.testing.known_timing_server",
        "--first-token-ms",
        str(FIRST_TOKEN_MS),
    ]
    cmd += ["--token-gap-ms", str(TOKEN_GAP_MS)]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=(out / "server.log").open("wb"))
    assert server.stdout is not None
    url = server.stdout.readline().decode().strip()
    if not url.startswith("http"):
        server.kill()
        raise SystemExit(f"the known-timing server did not start: see {out / 'server.log'}")
    return server, url


def server_stats(url: str, since: int = 0) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/stats?since={since}", timeout=30) as response:
        stats: dict[str, Any] = json.loads(response.read())
        return stats


def run_vllm_bench(url: str, tokenizer: str, rate: float, n: int, out: Path, tag: str) -> dict[str, float]:
    name = f"vllm-{tag}.json"
    cmd = vllm_bench_command(
        "--backend", "vllm", "--base-url", url.removesuffix("/v1"),
        "--model", "known-timing", "--tokenizer", tokenizer, "--dataset-name", "random",
        "--random-input-len", str(INPUT), "--random-output-len", str(OUTPUT), "--random-range-ratio", "0",
        "--num-prompts", str(n), "--request-rate", str(rate), "--burstiness", "inf", "--ignore-eos",
        "--num-warmups", "8", "--seed", "0", "--percentile-metrics", "ttft,tpot,itl,e2el",
        "--metric-percentiles", "50,99", "--save-result", "--result-dir", str(out), "--result-filename", name,
        "--disable-tqdm",
    )  # fmt: skip
    with (out / f"vllm-{tag}.log").open("wb") as log:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=log, env=vllm_bench_env())
    rec = json.loads((out / name).read_text(encoding="utf-8"))
    return {
        "ttft_p50": rec["median_ttft_ms"],
        "ttft_p99": rec["p99_ttft_ms"],
        "tpot_p50": rec["median_tpot_ms"],
        "sent_per_s": rec["request_throughput"],
        "completed": rec["completed"],
    }


def run_llmbench(url: str, tokenizer: str, rate: float, n: int, out: Path, tag: str) -> dict[str, float]:
    from llmbench.results.io import read_results

    suite, config, results = (
        out / f"suite-{tag}.yaml",
        out / f"model-{tag}.yaml",
        out / f"llmbench-{tag}.json",
    )
    suite.write_text(
        "name: client_accuracy\ntasks:\n  - name: point\n    perf:\n"
        f"      input_tokens: [{INPUT}]\n      output_tokens: [{OUTPUT}]\n      concurrency: []\n"
        f"      request_rates: [{rate}]\n      requests_per_point: {n}\n      warmup_requests: 8\n"
        "      prompt_kind: random\n      arrival:\n        process: constant\n",
        encoding="utf-8",
    )
    write_served_model(config, "known-timing", "known-timing", url, tokenizer)
    point = read_results(llmbench_run(suite, config, results, "--fresh")).performance.sweep[0]
    if point.ttft_ms is None or point.tpot_ms is None:
        raise SystemExit(f"llmbench measured nothing at {rate} req/s: {point.error}")
    lag = point.schedule_lag_ms
    return {
        "ttft_p50": point.ttft_ms.p50,
        "ttft_p99": point.ttft_ms.p99,
        "tpot_p50": point.tpot_ms.p50,
        "sent_per_s": point.request_throughput_per_s or 0.0,
        "completed": point.ttft_ms.n,
        "lag_p99": lag.p99 if lag is not None else float("nan"),
        "client_bound": float(bool(point.client_bound)),
    }


TOOLS = {"vllm bench serve": run_vllm_bench, "llmbench": run_llmbench}


def measure(args: argparse.Namespace, url: str, tokenizer: str) -> list[dict[str, Any]]:
    """Every (round, rate, tool) run, in interleaved order; each with the load and the server's lateness."""
    rows = []
    for r in range(1, args.rounds + 1):
        for k, rate in enumerate(args.rates):
            order = list(TOOLS) if (r + k) % 2 else list(TOOLS)[::-1]
            for tool in order:
                load, since = os.getloadavg()[0], server_stats(url)["requests"]
                rec = TOOLS[tool](url, tokenizer, rate, args.requests, args.out, f"{r}-{rate:g}-{tool[:4]}")
                late = server_stats(url, since)["first_write_late_ms"]["p99"]
                rows.append(
                    {"round": r, "rate": rate, "tool": tool, "load": load, "server_late_p99": late} | rec
                )
                print(
                    f"round {r} {rate:5g}/s {tool:17s} load {load:4.2f}  TTFT p50/p99 {rec['ttft_p50']:7.2f}/"
                    f"{rec['ttft_p99']:7.2f}  TPOT p50 {rec['tpot_p50']:6.2f}  sent {rec['sent_per_s']:6.1f}/s  "
                    f"server late p99 {late:5.2f} ms",
                    flush=True,
                )
    return rows


def cell(values: list[float], fmt: str = ".1f") -> str:
    """The median, with the range where the rounds spread by more than 5% of it."""
    mid = statistics.median(values)
    lo, hi = min(values), max(values)
    if len(values) > 1 and mid and (hi - lo) / mid > 0.05:
        return f"{mid:{fmt}} ({lo:{fmt}}-{hi:{fmt}})"
    return f"{mid:{fmt}}"


def table(rows: list[dict[str, Any]], rates: list[float]) -> str:
    lines = [
        "| rate (req/s) | `vllm bench serve` TTFT p50 / p99 ms | llmbench TTFT p50 / p99 ms "
        "| TPOT p50 ms, vllm bench / llmbench | completed req/s, vllm bench / llmbench | llmbench schedule lag p99 ms "
        "| llmbench client-bound | server late p99 ms | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rate in rates:
        v = [x for x in rows if x["rate"] == rate and x["tool"] != "llmbench"]
        m = [x for x in rows if x["rate"] == rate and x["tool"] == "llmbench"]

        def col(side: list[dict[str, Any]], key: str, fmt: str = ".1f") -> str:
            return cell([x[key] for x in side], fmt)

        bound = sum(int(x["client_bound"]) for x in m)
        lines.append(
            f"| {rate:g} | {col(v, 'ttft_p50')} / {col(v, 'ttft_p99')} | {col(m, 'ttft_p50')} / {col(m, 'ttft_p99')} "
            f"| {col(v, 'tpot_p50', '.2f')} / {col(m, 'tpot_p50', '.2f')} | {col(v, 'sent_per_s', '.0f')} / "
            f"{col(m, 'sent_per_s', '.0f')} | {col(m, 'lag_p99', '.2f')} | {'yes' if bound else 'no'}"
            f"{f' ({bound} of {len(m)})' if 0 < bound < len(m) else ''} "
            f"| {cell([x['server_late_p99'] for x in v + m], '.2f')} | {cell([x['load'] for x in v + m], '.2f')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="20,80,160,320,640", help="requests per second, comma-separated")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="80 req/s, 40 requests, one round (CI)")
    parser.add_argument("--out", type=Path, default=Path("results/client-accuracy"))
    args = parser.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",")]
    if args.small:
        args.rates, args.requests, args.rounds = [80.0], 40, 1
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer = str(ensure_tiny_model())
    server, url = start_server(args.out)
    try:
        rows = measure(args, url, tokenizer)
    finally:
        server.terminate()
        server.wait(timeout=30)
    (args.out / "rows.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print(table(rows, args.rates))


if __name__ == "__main__":
    main()
