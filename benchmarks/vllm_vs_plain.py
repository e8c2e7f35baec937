"""What `llmbench run` costs vLLM in process, against a plain vLLM script doing the same work.

Run:   .venv/bin/python benchmarks/vllm_vs_plain.py [--prompts 4000] [--tokens 64] [--pairs 3]
Small: .venv/bin/python benchmarks/vllm_vs_plain.py --small   (40 prompts, 8 tokens, one pair)

Both sides load tiny-qwen2 with the engine options llmbench builds for it (`vllm_options`), render
the same chat prompts to the same token ids and generate greedily to the same number of tokens
(ignore-EOS), so they do the same engine work. The plain side is what a user would write: one
`LLM.generate` call over every prompt. Each pair runs the two commands one after the other, the
order alternating, each in a fresh process. Reported per pair:

- generation: llmbench's `performance.generation_wall_s` (the quality loop's wall time, journaling and
  scoring in a worker thread included) against the wall time of the plain `LLM.generate` call;
- command: the whole process, from start to exit (imports, load, generation, writing results);
- CPU: the CPU seconds the main process (the harness and vLLM's front end; the engine core and its worker
  are processes of their own) spent over the generation phase, less noisy than wall times on a shared
  host: what either side takes from the engine on a machine with few cores;
- outputs: how many requests produced the same token ids on both sides (token-id hashes).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
QUIET = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}  # as llmbench sets it for its engine

# The plain side: a user's script, run in its own process with its own imports.
PLAIN = r"""
import json, sys, time
from llmbench.backends.common import prompt_ids, load_tokenizer
from llmbench.backends.vllm_options import vllm_options
from llmbench.config.models import resolve_model
from llmbench.hashing import token_ids_hash
from llmbench.testing.tinymodel import resolve_model_path
from llmbench.types import GenerationParams, GenerationRequest
from vllm import LLM, SamplingParams

data, tokens, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cfg = resolve_model("tiny-qwen2")
path = resolve_model_path(cfg)
tok = load_tokenizer(cfg, path)
rows = [json.loads(line) for line in open(data)]
params = GenerationParams(max_new_tokens=tokens)
ids = [prompt_ids(tok, GenerationRequest(r["id"], params, messages=({"role": "user", "content": r["question"]},)))[0]
       for r in rows]
options = vllm_options(cfg, path, on_cpu=True, has_tokenizer=True, architecture_dir=None, in_process=True)
llm = LLM(**options)
sampling = SamplingParams(max_tokens=tokens, temperature=0.0, ignore_eos=True)
t0 = time.perf_counter()
cpu0 = time.process_time()
outs = llm.generate([{"prompt_token_ids": i} for i in ids], sampling, use_tqdm=False)
gen_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
hashes = {r["id"]: token_ids_hash(list(o.outputs[0].token_ids)) for r, o in zip(rows, outs)}
json.dump({"generation_s": gen_s, "cpu_s": cpu_s, "hashes": hashes}, open(out, "w"))
"""

# The llmbench side: its CLI, unchanged, with the quality loop's generation window also timed in CPU seconds.
OURS = r"""
import json, sys, time
import llmbench.run.quality as quality
from llmbench.cli.commands import main

cpu_file, window = sys.argv.pop(1), quality._generate
spent = []


def timed(*args, **kwargs):
    cpu0 = time.process_time()
    try:
        return window(*args, **kwargs)
    finally:
        spent.append(time.process_time() - cpu0)
        json.dump({"cpu_s": sum(spent)}, open(cpu_file, "w"))


quality._generate = timed
if __name__ == "__main__":
    sys.argv[0] = "llmbench"
    main()
"""

SUITE = """name: overhead
description: "Many short prompts, generated greedily to a fixed length (ignore-EOS), so the engine does fixed work."
generation:
  max_new_tokens: {tokens}
  temperature: 0.0
  ignore_eos: true
tasks:
  - name: prompts
    dataset:
      local: {data}
      reference_field: answer
    prompt:
      template: "{{{{ question }}}}"
    scorer:
      name: exact
