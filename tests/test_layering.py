"""Dependencies point one way: plugins never import the runner or the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "llmbench"
PLUGIN_DIRS = ("backends", "scoring", "data", "telemetry")
FORBIDDEN = ("llmbench.runner", "llmbench.cli", "llmbench.commands")


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_plugins_do_not_import_runner_or_cli() -> None:
    offenders = []
    for folder in PLUGIN_DIRS:
        for path in (PKG / folder).rglob("*.py"):
            bad = [m for m in imports_of(path) if m.startswith(FORBIDDEN)]
            if bad:
                offenders.append(f"{path.relative_to(PKG)} imports {bad}")
    assert not offenders, offenders


def test_heavy_libraries_are_not_imported_at_module_level_of_core() -> None:
    heavy = {"torch", "vllm", "pynvml", "transformers", "datasets"}
    for name in ("cli.py", "config.py", "results.py", "runner.py", "registry.py"):
        tree = ast.parse((PKG / name).read_text(encoding="utf-8"))
        top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
        top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
        assert not (top & heavy), f"{name} imports {top & heavy} at start-up"
