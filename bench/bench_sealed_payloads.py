"""What sealing a payload column costs: the same rows written (one executemany INSERT per
batch) and read back through a plain JSON column and through a ``SealedJson`` one.

    .venv/bin/python bench/bench_sealed_payloads.py [--rows 20000] [--batch 1000]
        [--database-url postgresql://postgres@127.0.0.1/bench_sealed_payloads]
        [--sqlite /tmp/bench_sealed_payloads.db]

Recreates the database(s), makes two tables alike but for the payload column's type (the
project's ``JsonType`` and ``SealedJson``), writes ``--rows`` rendered-message payloads
(``interactions.content``-like: text, to, subject) in batches, reads them all back, and
prints rows/s of each, plus the per-value seal and open cost in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import recreate_postgres, recreate_sqlite
from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, insert, select

from cartera.db.base import JsonType, SealedJson, open_json, seal_json
from cartera.db.engine import make_engine

ID = BigInteger().with_variant(Integer(), "sqlite")


def _tables() -> tuple[MetaData, Table, Table]:
    meta = MetaData()
    plain = Table("bench_plain", meta, Column("id", ID, primary_key=True),
                  Column("content", JsonType))
    sealed = Table("bench_sealed", meta, Column("id", ID, primary_key=True),
                   Column("content", SealedJson("bench_sealed.content")))
    return meta, plain, sealed


def _payload(i: int) -> dict[str, Any]:
    return {"kind": "sms", "to": f"+5198765{i % 10000:04d}", "subject": None,
            "text": f"Hola Rosa {i}, tu deuda de S/ 1,250.50 vencio el 2026-11-22. "
                    "Paga aqui: https://pay.example.com/l/abc123def456"}


async def run(url: str, rows: int, batch: int) -> dict[str, float]:
    meta, plain, sealed = _tables()
    engine = make_engine(url)
    out: dict[str, float] = {}
    try:
        async with engine.begin() as conn:
            await conn.run_sync(meta.create_all)
        for name, table in (("plain", plain), ("sealed", sealed)):
            started = time.perf_counter()
            for low in range(0, rows, batch):
                async with engine.begin() as conn:
                    await conn.execute(insert(table), [
                        {"id": i + 1, "content": _payload(i)}
                        for i in range(low, min(low + batch, rows))])
            out[f"{name} write rows/s"] = rows / (time.perf_counter() - started)
            started = time.perf_counter()
            async with engine.connect() as conn:
                got = (await conn.execute(select(table.c.content))).scalars().all()
            assert len(got) == rows and got[0]["text"].startswith("Hola Rosa")
            out[f"{name} read rows/s"] = rows / (time.perf_counter() - started)
    finally:
        await engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url",
                        default="postgresql://postgres@127.0.0.1/bench_sealed_payloads")
    parser.add_argument("--sqlite", metavar="PATH")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("CARTERA_MASTER_KEY",
                          base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    value = _payload(1)
    started = time.perf_counter()
    tokens = [seal_json(value, "bench") for _ in range(args.rows)]
    seal_us = (time.perf_counter() - started) / args.rows * 1e6
    started = time.perf_counter()
    for token in tokens:
        open_json(token, "bench")
    open_us = (time.perf_counter() - started) / args.rows * 1e6
    print(f"seal {seal_us:.1f} us, open {open_us:.1f} us per value; load "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    targets = [("PostgreSQL", recreate_postgres(args.database_url))]
    if args.sqlite:
        targets.append(("SQLite", recreate_sqlite(args.sqlite)))
    for label, url in targets:
        figures = asyncio.run(run(url, args.rows, args.batch))
        print(f"{label}: " + ", ".join(f"{k} {v:,.0f}" for k, v in figures.items()),
              flush=True)


if __name__ == "__main__":
    main()
