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


TOP_LEVEL = {"__init__", "__main__", "api", "types", "hashing", "errors", "registry", "prompts"}


def test_the_top_level_is_an_entrance_not_a_store_room() -> None:
    loose = sorted(p.stem for p in PKG.glob("*.py") if p.stem not in TOP_LEVEL)
    assert not loose, f"move these into the package whose job they share: {loose}"


def test_no_two_modules_share_a_file_name() -> None:
    """A name says which module a change belongs in; `__init__.py` and `base.py` are the packages' own."""
    seen: dict[str, list[str]] = {}
    for path in PKG.rglob("*.py"):
        if path.name not in ("__init__.py", "base.py"):
            seen.setdefault(path.name, []).append(str(path.relative_to(PKG)))
    assert not {n: ps for n, ps in seen.items() if len(ps) > 1}


MAX_FUNCTION_LINES = 60  # from `def` to its last line: more than a screen is more than one step


def long_functions(source: str) -> list[tuple[str, int]]:
    return [
        (node.name, (node.end_lineno or node.lineno) - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_no_function_is_longer_than_a_screen() -> None:
    found = [
        f"{path.relative_to(PKG)}:{name} ({n} lines)"
        for path in PKG.rglob("*.py")
        for name, n in long_functions(path.read_text(encoding="utf-8"))
    ]
    assert not found, f"split these into named steps: {found}"


def test_the_function_measure_counts_from_def_to_the_end() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    assert long_functions(f"def f() -> None:\n{body}\n") == [("f", 61)]
    assert long_functions("def g() -> None:\n    pass\n") == []


def private_reaches(source: str, module_names: set[str]) -> list[str]:
    """`from llmbench.x import _name`, and `mod._name` where `mod` is an imported llmbench module."""
    tree = ast.parse(source)
    found: list[str] = []
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("llmbench"):
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"{node.lineno}: {node.module}.{a.name}")
                elif f"{node.module}.{a.name}" in module_names:
                    aliases.add(a.asname or a.name)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
            continue
        if node.value.id in aliases and node.attr.startswith("_") and not node.attr.startswith("__"):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_module_reaches_for_another_modules_private_names() -> None:
    found = [
        f"{path.relative_to(PKG.parent)}:{hit}"
        for path in [*PKG.rglob("*.py"), *(PKG.parent / "tests").rglob("*.py")]
        for hit in private_reaches(path.read_text(encoding="utf-8"), set(MODULES))
    ]
    assert not found, f"make these public (a name and a docstring) or move them: {found}"


def test_the_private_name_finder_finds_both_forms() -> None:
    source = "from llmbench.run import perf\nfrom llmbench.run.perf import _x\nperf._y()\n"
    assert private_reaches(source, {"llmbench.run.perf"}) == ["2: llmbench.run.perf._x", "3: perf._y"]


MAX_LAYERS = 17  # rooms (a top-level module or a package) from `__main__` down to the value types


def room_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def layers() -> int:
    """The longest chain of rooms, each importing the next, on the graph with import circles merged."""
    rooms: dict[str, set[str]] = {}
    for m, deps in GRAPH.items():
        rooms.setdefault(room_of(m), set()).update(room_of(d) for d in deps if room_of(d) != room_of(m))
    depth: dict[str, int] = {}

    def visit(room: str, path: tuple[str, ...]) -> int:
        if room not in depth:
            below = [visit(d, (*path, room)) for d in rooms.get(room, ()) if d not in path]
            depth[room] = 1 + max(below, default=0)
        return depth[room]

    return max(visit(r, ()) for r in rooms)


def test_the_house_has_no_more_floors_than_before() -> None:
    assert layers() <= MAX_LAYERS
