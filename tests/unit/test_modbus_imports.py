"""modbus is a pure layer: standard library, pydantic, PyYAML and the core contract only
(the strict YAML loader); no transport. tests/unit/test_layering.py checks every package."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import modbus

ALLOWED_THIRD_PARTY = {"pydantic", "yaml"}
PACKAGE_DIR = Path(modbus.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_only_stdlib_pydantic_yaml_and_itself() -> None:
    offenders = []
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY:
                continue
            if top in ("modbus", "core"):
                continue
            offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_public_api() -> None:
    assert modbus.READ_FUNCTION_CODES == frozenset({1, 2, 3, 4})
    for name in modbus.__all__:
        assert hasattr(modbus, name)
