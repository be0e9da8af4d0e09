"""``cartera plugin new NAME --kind KIND``: write a plugin distribution that passes its tests.

The distribution has a ``pyproject.toml`` with the ``cartera`` entry point, the package
(one provider of the kind, registered by its hook), a README, a strict fake of the
provider's HTTP API (it refuses wrong credentials and unexpected fields, as the real one
would) and tests that run the SDK's conformance suite against the fake. Templates are in
:mod:`cartera.scaffold.templates`, one set per kind.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from cartera.scaffold.templates import COMMON, KINDS

__all__ = ["KINDS", "ScaffoldError", "new_plugin"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,40}$")


class ScaffoldError(ValueError):
    """The name, kind or target directory cannot be used (nothing was written)."""


def _names(name: str) -> dict[str, str]:
    return {"name": name, "package": f"cartera_{name}",
            "distribution": f"cartera-{name.replace('_', '-')}",
            "Class": "".join(part.capitalize() for part in name.split("_"))}


def new_plugin(name: str, kind: str, directory: Path) -> Path:
    """Write the distribution for plugin ``name`` of ``kind`` under ``directory`` and
    return its root (``directory / "cartera-<name>"``). Refuses a root that exists."""
    if not _NAME.fullmatch(name):
        raise ScaffoldError(f"plugin name {name!r} must match {_NAME.pattern}")
    if kind not in KINDS:
        raise ScaffoldError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    names = _names(name)
    root = directory / names["distribution"]
    if root.exists():
        raise ScaffoldError(f"{root} already exists")
    files = {**COMMON, **KINDS[kind]}
    for relative, template in files.items():
        path = root / Template(relative).substitute(names)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(template).substitute(names, kind=kind), encoding="utf-8")
    return root
