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


# --- the layering of the domains (issue 12, item 10) --------------------------------------
# A domain calls the behaviour of the domains below it only; what changes for a debtor is
# re-derived upwards by the chain of cartera.changes, which the write paths call and each
# domain contributes a step to. Tables (a domain's ``models``) are the shared schema: any
# domain may read them (the balance summary reads payments, the debtor view their segment).

CORE = ROOT / "core" / "cartera"


def layers() -> tuple[str, ...]:
    from cartera.changes import LAYERS

    return LAYERS


def cartera_imports(path: Path) -> list[tuple[int, str]]:
    """Every ``cartera.*`` module ``path`` imports, at any depth (function-level too), as
    (line, dotted name); ``from cartera.x import y`` also yields ``cartera.x.y``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "cartera"]


def upward_imports(domain: str, path: Path) -> list[str]:
    order = layers()
    bad = []
    for line, name in cartera_imports(path):
        parts = name.split(".")
        if len(parts) < 2 or parts[1] not in order:
            continue
        if order.index(parts[1]) <= order.index(domain):
            continue
        if len(parts) >= 3 and parts[2] == "models":
            continue  # the schema: readable by all
        where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        bad.append(f"{where}:{line} imports {name}")
    return bad


@pytest.mark.parametrize("domain", layers()[:-1])
def test_domains_call_no_domain_above_them(domain: str) -> None:
    files = sorted((CORE / domain).rglob("*.py"))
    assert files, f"no sources for the domain {domain}"
    bad = [msg for f in files for msg in upward_imports(domain, f)]
    assert not bad, "\n".join(bad)


def test_the_chain_imports_no_domain() -> None:
    """cartera.changes is called by every domain: importing one would be a cycle."""
    names = {name for _, name in cartera_imports(CORE / "changes.py")}
    assert not {n for n in names if n.split(".")[1:2] and n.split(".")[1] in layers()}, names


def test_the_layering_catches_function_level_imports(tmp_path: Path) -> None:
    bad = tmp_path / "service.py"
    bad.write_text("from cartera.segmentation.models import Placement\n\n\n"
                   "def f():\n    from cartera.segmentation.service import evaluate\n")
    msgs = upward_imports("portfolio", bad)
    assert len(msgs) == 2 and all("segmentation.service" in m for m in msgs), msgs
    assert upward_imports("strategies", bad) == []


def test_every_step_of_the_chain_is_registered() -> None:
    from cartera import changes

    assert len(changes.steps()) == len(changes.ORDER)
