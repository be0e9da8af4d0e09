"""Every job kind is reachable from the catalog, so a bare worker process can run it."""

from __future__ import annotations

import ast
from pathlib import Path

from cartera.jobs import catalog
from cartera.jobs.registry import HANDLERS

CORE = Path(catalog.__file__).resolve().parents[1]


def test_every_module_with_a_job_handler_is_in_the_catalog() -> None:
    registering = set()
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and any(
                isinstance(d, ast.Call) and getattr(d.func, "id", None) == "job"
                for d in node.decorator_list
            ):
                registering.add("cartera." + ".".join(path.relative_to(CORE).with_suffix("")
                                                      .parts))
    assert registering, "found no @job handlers: the scan is broken"
    assert registering <= set(catalog.HANDLER_MODULES)


def test_load_all_registers_the_kinds() -> None:
    catalog.load_all()
    assert {"import", "webhooks.process", "messages.send"} <= set(HANDLERS)
