"""`llmbench view` over a folder of many results files: how long until the first page of runs is answered.

Run from the repository root: PYTHONPATH=. .venv/bin/python benchmarks/view_first_page.py [--files 200]
     [--samples 500] [--small]

The folder is synthesised from the viewer's test runs (tests/view/sample_runs.py): each file a copy of one
of them with a new run id and date, its samples padded to `--samples` records (copies of its own), so
the per-sample records are most of each file as in real runs. Timed, over real HTTP on 127.0.0.1: from
starting the server (finding the files) to the answer of the run list's first page (cold: nothing read
before), the same page again (warm), and opening one run (its samples read for the first time).
`--small` (CI): 10 files of 10 samples, the same server and requests, in a second or two.
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from llmbench.results.io import write_results
from llmbench.view.server import ViewServer, make_server
from tests.view.sample_runs import two_backends


def synthesise(out: Path, files: int, samples: int) -> None:
    originals = two_backends()
    for i in range(files):
        run = originals[i % 2].model_copy(deep=True)
        run.run_id = f"{run.run_id}-{i}"
        run.created_at = (datetime.fromisoformat(run.created_at) - timedelta(hours=i)).isoformat()
        records = run.samples
        run.samples = [
            records[k % len(records)].model_copy(update={"sample_index": k}) for k in range(samples)
        ]
        write_results(run, out / f"run-{i:04d}.json")


def timed_get(server: ViewServer, path: str) -> tuple[float, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    start = time.perf_counter()
    conn.request("GET", path)
    body = conn.getresponse().read()
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed, json.loads(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--small", action="store_true", help="10 files of 10 samples (CI)")
    args = parser.parse_args()
    if args.small:
        args.files, args.samples = 10, 10
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        synthesise(folder, args.files, args.samples)
        size = sum(p.stat().st_size for p in folder.iterdir())
        start = time.perf_counter()
        server = make_server([folder])
        threading.Thread(target=server.serve_forever, daemon=True).start()
        cold, page = timed_get(server, "/api/runs")
        first_page = time.perf_counter() - start
        warm, _ = timed_get(server, "/api/runs")
        run_id = page["rows"][0]["id"]
        opened, _ = timed_get(server, f"/api/run?{urlencode({'id': run_id})}")
        samples, _ = timed_get(server, f"/api/samples?{urlencode({'id': run_id, 'text': 'apples'})}")
        server.shutdown()
        server.server_close()
    print(
        f"{args.files} files x {args.samples} samples, {size / 1e6:.0f} MB on disk; {page['total']} runs listed"
    )
    print(
        f"server start to the first page of {len(page['rows'])} runs: {first_page:.3f} s (the request alone {cold:.3f} s)"
    )
    print(
        f"the same page again: {warm:.3f} s; opening one run: {opened:.3f} s; a text search in it: {samples:.3f} s"
    )


if __name__ == "__main__":
    main()
