"""The layers import one way: each package may import only the packages below it.

Read from the source with ``ast`` (no package is imported): every ``import`` of every module,
at the top of the module or inside a function. Fails on an import against the direction, on
any import of the top floor (``app``) by a package, on a package importing a third-party
library its floor does not allow, on a cycle of modules, and on a function-level import of our
own packages outside the top floor (except the few listed in ``LAZY`` with their reason).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# package -> the packages of ours it may import (besides itself); from the top floor down
ALLOWED: dict[str, frozenset[str]] = {
    "app": frozenset({"core", "modbus", "benchmarks", "storage", "fleet", "collector", "ingest",
                      "accounting", "api", "simulators"}),
    "api": frozenset({"core", "benchmarks", "storage", "fleet", "accounting", "ingest"}),
    "simulators": frozenset({"core", "modbus", "benchmarks", "storage", "fleet"}),
    "collector": frozenset({"core", "modbus"}),
    "ingest": frozenset({"core", "storage"}),
    "accounting": frozenset({"core", "benchmarks", "storage"}),
    "fleet": frozenset({"core", "modbus", "benchmarks"}),
    "storage": frozenset({"core"}),
    "modbus": frozenset({"core"}),
    "benchmarks": frozenset(),
    "core": frozenset(),
}
OURS = frozenset(ALLOWED) | {"tests", "perf"}

# packages whose third-party imports are restricted: package -> allowed distributions
THIRD_PARTY: dict[str, frozenset[str]] = {
    "core": frozenset({"pydantic", "pydantic_settings", "yaml", "paho"}),
    "modbus": frozenset({"pydantic", "yaml"}),
    "benchmarks": frozenset(),
}
# modules of a restricted package that may use one more library
THIRD_PARTY_EXTRA: dict[str, frozenset[str]] = {}

# function-level imports of our own packages outside app/: (module, imported) -> reason
LAZY: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    module: str       # importing module, e.g. "api.app"
    name: str         # imported module, e.g. "ingest.pipeline"
    line: int
    nested: bool      # inside a function or class body (or an if block)
    type_only: bool   # under ``if TYPE_CHECKING:``


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = _module_name(path)
    found: list[Import] = []

    def visit(node: ast.AST, nested: bool, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(module, a.name, child.lineno, nested, type_only)
                             for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(module, path.name == "__init__.py", child)
                found.append(Import(module, base, child.lineno, nested, type_only))
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, nested, True)
            else:
                inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                     ast.ClassDef, ast.If, ast.Try, ast.With))
                visit(child, inner, type_only)

    visit(tree, False, False)
    return found


def _package_modules() -> list[Path]:
    return sorted(p for pkg in ALLOWED for p in (REPO / pkg).rglob("*.py"))


ALL_IMPORTS = [imp for path in _package_modules() for imp in _imports(path)]


def _top(name: str) -> str:
    return name.split(".")[0]


def test_every_package_is_in_the_table() -> None:
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert packages - {"tests", "perf"} == set(ALLOWED)


def test_the_table_has_no_cycle() -> None:
    done: set[str] = set()

    def walk(pkg: str, stack: tuple[str, ...]) -> None:
        assert pkg not in stack, " -> ".join((*stack, pkg))
        if pkg not in done:
            for dep in ALLOWED[pkg]:
                walk(dep, (*stack, pkg))
            done.add(pkg)

    for pkg in ALLOWED:
        walk(pkg, ())


def test_imports_run_down_the_layers() -> None:
    against = [f"{i.module}:{i.line} imports {i.name}" for i in ALL_IMPORTS
               if _top(i.name) in OURS and _top(i.name) != _top(i.module)
               and _top(i.name) not in ALLOWED[_top(i.module)]]
    assert against == []


def test_nothing_imports_the_top_floor() -> None:
    offenders = [f"{i.module}:{i.line} imports {i.name}" for i in ALL_IMPORTS
                 if _top(i.name) == "app" and _top(i.module) != "app"]
    assert offenders == []


@pytest.mark.parametrize("package", sorted(THIRD_PARTY))
def test_restricted_packages_use_only_their_libraries(package: str) -> None:
    offenders = []
    for i in ALL_IMPORTS:
        top = _top(i.name)
        if _top(i.module) != package or top in OURS or top in sys.stdlib_module_names:
            continue
        if top not in THIRD_PARTY[package] | THIRD_PARTY_EXTRA.get(i.module, frozenset()):
            offenders.append(f"{i.module}:{i.line} imports {i.name}")
    assert offenders == []


def test_no_function_level_imports_of_our_packages_below_the_top_floor() -> None:
    offenders = [f"{i.module}:{i.line} imports {i.name}" for i in ALL_IMPORTS
                 if i.nested and not i.type_only and _top(i.name) in OURS
                 and _top(i.module) != "app" and (i.module, i.name) not in LAZY]
    assert offenders == []


def test_no_cycle_between_modules() -> None:
    """Top-level imports between our modules form no cycle (Tarjan's algorithm)."""
    modules = {_module_name(p) for p in _package_modules()}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for i in ALL_IMPORTS:
        if i.nested or i.type_only:
            continue
        target = i.name
        while target and target not in modules:
            target = target.rpartition(".")[0]
        # importing a package runs its __init__; a module importing its own package's
        # __init__ from inside is not a cycle we can see here, so skip parents of the importer
        if target and target != i.module and not i.module.startswith(target + "."):
            edges[i.module].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for m in sorted(modules):
        if m not in index:
            strongconnect(m)
    assert cycles == []


def test_the_scan_sees_what_it_checks() -> None:
    """Guard against a scan that finds nothing (and so passes everything)."""
    names = {(i.module, i.name) for i in ALL_IMPORTS}
    assert ("app.cli", "app.commands") in names
    assert ("api.app", "ingest") in names
    assert ("collector.polling", "modbus") in names
    nested = [i for i in ALL_IMPORTS if i.nested and _top(i.module) == "app"]
    assert all(i.module.startswith("app.") for i in nested)