"""

TOPICS = ("harbours", "glaciers", "printing presses", "tide tables", "bread ovens", "orchards", "lighthouses")


def write_inputs(folder: Path, n: int, tokens: int) -> Path:
    """A dataset of `n` distinct prompts (no shared prefix past the template) and the suite that reads it."""
    data = folder / "prompts.jsonl"
    with data.open("w") as f:
        for i in range(n):
            topic = TOPICS[i % len(TOPICS)]
            question = f"Item {i}: write a few sentences about {topic} in the year {1700 + i % 300}."
            f.write(json.dumps({"id": f"p{i}", "question": question, "answer": "-"}) + "\n")
    suite = folder / "overhead.yaml"
    suite.write_text(SUITE.format(tokens=tokens, data=data))
    return suite


def run_llmbench(suite: Path, out: Path) -> dict[str, object]:
    cpu = out.with_suffix(".cpu.json")
    t0 = time.perf_counter()
    cmd = [PY, "-c", OURS, str(cpu), "run", str(suite), "--model", "tiny-qwen2", "--backend", "vllm"]
    # --no-cache: every pair generates (the generation cache would answer the second from the first)
    subprocess.run([*cmd, "--fresh", "--quiet", "--no-cache", "--output", str(out)], check=True, cwd=ROOT)
    command_s = time.perf_counter() - t0
    run = json.loads(out.read_text())
    hashes = {s["id"]: s["output_hash"] for s in run["samples"]}
    return {
        "generation_s": run["performance"]["generation_wall_s"],
        "cpu_s": json.loads(cpu.read_text())["cpu_s"],
        "command_s": command_s,
        "hashes": hashes,
    }


def run_plain(data: Path, tokens: int, out: Path) -> dict[str, object]:
    t0 = time.perf_counter()
    subprocess.run([PY, "-c", PLAIN, str(data), str(tokens), str(out)], check=True, cwd=ROOT, env=QUIET)
    command_s = time.perf_counter() - t0
    plain = json.loads(out.read_text())
    return {
        "generation_s": plain["generation_s"],
        "cpu_s": plain["cpu_s"],
        "command_s": command_s,
        "hashes": plain["hashes"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=4000)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="40 prompts of 8 tokens, one pair")
    args = parser.parse_args()
    if args.small:
        args.prompts, args.tokens, args.pairs = 40, 8, 1
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    rows = []
    with tempfile.TemporaryDirectory(prefix="llmbench-vs-plain-") as tmp:
        folder = Path(tmp)
        suite = write_inputs(folder, args.prompts, args.tokens)
        for pair in range(args.pairs):
            sides = ["llmbench", "plain"] if pair % 2 == 0 else ["plain", "llmbench"]
            got = {}
            for side in sides:
                out = folder / f"{side}-{pair}.json"
                got[side] = (
                    run_llmbench(suite, out)
                    if side == "llmbench"
                    else run_plain(folder / "prompts.jsonl", args.tokens, out)
                )
            same = sum(got["llmbench"]["hashes"].get(k) == v for k, v in got["plain"]["hashes"].items())
            rows.append((pair, got["llmbench"], got["plain"], same))
    print(f"{args.prompts} prompts x {args.tokens} tokens, tiny-qwen2, vLLM in process, greedy, ignore-EOS")
    print(
        "| pair | generation s, llmbench / plain | ratio | main-process CPU s over generation, llmbench / plain "
        "| command s, llmbench / plain | ratio | same tokens |"
    )
    print("|---|---|---|---|---|---|---|")
    gen_ratios, cmd_ratios, extra_cpu = [], [], []
    for pair, ours, plain, same in rows:
        g, c = ours["generation_s"] / plain["generation_s"], ours["command_s"] / plain["command_s"]
        gen_ratios.append(g)
        cmd_ratios.append(c)
        extra_cpu.append(ours["cpu_s"] - plain["cpu_s"])
        print(
            f"| {pair + 1} | {ours['generation_s']:.2f} / {plain['generation_s']:.2f} | {g:.3f} | "
            f"{ours['cpu_s']:.2f} / {plain['cpu_s']:.2f} | "
            f"{ours['command_s']:.1f} / {plain['command_s']:.1f} | {c:.3f} | {same}/{args.prompts} |"
        )
    print(
        f"median ratio: generation {statistics.median(gen_ratios):.3f}, command {statistics.median(cmd_ratios):.3f}; "
        f"llmbench's main process used {statistics.median(extra_cpu):+.2f} CPU s over generation (median)"
    )


if __name__ == "__main__":
    main()
