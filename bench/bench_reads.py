"""Reads at framework speed: a bare Litestar + msgspec app reading one debtor row with psycopg
and Cartera's ``GET /v1/debtors/{id}`` (bearer token) and a filtered list of 50, served side
by side in one run on the same PostgreSQL database and rows, driven by the same load
generator (``wrk`` when installed, else a small asyncio keep-alive client), with the ratio
Cartera/bare printed.

    .venv/bin/python bench/bench_reads.py [--database-url postgresql://postgres@127.0.0.1/x]
        [--debtors 5000] [--connections 32] [--seconds 10] [--rounds 2] [--workers 1]
        [--no-wrk]

Each round measures every case one after the other (bare, Cartera single, Cartera list with
the debtors' bodies kept, as a database in service has them, and the same list with them
computed, as right after an import: :mod:`cartera.portfolio.documents`), so the ratios
compare figures taken under the same machine load; then each case once more
at one connection for its p50. ``uptime`` is printed before and after. Each server's CPU
seconds (all its processes, from ``/proc``) per request are printed too, with the ratio
they give: on a shared machine throughput follows the CPU share a server happens to get,
while CPU a request is what the code costs. So is the database's: the CPU of the
PostgreSQL backends connected to the bench database (the servers' pools) a request, and the
ratio of server + database CPU a request (a list's JSON is built by the database).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import percentile, recreate_postgres

from cartera.auth.clients import create_client
from cartera.db import migrate
from cartera.db.engine import make_engine, make_sessionmaker
from cartera.demo.generator import load_demo_portfolio
from cartera.tenants.service import create_tenant

HERE = Path(__file__).resolve().parent
ZONES = ("Lima", "Callao", "Arequipa", "CDMX", "Guadalajara", "Monterrey", "Bogotá",
         "Medellín", "Santiago", "Valparaíso")


@dataclass
class Figures:
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float


async def prepare(url: str, debtors: int) -> tuple[str, str, list[int]]:
    from datetime import date

    from sqlalchemy import select

    from cartera.portfolio.models import Debtor

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            tenant = await create_tenant(session, slug="bench", name="bench", country="PE",
                                         currency="PEN")
            client, secret = await create_client(session, tenant.id, "bench")
            await load_demo_portfolio(session, tenant.id, debtors, 1, date.today())
            await session.commit()
            # A database in service has planner statistics (autovacuum): so does this one.
            await (await session.connection()).exec_driver_sql("ANALYZE")
            await session.commit()
            ids = list((await session.scalars(
                select(Debtor.id).where(Debtor.tenant_id == tenant.id))).all())
    finally:
        await engine.dispose()
    await build_bodies(url)
    return client.client_id, secret, ids


async def build_bodies(url: str) -> int:
    """Build every missing debtor body (what ``cartera worker``'s housekeeping does)."""
    from cartera.portfolio.documents import build_missing

    engine, started = make_engine(url), time.monotonic()
    try:
        total = await build_missing(make_sessionmaker(engine))
    finally:
        await engine.dispose()
    if total:
        print(f"debtor documents: {total} built in {time.monotonic() - started:.2f} s",
              flush=True)
    return total


def set_bodies(url: str, plain: str, kept: bool | None) -> None:
    """Before a case: the debtors' bodies built (``kept``), cleared, or as they are."""
    if kept:
        asyncio.run(build_bodies(url))
    elif kept is not None:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute("UPDATE debtor_docs SET body = NULL WHERE body IS NOT NULL")


# --- load generators --------------------------------------------------------------------

_LUA = """
local paths = {}
local headers = {}
local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then headers["Authorization"] = "Bearer " .. token end
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n * 7919) % #paths + 1], headers)
end
local errors = 0
response = function(status, headers, body)
  if status ~= 200 then errors = errors + 1 end
end
"""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(base: str, paths: list[str], token: str | None, connections: int,
            seconds: float) -> Figures:
    with tempfile.TemporaryDirectory() as tmp:
        script, listing = Path(tmp, "paths.lua"), Path(tmp, "paths.txt")
        script.write_text(_LUA)
        listing.write_text("\n".join(paths) + "\n")
        env = {**os.environ, "BENCH_PATHS": str(listing), "BENCH_TOKEN": token or ""}
        done = subprocess.run(
            ["wrk", "-t", "1", "-c", str(connections), "-d", f"{int(seconds)}s", "--latency",
             "-s", str(script), base], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed: {done.stderr or done.stdout}")
    out = done.stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    dist = out.split("Latency Distribution", 1)[-1]
    p50 = _ms(re.search(r"\b50%\s+([\d.]+(?:us|ms|s)\b)", dist).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\b99%\s+([\d.]+(?:us|ms|s)\b)", dist).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Figures(total, int(non2xx.group(1)) if non2xx else 0, rps, p50, p99)


async def _asyncio_load(host: str, port: int, paths: list[str], token: str | None,
                        connections: int, seconds: float) -> Figures:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    auth = f"Authorization: Bearer {token}\r\n" if token else ""

    async def conn(k: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        n = k
        try:
            while time.perf_counter() < deadline:
                n += 1
                path = paths[(n * 7919) % len(paths)]
                started = time.perf_counter()
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if not head.startswith(b"HTTP/1.1 200"):
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(conn(k) for k in range(connections)))
    elapsed = time.perf_counter() - started
    return Figures(len(latencies), errors, len(latencies) / elapsed,
                   percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000)


def load(base: str, paths: list[str], token: str | None, connections: int, seconds: float,
         use_wrk: bool) -> Figures:
    if use_wrk:
        return run_wrk(base, paths, token, connections, seconds)
    host, port = base.removeprefix("http://").split(":")
    return asyncio.run(_asyncio_load(host, int(port), paths, token, connections, seconds))


# --- servers ----------------------------------------------------------------------------

def wait_ready(url: str, within_s: float = 90.0) -> None:
    deadline = time.perf_counter() + within_s
    while time.perf_counter() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"server at {url} did not become ready")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a server's worker processes)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a server (all its processes) so far; Linux only."""
    return _cpu_of(_tree(pid))


def database_cpu_seconds(url: str) -> float:
    """User + system CPU seconds so far of the PostgreSQL backends connected to ``url``'s
    database (the servers' pooled connections; the server must run on this machine)."""
    with psycopg.connect(url, autocommit=True) as conn:
        pids = [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")]
    return _cpu_of(pids)


def _cpu_of(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url",
                        default="postgresql://postgres@127.0.0.1/cartera_bench_reads")
    parser.add_argument("--debtors", type=int, default=5_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes of each server (cartera serve --workers)")
    parser.add_argument("--no-wrk", action="store_true", help="use the asyncio load generator")
    parser.add_argument("--port", type=int, default=8797)
    args = parser.parse_args()
    use_wrk = not args.no_wrk and shutil.which("wrk") is not None
    print(f"load generator: {'wrk' if use_wrk else 'asyncio'}; {uptime()}", flush=True)

    # Signing keys are sealed with the master key; a throwaway one unless given.
    os.environ.setdefault("CARTERA_MASTER_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())
    url = recreate_postgres(args.database_url)
    migrate.upgrade(url)
    client_id, secret, ids = asyncio.run(prepare(url, args.debtors))
    rng = random.Random(7)
    sample = [rng.choice(ids) for _ in range(2_000)]
    plain = "postgresql://" + url.split("://", 1)[1]

    bin_dir = Path(sys.executable).parent
    bare_port, cartera_port = args.port, args.port + 1
    env = {**os.environ, "BARE_DATABASE_URL": plain, "PYTHONPATH": str(HERE),
           "CARTERA_DATABASE_URL": url, "CARTERA_LOG_LEVEL": "WARNING",
           "CARTERA_PLUGINS": os.environ.get("CARTERA_PLUGINS", "")}
    bare = subprocess.Popen([str(bin_dir / "uvicorn"), "_bare_reads:app", "--host",
                             "127.0.0.1", "--port", str(bare_port), "--no-access-log",
                             "--log-level", "warning", "--workers", str(args.workers)],
                            env=env, cwd=HERE)
    cartera = subprocess.Popen([str(bin_dir / "cartera"), "serve", "--host", "127.0.0.1",
                                "--port", str(cartera_port), "--workers", str(args.workers)]
                               if args.workers > 1 else
                               [str(bin_dir / "cartera"), "serve", "--host", "127.0.0.1",
                                "--port", str(cartera_port)], env=env)
    try:
        bare_base = f"http://127.0.0.1:{bare_port}"
        cartera_base = f"http://127.0.0.1:{cartera_port}"
        wait_ready(f"{bare_base}/debtors/{ids[0]}")
        wait_ready(f"{cartera_base}/healthz")
        token = httpx.post(f"{cartera_base}/oauth/token",
                           data={"grant_type": "client_credentials"},
                           auth=(client_id, secret)).json()["access_token"]
        lists = [f"/v1/debtors?zone={quote(z)}&dpd_min=30&limit=50" for z in ZONES]
        cases = [
            ("bare GET /debtors/{id}", bare_base, [f"/debtors/{i}" for i in sample], None,
             bare.pid, None),
            ("cartera GET /v1/debtors/{id}", cartera_base,
             [f"/v1/debtors/{i}" for i in sample], token, cartera.pid, None),
            ("cartera GET /v1/debtors?zone=..&dpd_min=30&limit=50", cartera_base, lists,
             token, cartera.pid, True),
            ("cartera same list, bodies computed", cartera_base, lists, token, cartera.pid,
             False),
        ]
        for _name, base, paths, tok, _pid, kept in cases:  # warm-up
            set_bodies(url, plain, kept)
            load(base, paths, tok, 4, 2, use_wrk)
        for round_no in range(1, args.rounds + 1):
            print(f"-- round {round_no} at {args.connections} connections; {uptime()}",
                  flush=True)
            figures, cpu, total = [], [], []
            for name, base, paths, tok, pid, kept in cases:
                set_bodies(url, plain, kept)
                before, db_before = cpu_seconds(pid), database_cpu_seconds(plain)
                f = load(base, paths, tok, args.connections, args.seconds, use_wrk)
                used = cpu_seconds(pid) - before
                db_used = database_cpu_seconds(plain) - db_before
                figures.append(f)
                done = max(f.requests, 1)
                cpu.append(used / done)
                total.append((used + db_used) / done)
                print(f"{name}: {f.rps:.0f} req/s, p50 {f.p50_ms:.1f} ms, "
                      f"p99 {f.p99_ms:.1f} ms ({f.requests} requests, {f.errors} non-200); "
                      f"server CPU {used:.1f} s, {cpu[-1] * 1000:.2f} ms a request; "
                      f"database CPU {db_used / done * 1000:.2f} ms a request",
                      flush=True)
            print(f"ratio cartera/bare: single GET {figures[1].rps / figures[0].rps:.0%}, "
                  f"list of 50 {figures[2].rps / figures[0].rps:.0%}; by server CPU a request "
                  f"(what a machine to itself would serve): single GET {cpu[0] / cpu[1]:.0%}, "
                  f"list of 50 {cpu[0] / cpu[2]:.0%}; by server + database CPU a request: "
                  f"single GET {total[0] / total[1]:.0%}, list of 50 {total[0] / total[2]:.0%}; "
                  f"list of 50 with bodies computed: {figures[3].rps / figures[0].rps:.0%} "
                  f"by req/s, {total[0] / total[3]:.0%} by server + database CPU",
                  flush=True)
        print(f"-- 1 connection; {uptime()}", flush=True)
        for name, base, paths, tok, _pid, kept in cases:
            set_bodies(url, plain, kept)
            f = load(base, paths, tok, 1, args.seconds, use_wrk)
            print(f"{name} at concurrency 1: p50 {f.p50_ms:.2f} ms, p99 {f.p99_ms:.2f} ms, "
                  f"{f.rps:.0f} req/s", flush=True)
        print(uptime(), flush=True)
    finally:
        stop(bare)
        stop(cartera)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
