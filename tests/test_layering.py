"""Dependencies point one way: cli -> api -> {study, run, analysis, report} -> plugins -> value types.

Every import counts, also those inside functions or under TYPE_CHECKING: a circle hidden in a function is
still a circle for the reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "llmbench"
PLUGIN_DIRS = ("backends", "scoring", "data", "telemetry")
PIPELINE = ("llmbench.run", "llmbench.analysis", "llmbench.study", "llmbench.cli.commands", "llmbench.api")
# Modules below the backends: they describe what to run and must not need a backend to do it.
BELOW_BACKENDS = ("config", "prompts", "data", "scoring", "types", "hashing", "results", "registry")
BOTTOM = ("types", "hashing")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """The llmbench modules a file imports; `from pkg import sub` counts as the submodule, not the package."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
            names.update(subs if subs and len(subs) == len(node.names) else {node.module, *subs})
    return {n for n in names if n.startswith("llmbench")}


GRAPH = {m: {d for d in imports_of(p) if d in MODULES and d != m} for m, p in MODULES.items()}


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_in_the_package() -> None:
    assert cycles() == []


def test_the_cycle_finder_finds_a_circle() -> None:
    GRAPH["llmbench.types"].add("llmbench.config.suite")
    try:
        assert any("llmbench.types" in c for c in cycles())
    finally:
        GRAPH["llmbench.types"].discard("llmbench.config.suite")


def test_plugins_do_not_import_the_pipeline_or_the_cli() -> None:
    offenders = []
    for folder in PLUGIN_DIRS:
        for path in (PKG / folder).rglob("*.py"):
            bad = [m for m in imports_of(path) if m.startswith(PIPELINE)]
            if bad:
                offenders.append(f"{path.relative_to(PKG)} imports {bad}")
    assert not offenders, offenders


def test_what_describes_a_run_does_not_import_backends() -> None:
    offenders = []
    for module, path in MODULES.items():
        if module.removeprefix("llmbench.").split(".")[0] in BELOW_BACKENDS:
            bad = [m for m in imports_of(path) if m.startswith("llmbench.backends")]
            if bad:
                offenders.append(f"{module} imports {bad}")
    assert not offenders, offenders


def test_value_types_import_nothing_above_them() -> None:
    for name in BOTTOM:
        above = {m for m in imports_of(PKG / f"{name}.py") if m.removeprefix("llmbench.") not in BOTTOM}
        assert not above, f"{name}.py imports {above}"


def test_heavy_libraries_are_not_imported_at_module_level_of_core() -> None:
    heavy = {"torch", "vllm", "pynvml", "transformers", "datasets"}
    start_up = ("cli/commands.py", "cli/show.py", "config/suite.py", "config/models.py", "results/schema.py")
    for name in (*start_up, "results/io.py", "run/pipeline.py", "registry.py", "types.py"):
        tree = ast.parse((PKG / name).read_text(encoding="utf-8"))
        top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
        top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
        assert not (top & heavy), f"{name} imports {top & heavy} at start-up"


MAX_MODULE_LINES = 400  # past this a module does more than one job: split it along a seam


def test_no_module_is_too_long_to_read() -> None:
    lengths = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    long = sorted(f"{m} ({n} lines)" for m, n in lengths.items() if n > MAX_MODULE_LINES)
    assert not long, f"split these along a seam: {long}"


MAX_COMMAND_LINES = 30  # a command parses, calls llmbench.api and renders; more than this is logic


def command_lengths(source: str) -> dict[str, int]:
    """Lines of each `@app.command` function's body, its signature and docstring left out."""
    lengths = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef):
            continue
        if not any(ast.unparse(d).startswith("app.command") for d in node.decorator_list):
            continue
        body = node.body[1:] if ast.get_docstring(node) is not None else node.body
        lengths[node.name] = (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1 if body else 0
    return lengths


def test_no_cli_command_holds_logic() -> None:
    lengths = command_lengths((PKG / "cli" / "commands.py").read_text(encoding="utf-8"))
    assert {"run", "compare", "study", "score"} <= lengths.keys()
    long = sorted(f"{name} ({n} lines)" for name, n in lengths.items() if n > MAX_COMMAND_LINES)
    assert not long, f"move their logic into llmbench.api or llmbench.report: {long}"


def test_the_command_measure_counts_the_body_only() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(31))
    source = f'@app.command()\ndef long(\n    a: int,\n) -> None:\n    """Doc."""\n{body}\n'
    assert command_lengths(source) == {"long": 31}


BACKEND_NAMES = {"openai", "vllm", "transformers"}


def test_the_run_pipeline_names_no_backend() -> None:
    """What the pipeline needs from a backend is a typed field of the Backend protocol, not its name."""
    offenders = []
    for path in (PKG / "run").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in BACKEND_NAMES:
                offenders.append(f"{path.relative_to(PKG)}:{node.lineno} names {node.value!r}")
    assert not offenders, offenders


def extra_reads(source: str) -> list[int]:
    """Lines where `source` reads an `.extra` attribute (a backend's own details)."""
    tree = ast.parse(source)
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "extra"]


def test_only_backends_read_a_backends_extra() -> None:
    offenders = []
    for path in PKG.rglob("*.py"):
        if path.relative_to(PKG).parts[0] != "backends":
            lines = extra_reads(path.read_text(encoding="utf-8"))
            offenders += [f"{path.relative_to(PKG)}:{n}" for n in lines]
    assert not offenders, f"read a typed field of BackendInfo instead: {offenders}"
    assert extra_reads("info = backend.load()\nif info.extra['managed']:\n    pass\n") == [2]
