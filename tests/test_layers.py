"""The layer rule of DESIGN.md ("Layout"), checked on the source: which package may import which.

- every module of duel, actors, learner and launch imports (no module is broken or orphaned);
- `duel` never imports `actors`, `learner`, `launch` or `ray` (the library is pure JAX/NumPy);
- `actors` never imports `learner` or `launch`;
- no import cycle among duel's subpackages and modules (duel.oracles -> duel.tasks is allowed
  only because duel.tasks imports nothing of duel.oracles).

Imports are read from the source (every `import` statement, also those inside functions: most of
ours are lazy, so a check on `sys.modules` after importing would miss them).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("duel", "actors", "learner", "launch")
FORBIDDEN = {"duel": ("actors", "learner", "launch", "ray"), "actors": ("learner", "launch")}


def modules(package: str) -> list[str]:
    pkg = importlib.import_module(package)
    return [package] + [m.name for m in pkgutil.walk_packages(pkg.__path__, package + ".")
                        if not m.name.endswith(".__main__")]  # `python -m launch` runs the CLI


def source_file(module: str) -> Path:
    base = ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def imports_of(module: str) -> set[str]:
    """Every module name an import statement of `module` names (absolute; relative resolved)."""
    path = source_file(module)
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from duel import config`
    return out


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_imports(package):
    names = modules(package)
    assert len(names) >= 3
    for name in names:
        importlib.import_module(name)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_never_import_higher_ones(package):
    bad = {m: sorted(i for i in imports_of(m) if top(i) in FORBIDDEN[package]) for m in modules(package)}
    assert {m: v for m, v in bad.items() if v} == {}


def unit(name: str) -> str | None:
    """duel's unit of the cycle check: its subpackage or top-level module (duel.oracles, duel.train)."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "duel" and len(parts) > 1 else None


def graph() -> dict[str, set[str]]:
    known = set(modules("duel"))
    g: dict[str, set[str]] = {}
    for m in known:
        if unit(m) is None:
            continue
        deps = {unit(i) for i in imports_of(m) if i in known and unit(i) is not None}
        g.setdefault(unit(m), set()).update(deps - {unit(m)})
    return g


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    color: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        color[n] = 1
        stack.append(n)
        for d in sorted(g.get(n, ())):
            if color.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in color and (c := visit(d)):
                return c
        stack.pop()
        color[n] = 2
        return None

    for n in sorted(g):
        if n not in color and (c := visit(n)):
            return c
    return None


def test_no_import_cycle_among_duels_parts():
    g = graph()
    assert "duel.tasks" not in g.get("duel.oracles", set()) or "duel.oracles" not in g["duel.tasks"]
    assert find_cycle(g) is None, " -> ".join(find_cycle(g))


def test_the_checks_see_what_they_check():
    # the cycle finder finds a planted cycle, and the reader sees lazy imports inside functions
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert "duel.tasks.get_task" in imports_of("actors.oracle")  # `from duel.tasks import get_task` in __init__
