"""``cartera import FILE --tenant SLUG [--format ndjson|csv] [--encoding E] [--delimiter D]
[--decimal-mark M]``: the import pipeline, run synchronously in this process with a progress
line; prints the counts and the first errors and warnings. Encoding, delimiter and decimal
mark are detected when not given, as for ``POST /v1/imports``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import cli
from cartera.api.context import Actor
from cartera.clock import now
from cartera.imports import rows
from cartera.imports.models import ImportRowError, ImportRun
from cartera.jobs.models import Job
from cartera.jobs.registry import JobContext
from cartera.settings import get_settings

log = logging.getLogger("cartera.imports")

SHOW_ERRORS = 20


class _PrintingContext(JobContext):
    async def progress(self, done: int, total: int | None = None) -> None:
        await super().progress(done, total)
        print(f"\r{done:,} / {total or 0:,} rows", end="", file=sys.stderr, flush=True)


async def _create(sessionmaker: async_sessionmaker[AsyncSession], slug: str, path: Path,
                  fmt: str, size: int, options: rows.ReadOptions) -> tuple[int, int, int]:
    """Make the import and its job (running, here); returns (tenant id, import id, job id)."""
    from cartera.imports import jobs  # noqa: F401  (registers the job kind)
    from cartera.imports.routes import recorded
    from cartera.jobs.runner import insert_job
    from cartera.tenants.models import Tenant

    async with sessionmaker() as session, session.begin():
        tenant_id = await session.scalar(select(Tenant.id).where(Tenant.slug == slug))
        if tenant_id is None:
            raise SystemExit(f"no tenant {slug!r}")
        run = ImportRun(tenant_id=tenant_id, format=fmt, filename=path.name,
                        file_path=str(path), size_bytes=size, status="queued",
                        **recorded(options, fmt))
        session.add(run)
        await session.flush()
        job = await insert_job(session, tenant_id, "import", {"import_id": run.id})
        job.status, job.started_at, job.attempts = "running", now(), 1
        run.job_id = job.id
        return tenant_id, run.id, job.id


async def _errors(sessionmaker: async_sessionmaker[AsyncSession],
                  import_id: int) -> list[ImportRowError]:
    async with sessionmaker() as session:
        return list((await session.scalars(
            select(ImportRowError).where(ImportRowError.import_id == import_id)
            .order_by(ImportRowError.id).limit(SHOW_ERRORS))).all())


async def run_cli_import(path: Path, slug: str, fmt: str, size: int,
                         options: rows.ReadOptions | None = None) -> int:
    """Import ``path`` (absolute) for tenant ``slug``, read with ``options`` (default:
    detected); the exit code: 0 clean (warnings allowed), 3 rows rejected, 1 failed."""
    from cartera.db.engine import make_engine, make_sessionmaker
    from cartera.imports.pipeline import ImportFailed, run_import

    options = options or rows.detect(str(path), fmt)
    engine = make_engine(get_settings().database_url)
    sessionmaker = make_sessionmaker(engine)
    try:
        tenant_id, import_id, job_id = await _create(sessionmaker, slug, path, fmt, size,
                                                     options)
        ctx = _PrintingContext(job_id, tenant_id, {"import_id": import_id}, sessionmaker)
        status, error, result = "succeeded", None, None
        try:
            result = await run_import(sessionmaker, import_id, Actor(tenant_id, None, None),
                                      ctx.progress)
        except ImportFailed as exc:
            status, error = "failed", str(exc)
        async with sessionmaker() as session, session.begin():
            await session.execute(update(Job).where(Job.id == job_id).values(
                status=status, error=error, finished_at=now(),
                result=result.as_dict() if result else None))
        print(file=sys.stderr)
        return _report(import_id, result, error, await _errors(sessionmaker, import_id))
    finally:
        await engine.dispose()


def _report(import_id: int, result: Any, error: str | None,
            errors: list[ImportRowError]) -> int:
    if result is None:
        print(f"import {import_id} failed: {error}")
        return 1
    print(f"import {import_id}: {result.rows_total:,} rows, {result.rows_applied:,} applied, "
          f"{result.rows_failed:,} rejected")
    for e in errors:
        warning = "warning: " if e.severity == "warning" else ""
        print(f"  line {e.line}: {warning}{e.field or '-'}: {e.reason} ({e.code})")
    if len(errors) == SHOW_ERRORS:
        print(f"  ... and maybe more (GET /v1/imports/{import_id}/errors)")
    return 0 if result.rows_failed == 0 else 3


def cmd_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"error: no file {path}", file=sys.stderr)
        return 2
    fmt = args.format or ("csv" if path.suffix.lower() == ".csv" else "ndjson")
    try:
        options = rows.detect(str(path), fmt, args.encoding, args.delimiter, args.decimal_mark)
    except rows.FileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return int(asyncio.run(run_cli_import(path.resolve(), args.tenant, fmt,
                                         path.stat().st_size, options)))


def add_command(sub: Any) -> None:
    p = sub.add_parser("import", help="bulk-import debtors, obligations and payments")
    p.add_argument("file", help="an NDJSON or CSV file (see POST /v1/imports for the format)")
    p.add_argument("--tenant", required=True, help="tenant slug")
    p.add_argument("--format", choices=rows.FORMATS,
                   help="default: from the file extension (.csv, else ndjson)")
    p.add_argument("--encoding", choices=rows.ENCODINGS,
                   help="the file's text encoding (default: detected, UTF-8 or cp1252)")
    p.add_argument("--delimiter", choices=rows.DELIMITERS,
                   help="CSV cell separator (default: detected from the header)")
    p.add_argument("--decimal-mark", choices=rows.DECIMAL_MARKS,
                   help="CSV decimal mark (default: ',' when cells are separated by ';')")
    p.set_defaults(fn=cmd_import)


cli._extra_commands.append(add_command)
