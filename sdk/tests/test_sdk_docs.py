"""Docs stay complete: every hook and every argument appears in README.md (datasette style)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from cartera_sdk import hookspecs, make_plugin_manager

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
