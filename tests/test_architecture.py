"""The dependency rule of architecture.md, enforced: the SDK imports nothing of ours, and
plugins import only the SDK — never the core — so a partner can build one from the SDK."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# httpcore is httpx's own core (the egress transport pins connections through it)
SDK_ALLOWED = {"cartera_sdk", "msgspec", "pluggy", "httpx", "httpcore", "holidays", "cryptography"}
SDK_TESTKIT_ALLOWED = SDK_ALLOWED | {"pytest", "_pytest"}
PLUGIN_ROOTS = [*sorted((ROOT / "plugins").glob("*/")),
                *sorted((ROOT / "tests" / "plugins").glob("*/"))]


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def third_party(roots: set[str]) -> set[str]:
    return {r for r in roots if r not in sys.stdlib_module_names and r != "__future__"}


def sdk_files() -> list[Path]:
    return sorted((ROOT / "sdk" / "cartera_sdk").rglob("*.py"))


def plugin_files() -> list[Path]:
    return [f for root in PLUGIN_ROOTS for f in sorted(root.rglob("*.py"))
            if "tests" not in f.relative_to(root).parts[:-1]]


@pytest.mark.parametrize("path", sdk_files(), ids=lambda p: p.name)
def test_sdk_imports_nothing_of_ours(path: Path) -> None:
    allowed = SDK_TESTKIT_ALLOWED if "testkit" in path.parts else SDK_ALLOWED
    extra = third_party(imported_roots(path)) - allowed
    assert not extra, f"{path.relative_to(ROOT)} imports {sorted(extra)}"


def test_there_are_plugins_to_check() -> None:
    assert plugin_files(), "no plugin sources found: the rule below would check nothing"


@pytest.mark.parametrize("path", plugin_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_sdk(path: Path) -> None:
    roots = imported_roots(path)
    assert "cartera" not in roots, f"{path.relative_to(ROOT)} imports the core"


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from cartera.portfolio import service\nimport cartera_sdk\n")
    assert "cartera" in imported_roots(bad)
