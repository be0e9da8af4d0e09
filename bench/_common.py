"""Helpers shared by the benchmarks: throwaway databases and timing."""

from __future__ import annotations

import statistics
from pathlib import Path

import psycopg
from psycopg import sql


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
