"""Helpers shared by the benchmarks: throwaway databases and timing."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from itertools import islice
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import text

from cartera.crypto import pii_cipher


def recreate_postgres(url: str) -> str:
    """Drop and create the database named in ``url`` (a plain postgresql:// URL)."""
    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def recreate_sqlite(path: str) -> str:
    p = Path(path).resolve()
    for suffix in ("", "-wal", "-shm"):
        Path(str(p) + suffix).unlink(missing_ok=True)
    return f"sqlite+aiosqlite:///{p}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


async def stage_sealed(session: Any, field: str, values: Iterable[tuple[int, str]],
                       batch: int = 50_000) -> None:
    """A temporary table ``bench_sealed(g, v)`` of ``values`` (key, plaintext) with each
    plaintext sealed for ``field`` (as :class:`~cartera.db.base.SealedText` stores it), for
    set-based fills to join: personal data cannot be made in SQL. PostgreSQL: COPY;
    SQLite: executemany; ``batch`` rows at a time."""
    conn = await session.connection()
    seal = pii_cipher().seal
    await conn.execute(text("DROP TABLE IF EXISTS bench_sealed"))
    await conn.execute(text("CREATE TEMPORARY TABLE bench_sealed "
                            "(g bigint PRIMARY KEY, v text NOT NULL)"))
    it = iter(values)
    if conn.dialect.name == "postgresql":
        raw = (await conn.get_raw_connection()).driver_connection
        async with raw.cursor() as cur, cur.copy("COPY bench_sealed (g, v) FROM STDIN") as copy:
            while rows := list(islice(it, batch)):
                await copy.write("".join(f"{g}\t{seal(v, field)}\n" for g, v in rows))
    else:
        while rows := list(islice(it, batch)):
            await conn.execute(text("INSERT INTO bench_sealed (g, v) VALUES (:g, :v)"),
                               [{"g": g, "v": seal(v, field)} for g, v in rows])
    await conn.execute(text("ANALYZE bench_sealed"))
