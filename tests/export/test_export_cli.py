"""`llmbench export` on bad input: one clear line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import ROOT, llmbench
from tests.export.helpers import two_runs, write_runs

pytestmark = pytest.mark.e2e


def one_line_exit_2(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1, r.stderr
    for needle in needles:
        assert needle in r.stderr, r.stderr


def without(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a Python where `module` cannot be imported, as on a machine without the extra."""
    code = f"import sys; sys.modules[{module!r}] = None; sys.argv = ['llmbench', *sys.argv[1:]]; from llmbench.cli.commands import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )  # fmt: skip


@pytest.mark.parametrize(
    ("to", "module", "extra"), [("mlflow", "mlflow", "mlflow"), ("wandb", "wandb", "wandb")]
)
def test_a_missing_extra_is_one_line_with_the_install_hint(
    tmp_path: Path, to: str, module: str, extra: str
) -> None:
    (path,) = write_runs(tmp_path, two_runs()[:1])
    r = without(
        module, "export", str(path), "--to", to, "--tracking-uri", "http://127.0.0.1:9", "-o", str(tmp_path)
    )
    one_line_exit_2(r, f"'{module}' is needed", f"pip install 'llmbench[{extra}]'")


def test_a_file_that_is_not_a_results_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text("[1, 2", encoding="utf-8")
    one_line_exit_2(
        llmbench("export", str(bad), "--to", "hf-dataset", "-o", str(tmp_path / "ds")), "notes.json"
    )
    assert not (tmp_path / "ds").exists()


def test_an_unknown_exporter_and_a_missing_destination_are_refused(tmp_path: Path) -> None:
    (path,) = write_runs(tmp_path, two_runs()[:1])
    one_line_exit_2(llmbench("export", str(path), "--to", "mlflw"), "unknown exporter 'mlflw'", "mlflow")
    one_line_exit_2(llmbench("export", str(path), "--to", "hf-dataset"), "--output DIR")
    env = {"MLFLOW_TRACKING_URI": ""}
    one_line_exit_2(llmbench("export", str(path), "--to", "mlflow", env=env), "--tracking-uri")
