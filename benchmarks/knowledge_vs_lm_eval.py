"""The knowledge suite through llmbench and through lm-evaluation-harness's `hf` model, side by side.

Both harnesses score exactly the same (context, continuation) pairs: this script renders every
asking of the suite's questions with llmbench's own prompt code (few-shot examples, system text,
rotations of the circular task) and writes them as an lm-evaluation-harness task whose documents
carry the finished context and the continuations, with no few-shot and no delimiter of its own.
Then it times, as separate processes on the same model and dtype:

    llmbench run SUITE --model tiny-qwen2            (Transformers, float32, 8 rows a forward pass)
    lm_eval --model hf --model_args pretrained=PATH,dtype=float32 --tasks ... --batch_size 8

and checks that the two give each continuation the same log-probability.

lm-evaluation-harness is not a dependency of llmbench: install it into a throwaway environment
and pass its interpreter, for example

    python -m venv /tmp/lmeval && /tmp/lmeval/bin/pip install torch lm-eval
    python benchmarks/knowledge_vs_lm_eval.py --lm-eval-python /tmp/lmeval/bin/python

`--small` (CI): 2 questions a task (`--limit`), one round. It runs llmbench's side for real (the export
to lm-evaluation-harness tasks, `llmbench run`, the scoring-only timing and the log-probs read back);
lm-evaluation-harness's side runs only where --lm-eval-python names an interpreter that has it, which
CI does not install, so there the comparison of log-probs is skipped and the script says so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llmbench.config.models import resolve_model
from llmbench.config.suite import load_suite
from llmbench.data.base import DataContext
from llmbench.data.readers import load_samples
from llmbench.run.choice_prompts import askings, continuations, few_shot_pool, with_question_fields
from llmbench.testing.tinymodel import resolve_model_path

TASK_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{continuations}}}}"
doc_to_target: answer
target_delimiter: ""
metric_list:
  - metric: acc
  - metric: acc_norm
"""


def export_tasks(suite_path: str, out: Path, limit: int | None = None) -> dict[str, int]:
    """Each task's askings (its first `limit` samples) as an lm-evaluation-harness task; returns
    continuations per task."""
    suite = load_suite(suite_path)
    ctx = DataContext(suite_dir=suite.directory)
    counts = {}
    for spec in suite.config.tasks:
        if spec.choices is None or spec.dataset is None:
            continue
        where = f"{suite.path}: task '{spec.name}'"
        samples = with_question_fields(load_samples(spec.dataset, ctx)[:limit], where)
        pool = few_shot_pool(spec, ctx, where)
        rows = []
        for sample in samples:
            for r, asking in enumerate(askings(spec, sample, pool, where)):
                conts = continuations(spec.choices, asking.question)
                rows.append(
                    {
                        "id": f"{sample.id}/{r}",
                        "context": asking.full_context,
                        "continuations": conts,
                        "answer": asking.question.answer,
                    }
                )
        name = f"llmbench_{spec.name}"
        data = out / f"{name}.jsonl"
        data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        (out / f"{name}.yaml").write_text(TASK_YAML.format(name=name, data=data), encoding="utf-8")
        counts[name] = sum(len(row["continuations"]) for row in rows)
    return counts


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    """The command's wall time, process start to exit, and its stderr."""
    t0 = time.perf_counter()
    done = subprocess.run(
        cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    return time.perf_counter() - t0, done.stderr


def lm_eval_scoring_s(stderr: str) -> float | None:
    """The elapsed time of lm_eval's "Running loglikelihood requests" bar when it reached 100%."""
    found = re.findall(r"Running loglikelihood requests: 100%[^\[]*\[(\d+):(\d+)(?::(\d+))?<", stderr)
    if not found:
        return None
    a, b, c = found[-1]
    return int(a) * 60 + int(b) if not c else int(a) * 3600 + int(b) * 60 + int(c)


# Scoring alone, in one process after the model is loaded: the same 272 (context, continuation)
# pairs through each harness's own log-likelihood call, best of three.
OURS_SCORING = """
import json, sys, time
from pathlib import Path
from llmbench.backends.transformers import TransformersBackend
from llmbench.config.models import resolve_model
from llmbench.testing.tinymodel import resolve_model_path
from llmbench.types import LoglikelihoodRequest
rows = [json.loads(l) for p in sorted(Path(sys.argv[1]).glob("*.jsonl")) for l in p.open()]
reqs = [LoglikelihoodRequest(f"{i}/{j}", r["context"], c)
        for i, r in enumerate(rows) for j, c in enumerate(r["continuations"])]
cfg = resolve_model("tiny-qwen2")
backend = TransformersBackend(cfg, resolve_model_path(cfg))
backend.load()
best = float("inf")
for _ in range(3):
    t0 = time.perf_counter()
    list(backend.loglikelihood(reqs))
    best = min(best, time.perf_counter() - t0)
print(best)
"""
THEIRS_SCORING = """
import json, sys, time
from pathlib import Path
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
rows = [json.loads(l) for p in sorted(Path(sys.argv[1]).glob("*.jsonl")) for l in p.open()]
reqs = [Instance(request_type="loglikelihood", doc={}, arguments=(r["context"], c), idx=j)
        for r in rows for j, c in enumerate(r["continuations"])]
lm = HFLM(pretrained=sys.argv[2], dtype="float32", device="cpu", batch_size=int(sys.argv[3]))
best = float("inf")
for _ in range(3):
    t0 = time.perf_counter()
    lm.loglikelihood(reqs, disable_tqdm=True)
    best = min(best, time.perf_counter() - t0)
print(best)
"""


def scoring_only(python: str, code: str, args: list[str], env: dict[str, str]) -> float:
    done = subprocess.run([python, "-c", code, *args], env=env, check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def lm_eval_logprobs(samples_dir: Path) -> dict[tuple[str, str], list[float]]:
    """(task, doc id) -> each continuation's log-probability, from lm_eval's --log_samples files."""
    out = {}
    for path in samples_dir.rglob("samples_*.jsonl"):
        task = path.name.removeprefix("samples_").rsplit("_", 1)[0]
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            out[(task, rec["doc"]["id"])] = [float(resp[0][0]) for resp in rec["resps"]]
    return out


def llmbench_logprobs(results: Path) -> dict[tuple[str, str], list[float]]:
    data = json.loads(results.read_text(encoding="utf-8"))
    out = {}
    for s in data["samples"]:
        # the first rotation's option log-probs; the circular task's other rotations are not kept per option
        out[(f"llmbench_{s['task']}", f"{s['id']}/0")] = list(s["details"]["logprobs"])
    return out


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--lm-eval-python", help="an interpreter with lm-eval installed (required but with --small)"
    )
    ap.add_argument("--suite", default="suites/knowledge.yaml")
    ap.add_argument(
        "--batch-size", type=int, default=8, help="lm_eval's; llmbench's Transformers default is 8"
    )
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="the first N questions of each task")
    ap.add_argument("--small", action="store_true", help="2 questions a task, one round (CI)")
    args = ap.parse_args()
    if args.small:
        args.limit, args.repeats = args.limit or 2, 1
    elif args.lm_eval_python is None:
        ap.error("--lm-eval-python is required (an interpreter with lm-eval installed), or --small")
    return args


