"""Docs stay complete: every hook and every argument appears in README.md (datasette style)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import cartera_sdk
from cartera_sdk import hookspecs, make_plugin_manager, signatures, testkit
from cartera_sdk.testkit import ChannelConformance

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
PM = make_plugin_manager()
HOOKS = sorted(
    name for name in dir(PM.hook) if not name.startswith("_") and hasattr(hookspecs, name)
)


def test_all_hookspecs_are_registered() -> None:
    spec_functions = {
        name for name, obj in vars(hookspecs).items()
        if inspect.isfunction(obj) and hasattr(obj, "cartera_spec")
    }  # fmt: skip
    assert spec_functions == set(HOOKS)
    assert set(HOOKS) <= set(hookspecs.__all__)


@pytest.mark.parametrize("hook", HOOKS)
def test_hooks_are_documented(hook: str) -> None:
    caller = getattr(PM.hook, hook)
    assert caller.spec is not None
    args = caller.spec.argnames
    heading = f"### {hook}({', '.join(args)})"
    assert heading in README, f"README.md lacks the heading {heading!r}"
    section = README.split(heading, 1)[1].split("\n### ", 1)[0]
    for arg in args:
        assert f"`{arg}`" in section, f"argument {arg!r} of {hook} is not documented"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_docstrings_state_version(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert "versionadded:: 0.1" in doc
    for arg in getattr(PM.hook, hook).spec.argnames:
        assert f":param {arg}:" in doc


def _undocumented(readme: str) -> list[str]:
    missing = []
    for hook in HOOKS:
        args = PM.hook.__dict__[hook].spec.argnames
        if f"### {hook}({', '.join(args)})" not in readme:
            missing.append(hook)
    return missing


def test_doc_check_detects_a_missing_hook() -> None:
    assert _undocumented(README) == []
    mutilated = README.replace("### on_promise_broken(event)", "### on_promise_broken()")
    assert _undocumented(mutilated) == ["on_promise_broken"]


PUBLIC_MODULES: tuple[ModuleType, ...] = (cartera_sdk, signatures, testkit)
PUBLIC_NAMES = sorted({name for module in PUBLIC_MODULES for name in module.__all__
                       if not name.startswith("__")})
CHANNEL_TESTS = sorted(n for n in dir(ChannelConformance) if n.startswith("test_"))


def _undocumented_names(readme: str, names: list[str]) -> list[str]:
    """Names that never appear in backticks (optionally after a dotted module path)."""
    return [n for n in names if not re.search(rf"`(?:[\w.]+\.)?{re.escape(n)}\b", readme)]


def test_every_public_name_is_documented() -> None:
    missing = _undocumented_names(README, PUBLIC_NAMES)
    assert missing == [], f"README.md does not document {missing}"


def test_every_channel_conformance_test_is_explained() -> None:
    missing = [n for n in CHANNEL_TESTS if f"| `{n}` |" not in README]
    assert missing == [], f"README.md's conformance table lacks {missing}"


def test_name_check_detects_an_undocumented_name() -> None:
    mutilated = README.replace("`Price", "Price")
    assert _undocumented_names(mutilated, PUBLIC_NAMES) == ["Price"]
