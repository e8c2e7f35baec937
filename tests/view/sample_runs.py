"""Results files for the viewer's tests: the same questions on two backends, as the runner writes them.

Built from tests/factories.py (verdicts, aggregates, performance) with the per-sample text filled in as
a run records it: the rendered prompt, the output (some with a reasoning block), the reference, the
scorer's details and the gaps between tokens. One output is hostile HTML and JavaScript.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from llmbench.results.io import write_results
from llmbench.results.schema import RunResult, SampleRecord
from tests.factories import FINGERPRINT, make_run, performance, verdicts, with_flips

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script></pre><b>bold?</b>'
NAMES = ("Natalia", "Weng", "Betty", "James", "Maria", "Tobias", "Julie", "Ken")
LANGUAGES = ("en", "de", "fr", "zh")


def _prompt(question: str) -> str:
    return (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\nSolve the problem. End with '#### <number>'.\n\n{question}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def _question(i: int) -> tuple[str, int, int, int]:
    a, b = 12 + 7 * i % 41, 3 + i % 9
    name = NAMES[i % len(NAMES)]
    return (
        f"{name} has {a} apples and buys {b} bags of {b} apples each. How many apples now?",
        a,
        b,
        a + b * b,
    )


def _fill(run: RunResult, *, slip: set[int], seed: int) -> None:
    """Write each record's text and timings; wrong answers are off by `slip`-dependent amounts."""
    rng = np.random.default_rng(seed)
    for rec in run.samples:
        i = int(rec.id.rsplit("-", 1)[1])
        question, a, b, answer = _question(i)
        got = answer if rec.status == "correct" else answer + (2 if i in slip else 1)
        steps = f"{b} bags of {b} apples are {b * b} apples.\n{a} + {b * b} = {got}.\n#### {got}"
        rec.prompt = _prompt(question)
        rec.output = (f"<think>Count the bags first: {b} x {b}.</think>\n" if i % 5 == 0 else "") + steps
        if rec.status == "unparsed":
            rec.output = f"The answer is about {got}, I think."
        rec.reference = str(answer)
        rec.details = {"extracted": None if rec.status == "unparsed" else str(got), "expected": str(answer)}
        rec.metadata = {"language": LANGUAGES[i % len(LANGUAGES)]} if rec.task == "mgsm" else {}
        tokens = rec.tokens_out or 100
        gaps = rng.normal(rec.tpot_ms or 11.0, 0.6, tokens - 1)
        gaps[tokens // 3] += 25.0  # one stall, as a scheduler hiccup looks
        rec.itl_ms = [round(float(g), 3) for g in gaps]
        rec.prompt_hash = f"p{i:04d}-{rec.task}"


def two_backends() -> tuple[RunResult, RunResult]:
    """qwen2.5-7b on Transformers and on vLLM: the same prompts, a few verdicts flipped, outputs changed."""
    gsm = verdicts(40, 0.65, seed=11)
    mgsm = verdicts(24, 0.5, seed=12)
    a = make_run(
        "qwen2.5-7b",
        {"gsm8k": gsm, "mgsm": mgsm},
        backend="transformers",
        created_at="2026-11-20T09:00:00+00:00",
        perf=performance(ttft_ms=80, tokens_per_s=900, seed=1),
    )
    b = make_run(
        "qwen2.5-7b",
        {"gsm8k": with_flips(gsm, 0.15, seed=13), "mgsm": mgsm},
        backend="vllm",
        created_at="2026-11-20T10:00:00+00:00",
        fingerprint={**FINGERPRINT, "backend": "vllm", "chat_template": "c-9f10"},
        perf=performance(ttft_ms=42, tokens_per_s=2400, seed=2),
    )
    _fill(a, slip=set(), seed=1)
    _fill(b, slip={3, 8, 17}, seed=2)
    hostile = next(r for r in a.samples if r.task == "gsm8k" and r.id.endswith("0039"))
    hostile.output = HOSTILE
    hostile.prompt = _prompt(HOSTILE)
    return a, b


def write_pair(folder: Path) -> tuple[Path, Path]:
    a, b = two_backends()
    folder.mkdir(parents=True, exist_ok=True)
    return write_results(a, folder / "transformers.json"), write_results(b, folder / "vllm.json")


def hostile_key(path: Path) -> int:
    """The position of the hostile sample in its file."""
    records = [SampleRecord.model_validate(r) for r in json.loads(path.read_text())["samples"]]
    return next(k for k, r in enumerate(records) if r.output == HOSTILE)


def write_study(folder: Path) -> Path:
    """A study folder: four cells (two models, two suites) and the manifest `llmbench study` writes."""
    from llmbench.study.manifest import StudyManifest, write_manifest

    for k, (model, rate) in enumerate((("qwen2.5-7b", 0.7), ("llama3-8b", 0.55))):
        for j, suite in enumerate(("math", "coding")):
            run = make_run(
                model,
                {f"{suite}-task": verdicts(30, rate - 0.1 * j, seed=10 * k + j)},
                suite=suite,
                perf=performance(seed=k, peak_vram_mib=16000 + 1000 * k),
            )
            write_results(run, folder / f"{suite}-{model}-seed0.json")
    write_manifest(StudyManifest(study="demo", study_file=str(folder / "gone.yaml"), study_hash="h"), folder)
    return folder