def whole_runs(
    args: argparse.Namespace, work: Path, tasks: Path, model_path: str, env: dict[str, str]
) -> Path:
    """Each harness's whole process, interleaved so that a change in the host's load hits both."""
    limit = ["--limit", str(args.limit)] if args.limit else []
    llm_out = work / "llmbench.json"
    llm_cmd = [sys.executable, "-m", "llmbench", "run", args.suite, "--model", "tiny-qwen2", *limit]
    llm_cmd += ["-q", "--fresh", "--output", str(llm_out)]
    lm_cmd = [str(args.lm_eval_python), "-m", "lm_eval", "--model", "hf"]
    lm_cmd += ["--model_args", f"pretrained={model_path},dtype=float32", "--device", "cpu"]
    lm_cmd += [
        "--tasks",
        ",".join(p.stem for p in sorted(tasks.glob("*.yaml"))),
        "--include_path",
        str(tasks),
    ]
    lm_cmd += ["--batch_size", str(args.batch_size), "--log_samples", "--output_path", str(work / "lmeval")]
    for i in range(args.repeats):
        a, _ = timed(llm_cmd, env)
        ours_scoring = json.loads(llm_out.read_text(encoding="utf-8"))["performance"]["generation_wall_s"]
        theirs = "lm-eval hf not run (no --lm-eval-python)"
        if args.lm_eval_python:
            b, err = timed(lm_cmd, env)
            theirs = f"lm-eval hf {b:.1f} s, its scoring {lm_eval_scoring_s(err)} s"
        print(
            f"run {i + 1}: llmbench {a:.1f} s whole process, {ours_scoring:.1f} s scoring; {theirs} "
            f"(1-min load {os.getloadavg()[0]:.1f})"
        )
    return llm_out


def scoring_rounds(args: argparse.Namespace, tasks: Path, model_path: str, env: dict[str, str]) -> None:
    for _ in range(args.repeats):
        a = scoring_only(sys.executable, OURS_SCORING, [str(tasks)], env)
        theirs = "lm-eval hf not run"
        if args.lm_eval_python:
            b = scoring_only(
                args.lm_eval_python, THEIRS_SCORING, [str(tasks), model_path, str(args.batch_size)], env
            )
            theirs = f"lm-eval hf {b:.2f} s"
        print(f"scoring only, best of 3: llmbench {a:.2f} s, {theirs} (1-min load {os.getloadavg()[0]:.1f})")


def main() -> None:
    args = parse_args()
    model_path = str(resolve_model_path(resolve_model("tiny-qwen2")))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    with tempfile.TemporaryDirectory(prefix="llmbench-vs-lmeval-") as tmp:
        work = Path(tmp)
        tasks = work / "tasks"
        tasks.mkdir()
        counts = export_tasks(args.suite, tasks, args.limit)
        print(f"tasks: {counts} ({sum(counts.values())} continuations)")
        llm_out = whole_runs(args, work, tasks, model_path, env)
        scoring_rounds(args, tasks, model_path, env)
        ours = llmbench_logprobs(llm_out)
        print(f"llmbench log-probs read back: {sum(len(v) for v in ours.values())} continuations")
        if args.lm_eval_python:
            theirs = lm_eval_logprobs(work / "lmeval")
            common = sorted(set(ours) & set(theirs))
            gaps = [abs(x - y) for key in common for x, y in zip(ours[key], theirs[key], strict=True)]
            print(f"continuations compared: {len(gaps)}; largest log-prob gap {max(gaps):.2e} nats")
            for path in sorted((work / "lmeval").rglob("results_*.json")):
                took = json.loads(path.read_text(encoding="utf-8")).get("total_evaluation_time_seconds")
                print(f"lm-eval ({path.name}): total_evaluation_time_seconds {took}")
        ours_file = json.loads(llm_out.read_text(encoding="utf-8"))
        scoring = ours_file["performance"].get("generation_wall_s")
        load = ours_file["backend"].get("load_time_s")
        print(f"llmbench (last run): scoring {scoring:.2f} s, model load {load:.2f} s")


if __name__ == "__main__":
    main()
