"""`llmbench compare` over a nightly results folder of many files: how long, and how much memory.

Run: .venv/bin/python benchmarks/compare_many_files.py --from results/ [--files 1000] [--samples 500] [--small]

The folder is synthesised from the real results files in `--from`: each night a copy of each, dated a day
later, with a new run id, and its samples padded to `--samples` records (copies of its own), so that the
per-sample records are most of each file, as they are in real runs. A user expects the table in about the
time it takes to list the files: under 2 s for 1,000 files.
`--small` (CI): 20 files of 10 samples made from the results files in tests/fixtures/ (unless --from is
given): the same synthesis, the same `compare` in process and as a command, in seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from llmbench import api


def synthesise(sources: list[Path], out: Path, files: int, samples: int) -> None:
    originals = [json.loads(p.read_text(encoding="utf-8")) for p in sources]
    for i in range(files):
        run = dict(originals[i % len(originals)])
        night = i // len(originals)
        created = datetime.fromisoformat(run["created_at"]) - timedelta(days=night)
        records = run["samples"] or [{"task": "t", "id": "0", "output": "x" * 200}]
        run["samples"] = [dict(records[k % len(records)], sample_index=k) for k in range(samples)]
        run["created_at"] = created.isoformat(timespec="seconds")
        run["run_id"] = f"{run['run_id']}-night{night}"
        (out / f"{run['run_id']}-{i}.json").write_text(json.dumps(run, indent=2), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--from", dest="source", type=Path, help="folder of real results files")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument(
        "--small", action="store_true", help="20 files of 10 samples from tests/fixtures (CI)"
    )
    args = parser.parse_args()
    if args.small:
        args.files, args.samples = 20, 10
        args.source = args.source or Path(__file__).resolve().parent.parent / "tests" / "fixtures"
    if args.source is None:
        parser.error("--from FOLDER is required (a folder of real results files), or --small")
    sources = sorted(args.source.glob("*.json"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        synthesise(sources, folder, args.files, args.samples)
        size = sum(p.stat().st_size for p in folder.iterdir())
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        table = api.render("table", api.compare([folder]))
        elapsed = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # What a user waits for: the command from start to exit, imports included.
        start = time.perf_counter()
        cli = subprocess.run(
            [sys.executable, "-m", "llmbench", "compare", str(folder)], capture_output=True, check=True
        )
        command = time.perf_counter() - start
    print(table)
    print(f"{args.files} files, {size / 1e6:.0f} MB on disk: compare took {elapsed:.2f} s")
    print(f"peak resident memory {peak / 1024:.0f} MiB (before: {before / 1024:.0f} MiB)")
    print(f"`llmbench compare FOLDER` from start to exit: {command:.2f} s ({len(cli.stdout)} bytes of table)")


if __name__ == "__main__":
    main()
