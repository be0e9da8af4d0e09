"""``cartera serve --workers N``: several uvicorn processes share the port and stop cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cartera.db import migrate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_with_two_workers_answers_and_stops_cleanly(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'workers.db'}"
    migrate.upgrade(url)
    port = _free_port()
    env = {**os.environ, "CARTERA_DATABASE_URL": url, "CARTERA_PLUGINS": "",
           "CARTERA_LOG_LEVEL": "WARNING"}
    cartera = Path(sys.executable).with_name("cartera")
    proc = subprocess.Popen([str(cartera), "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "2"], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        statuses: list[int] = []
        while time.monotonic() < deadline and len(statuses) < 20:
            try:
                statuses.append(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                                .status_code)
            except httpx.TransportError:
                time.sleep(0.3)
        assert statuses == [200] * 20
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                  text=True).stdout.split()
        assert len(children) >= 2  # the supervisor spawned its two workers
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert code == 0
    # The workers exit with the supervisor (allow them a moment on a loaded machine).
    left = [pid for pid in children if _alive(pid)]
    deadline = time.monotonic() + 30
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [pid for pid in left if _alive(pid)]
    for pid in left:
        os.kill(int(pid), signal.SIGKILL)
    assert left == []


def _alive(pid: str) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" not in status.read_text().lower()
    except FileNotFoundError:
        return False


def test_serve_refuses_zero_workers() -> None:
    cartera = Path(sys.executable).with_name("cartera")
    done = subprocess.run([str(cartera), "serve", "--workers", "0"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert "--workers must be at least 1" in done.stderr
