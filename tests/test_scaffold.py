"""``cartera plugin new`` writes, for every kind, a distribution whose own tests (the SDK's
conformance suite against its strict fake) pass unchanged.

The generated tests run in one subprocess with ``PYTHONPATH`` set to the generated
distributions instead of ``pip install -e`` into this venv (slow, and it would leave the
plugin installed): the tests load the plugin through the test kit (``FakeHost``), and the
entry point is checked in ``pyproject.toml``."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cartera.cli import main
from cartera.scaffold import KINDS, ScaffoldError, new_plugin


def test_every_kind_generates_a_distribution_whose_tests_pass(tmp_path: Path) -> None:
    roots = {}
    for kind in KINDS:
        assert main(["plugin", "new", f"acme_{kind}", "--kind", kind,
                     "--directory", str(tmp_path)]) == 0
        roots[kind] = tmp_path / f"cartera-acme-{kind}"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
         *[str(root / "tests") for root in roots.values()]], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, roots.values()))},
        capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    for kind in KINDS:  # each distribution's suite ran, and passed
        assert f"test_acme_{kind}_conformance.py::TestConformance::test_implements_protocol " \
            "PASSED" in run.stdout
    for kind, root in roots.items():
        meta = tomllib.loads((root / "pyproject.toml").read_text())["project"]
        assert meta["entry-points"]["cartera"] == {f"acme_{kind}": f"cartera_acme_{kind}"}
        assert "cartera-sdk>=1.0,<2" in meta["dependencies"]
        assert (root / "README.md").exists()
        assert (root / "tests" / f"acme_{kind}_fake.py").exists()


def test_names_kinds_and_existing_directories_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="must match"):
        new_plugin("Acme-SMS", "channel", tmp_path)
    with pytest.raises(ScaffoldError, match="kind must be one of"):
        new_plugin("acme", "fax", tmp_path)
    new_plugin("acme", "compliance", tmp_path)
    with pytest.raises(ScaffoldError, match="already exists"):
        new_plugin("acme", "channel", tmp_path)
    assert main(["plugin", "new", "acme", "--kind", "erp", "--directory", str(tmp_path)]) == 2
