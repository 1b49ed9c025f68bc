"""The package layout shows the flow: imports point from orchestration down to the shared core, never back
up, and no two modules import each other (directly or round a longer cycle)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lammps_al"

# which of lammps_al's folders each folder may import (itself always)
ALLOWED = {
    "core": set(),
    "models": {"core"},
    "executors": {"core"},
    "inrun": {"core", "models"},
    "train": {"core", "models", "executors"},
    "loop": {"core", "models", "executors", "train"},
    "validate": {"core", "models", "executors", "train"},
    "otf": {"core", "models", "executors", "train", "inrun"},
    "bench": {"core", "models", "executors", "train", "loop", "validate", "inrun"},
    "build": {"core"},
    "cli": {"core", "models", "executors", "train", "loop", "validate", "bench", "build", "inrun", "otf"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every lammps_al module ``path`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("lammps_al"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lammps_al"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_every_folder_is_in_the_layout():
    folders = {p.parent.name for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE}
    assert folders == set(ALLOWED), "a new folder needs its place in ALLOWED (and in the README's layout)"


def test_imports_point_down_the_layout():
    known = modules()
    wrong = []
    for name, path in known.items():
        parts = name.split(".")
        if len(parts) < 2 or parts[1] not in ALLOWED:
            continue
        here = parts[1]
        for target in imports_of(path):
            tparts = target.split(".")
            if len(tparts) < 2 or tparts[1] == here or tparts[1] not in ALLOWED:
                continue
            if tparts[1] not in ALLOWED[here]:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(sorted(set(wrong)))


def test_no_import_cycles():
    known = modules()
    graph = {}
    for name, path in known.items():
        targets = set()
        for t in imports_of(path):
            while t and t not in known:          # "pkg.module.attr" -> "pkg.module"
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):   # a package's own __init__ is not a cycle
                targets.add(t)
        graph[name] = targets
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_wheel_lists_every_package_and_carries_the_shipped_files():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert packages | {"lammps_al.in_files", "lammps_al.potentials"} == set(setuptools["packages"])
    assert setuptools["package-dir"] == {"lammps_al.in_files": "in_files", "lammps_al.potentials": "potentials"}
