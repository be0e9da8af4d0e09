"""``cartera demo`` as a newcomer runs it: a fresh home, the embedded database and EVERY
installed plugin, the six country packs included (the rest of the suite runs without them,
so only this test sees the demo's strategies judged by the packs at activation)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

CLI = Path(sys.executable).with_name("cartera")


@pytest.mark.skipif(not CLI.exists(), reason="the cartera console script is not installed")
def test_the_demo_prepares_with_every_pack_installed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CARTERA_") or k == "CARTERA_LOG_LEVEL"}
    env["CARTERA_HOME"] = str(tmp_path)
    done = subprocess.run([str(CLI), "demo", "--no-serve", "--debtors", "300"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "client_secret:" in done.stdout and "loaded 300 debtors" in done.stdout

    databases = list(tmp_path.glob("*.db"))
    assert len(databases) == 1, databases
    with sqlite3.connect(databases[0]) as db:
        active = db.execute(
            "SELECT count(*) FROM strategy_versions WHERE status = 'active'").fetchone()[0]
        planned = db.execute("SELECT count(*) FROM actions").fetchone()[0]
        packs = db.execute(
            "SELECT count(DISTINCT source) FROM compliance_decisions "
            "WHERE source LIKE 'compliance_%'").fetchone()[0]
    assert active == 3
    assert planned > 0
    assert packs >= 3, "the country packs judged nothing: were they loaded?"

    again = subprocess.run([str(CLI), "demo", "--no-serve", "--debtors", "300"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "demo portfolio already loaded (300 debtors)" in again.stdout


@pytest.mark.skipif(not CLI.exists(), reason="the cartera console script is not installed")
def test_the_demo_serves(tmp_path: Path) -> None:
    """The README's first command goes on to serve the API (it once stopped at the
    banner: ``cartera serve``'s options were not all the demo's)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CARTERA_") or k == "CARTERA_LOG_LEVEL"}
    env["CARTERA_HOME"] = str(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([str(CLI), "demo", "--debtors", "50", "--port", str(port)],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        status = None
        deadline = time.monotonic() + 240
        while status != 200 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code
            except httpx.TransportError:
                time.sleep(0.5)
        assert status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
