"""The README's layout section names every package and module of llmbench/, and nothing that is not there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def layout_names() -> set[str]:
    """Module paths (`llmbench/run/quality.py`) and package paths (`llmbench/run/`) the layout names."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    lines = block.splitlines()
    start = lines.index("llmbench/") + 1
    names: set[str] = set()
    package: str | None = None
    for line in lines[start:]:
        if not line.startswith("  "):
            break  # configs/, suites/ ...: the package's part has ended
        if not line.startswith("   "):  # an entry of its own: a package or top-level modules
            head = line.split()[0]
            package = head if head.endswith("/") else None
            if package:
                names.add(f"llmbench/{package}")
        for module in re.findall(r"\b(\w+\.py)\b", line):
            names.add(f"llmbench/{package or ''}{module}")
    return names


def tree_names() -> set[str]:
    pkg = ROOT / "llmbench"
    names = {
        f"llmbench/{p.relative_to(pkg).as_posix()}" for p in pkg.rglob("*.py") if p.name != "__init__.py"
    }
    names |= {
        f"llmbench/{p.relative_to(pkg).as_posix()}/" for p in pkg.iterdir() if (p / "__init__.py").exists()
    }
    return names


def test_the_readme_layout_names_what_exists() -> None:
    missing = sorted(layout_names() - tree_names())
    assert not missing, f"README.md's layout names what is not in llmbench/: {missing}"


def test_the_readme_layout_names_every_module() -> None:
    unnamed = sorted(tree_names() - layout_names())
    assert not unnamed, f"add these to README.md's layout section: {unnamed}"
