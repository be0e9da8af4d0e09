#!/usr/bin/env python3
"""Set up and run Cartera with nothing but Python >= 3.11.

    python3 dev.py demo   # install, migrate, load the demo portfolio, serve on :8000
    python3 dev.py test   # install, run the whole test suite (SQLite; PostgreSQL if
                          # CARTERA_TEST_DATABASE_URL is set)

Both create ``.venv`` on first use and reinstall only when the project files change.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".cartera-install"


def _fingerprint() -> str:
    files = [ROOT / "pyproject.toml", ROOT / "sdk" / "pyproject.toml",
             *sorted((ROOT / "plugins").glob("*/pyproject.toml")),
             *sorted((ROOT / "tests").glob("**/pyproject.toml"))]
    digest = hashlib.sha256()
    for f in files:
        if f.exists():
            digest.update(f.read_bytes())
    return digest.hexdigest()


def install() -> None:
    if sys.version_info < (3, 11):
        raise SystemExit("Cartera needs Python 3.11 or newer")
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.create(VENV, with_pip=True)
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    packages = ["-e", str(ROOT / "sdk"), "-e", f"{ROOT}[dev]"]
    for plugin in sorted((ROOT / "plugins").glob("*/pyproject.toml")):
        packages += ["-e", str(plugin.parent)]
    for plugin in sorted((ROOT / "tests").glob("**/pyproject.toml")):
        packages += ["-e", str(plugin.parent)]
    print("installing Cartera and its dependencies ...", flush=True)
    subprocess.run([*pip, *packages], check=True)
    STAMP.write_text(_fingerprint())


def shipped_plugins() -> str:
    """Entry-point names of the plugins in plugins/ (not the test fixtures also installed)."""
    import tomllib

    names: list[str] = []
    for project in sorted((ROOT / "plugins").glob("*/pyproject.toml")):
        meta = tomllib.loads(project.read_text())
        names += meta.get("project", {}).get("entry-points", {}).get("cartera", {})
    return ",".join(names)


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "help"
    if command not in {"demo", "test"}:
        print(__doc__)
        return 2
    install()
    if command == "demo":
        env = {**os.environ}
        env.setdefault("CARTERA_PLUGINS", shipped_plugins())
        return subprocess.call([str(BIN / "cartera"), "demo", *sys.argv[2:]], cwd=ROOT,
                               env=env)
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *sys.argv[2:]], cwd=ROOT)


if __name__ == "__main__":
    raise SystemExit(main())
