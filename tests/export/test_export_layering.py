"""Exporters are plugins: they see results files and their own packages, never the run pipeline or the CLI.

Only items.py, which gathers the files (and the study manifest beside them) for an export, reads above them.
"""

from __future__ import annotations

from tests.test_layering import PIPELINE, PKG, imports_of


def test_exporters_do_not_import_the_pipeline_or_the_cli() -> None:
    offenders = {}
    for path in (PKG / "export").glob("*.py"):
        if path.name != "items.py":
            bad = [m for m in imports_of(path) if m.startswith(PIPELINE)]
            if bad:
                offenders[path.name] = bad
    assert not offenders


def test_exporters_import_their_packages_only_when_chosen() -> None:
    import ast

    for name in ("mlflow", "wandb", "hfdataset", "base", "flatten", "hfcard"):
        tree = ast.parse((PKG / "export" / f"{name}.py").read_text(encoding="utf-8"))
        top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
        top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
        assert not top & {"mlflow", "wandb", "pyarrow", "datasets"}, name
