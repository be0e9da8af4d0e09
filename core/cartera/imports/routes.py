"""HTTP routes: /v1/imports (upload a file, follow the import, read its row errors)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import anyio
from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.context import Actor, app_context
from cartera.api.openapi import RAW_BODY
from cartera.api.pagination import Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.errors import CarteraError, Invalid, NotFound
from cartera.imports import jobs as _jobs  # noqa: F401  (registers the "import" job)
from cartera.imports import rows
from cartera.imports.models import ImportRowError, ImportRun, ImportStatus
from cartera.imports.schemas import ImportOut, ImportRowErrorOut
from cartera.jobs.models import Job
from cartera.settings import Settings

FORMAT_DESCRIPTION = """
**NDJSON** (`Content-Type: application/x-ndjson`): one JSON object per line, each with a
`type`:

* `debtor`: the fields of *CreateDebtor* except `related_parties`; `contact_points` as
  there; `tags` replace the debtor's tags.
* `obligation`: the fields of *CreateObligation*, with the debtor as `debtor_external_ref`
  (required) and the portfolio as `portfolio_code` (optional) instead of ids.
* `payment`: the fields of *CreatePayment* with `external_ref` and `debtor_external_ref`
  required and no explicit `allocations` (payments go to the oldest due first).

```
{"type":"debtor","external_ref":"C-1","name":"Ana","country":"PE","contact_points":[{"kind":"phone","value":"987654321"}]}
{"type":"obligation","external_ref":"F-1","debtor_external_ref":"C-1","kind":"invoice","currency":"PEN","original_amount":"120.50","due_date":"2025-01-31"}
{"type":"payment","external_ref":"P-1","debtor_external_ref":"C-1","currency":"PEN","amount":"20.50","paid_on":"2025-02-03"}
```

**Upload** the file as the body itself (`Content-Type: application/x-ndjson` or `text/csv`,
streamed to disk), or as the part `file` of a `multipart/form-data` body (its media type, or
else its name's suffix `.ndjson`, `.jsonl`, `.csv`, gives the format; its name is the
import's `filename` unless that parameter is given).

**CSV** (`Content-Type: text/csv`): a header row with a `type` column plus any of the flat
fields above (names match case-insensitively); empty cells mean "not given". Contact points
are the columns `phone`, `email` and `whatsapp`; `tags` are `;`-separated; attributes are
columns named `attributes.<key>`.

**Reading the file**: `encoding` (`utf-8`, `cp1252`, `latin-1`), and for CSV `delimiter`
(`,`, `;`, tab, `|`) and `decimal_mark` (`.` or `,`: `1.234,56`). Each is detected when not
given: UTF-8 if the first MiB is valid UTF-8, else cp1252 (a later line that is not valid
UTF-8 is then a row error at that line); the separator the header holds most of; a decimal
comma when cells are separated by `;`. The import shows what it was read with.

Rows are upserted by `external_ref` (importing the same file twice changes nothing); within
the file debtors must come before (on an earlier line than) the obligations and payments that
name them. A bad row (an invalid required field, a NUL character, bytes that are not text)
is skipped whole and reported with its line, field and reason at
`GET /v1/imports/{id}/errors`, severity `error`; the others are applied. An invalid optional
field (a contact point, a tag, an attribute, `national_id`, `subdivision`, `timezone`,
`zone`, `risk_score`; `product`, `issue_date`; `method`, `reference`) is dropped and reported
there with severity `warning`, and the row is kept.

The uploaded file is deleted when the import ends (succeeded or failed), or
`CARTERA_IMPORT_RETENTION_DAYS` days later. An import that fails after some rows were
applied keeps them, with the balances of their debtors brought up to date.
"""

CONTENT_TYPES = {"application/x-ndjson": "ndjson", "application/ndjson": "ndjson",
                 "application/jsonl": "ndjson", "text/csv": "csv"}
MAX_IMPORT_BYTES = Settings.max_import_bytes
READ = secured("imports:read")


class UnsupportedMediaType(CarteraError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class BodyTooLarge(CarteraError):
    status = 413
    code = "body_too_large"
    title = "Request body too large"


def format_of(content_type: str | None) -> str:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"send the file as application/x-ndjson or text/csv, not {media or 'nothing'!r}",
            param="Content-Type")
    return CONTENT_TYPES[media]


async def save_upload(request: Request[Any, Any, Any], target: Path, limit: int) -> int:
    """Stream the body to ``target`` (never all in memory); returns its size in bytes."""
    size = 0
    async with await anyio.open_file(target, "wb") as f:
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise BodyTooLarge(f"an import file may be at most {limit} bytes")
            await f.write(part)
    if size == 0:
        raise Invalid("the file is empty", code="empty_file")
    return size


MULTIPART = "multipart/form-data"
SUFFIXES = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}


async def multipart_file(request: Request[Any, Any, Any]) -> UploadFile | None:
    """The ``file`` part of a multipart upload (None when the body is the file itself)."""
    media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media != MULTIPART:
        return None
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise Invalid("send the file in a multipart part named 'file'", code="missing_file",
                      param="file")
    return upload


def part_format(upload: UploadFile) -> str:
    """A part's format: its media type, else its file name's suffix."""
    media = (upload.content_type or "").split(";", 1)[0].strip().lower()
    if media in CONTENT_TYPES:
        return CONTENT_TYPES[media]
    suffix = Path(upload.filename or "").suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    raise UnsupportedMediaType(
        "the 'file' part must be application/x-ndjson or text/csv (or named *.ndjson, "
        f"*.jsonl or *.csv), not {media or 'nothing'!r}", param="file")


async def save_part(upload: UploadFile, target: Path, limit: int) -> int:
    """Copy a multipart file part to ``target`` in chunks; returns its size in bytes."""
    size = 0
    try:
        async with await anyio.open_file(target, "wb") as f:
            while part := await upload.read(1 << 20):
                size += len(part)
                if size > limit:
                    raise BodyTooLarge(f"an import file may be at most {limit} bytes")
                await f.write(part)
    finally:
        await upload.close()
    if size == 0:
        raise Invalid("the file is empty", code="empty_file")
    return size


Encoding = Literal["utf-8", "cp1252", "latin-1"]
Delimiter = Literal[",", ";", "\t", "|"]
DecimalMark = Literal[".", ","]


@dataclass(frozen=True)
class Reading:
    """How the client says the file is to be read (``None``: detect)."""

    encoding: str | None = None
    delimiter: str | None = None
    decimal_mark: str | None = None


def read_options(path: Path, fmt: str, reading: Reading) -> rows.ReadOptions:
    """The options given, the rest detected; an invalid CSV header is a 422."""
    for param in ("delimiter", "decimal_mark"):
        if fmt != "csv" and getattr(reading, param) is not None:
            raise Invalid(f"{param} applies to CSV files only", code="csv_only", param=param)
    try:
        return rows.detect(str(path), fmt, reading.encoding, reading.delimiter,
                           reading.decimal_mark)
    except rows.FileError as exc:
        raise Invalid(str(exc), code="invalid_csv_header", param="header") from None


def import_out(run: ImportRun, processed: int | None) -> ImportOut:
    return ImportOut(
        id=run.id, status=cast(ImportStatus, run.status), format=run.format, filename=run.filename,
        size_bytes=run.size_bytes, job_id=run.job_id, rows_total=run.rows_total,
        rows_processed=processed or 0, rows_applied=run.rows_applied,
        rows_failed=run.rows_failed, error=run.error, encoding=run.encoding,
        delimiter=run.delimiter, decimal_mark=run.decimal_mark, created_at=run.created_at,
        finished_at=run.finished_at, file_deleted_at=run.file_deleted_at)


def _with_progress() -> Any:
    return select(ImportRun, Job.progress_done).outerjoin(Job, Job.id == ImportRun.job_id)


async def get_import(session: AsyncSession, import_id: int) -> tuple[ImportRun, int | None]:
    row = (await session.execute(_with_progress().where(
        ImportRun.id == import_id, ImportRun.tenant_id == session.info["tenant_id"]))).first()
    if row is None:
        raise NotFound(f"import {import_id} not found")
    return row[0], row[1]


async def create_import(request: Request[Any, Any, Any], session: AsyncSession, actor: Actor,
                        filename: str | None, reading: Reading = Reading()) -> ImportRun:
    """Save the upload, then create the import and its job in the caller's transaction."""
    ctx = app_context(request)
    upload = await multipart_file(request)
    if upload is not None:
        fmt = part_format(upload)
        filename = filename or (upload.filename or None)
        if filename is not None:
            filename = filename[:300]
    else:
        fmt = format_of(request.headers.get("content-type"))
    folder = ctx.settings.home / "imports" / str(actor.tenant_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.{fmt}"
    try:
        if upload is not None:
            size = await save_part(upload, path, ctx.settings.max_import_bytes)
        else:
            size = await save_upload(request, path, ctx.settings.max_import_bytes)
        options = await anyio.to_thread.run_sync(read_options, path, fmt, reading)
        run = ImportRun(tenant_id=actor.tenant_id, format=fmt, filename=filename,
                        file_path=str(path), size_bytes=size, status="queued",
                        **recorded(options, fmt))
        session.add(run)
        await session.flush()
        job = await ctx.jobs.enqueue(session, actor.tenant_id, "import", {
            "import_id": run.id, "client_id": actor.client_id, "request_id": actor.request_id})
        run.job_id = job.id
        await session.flush()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return run


def recorded(options: rows.ReadOptions, fmt: str) -> dict[str, str | None]:
    """The :class:`ImportRun` columns that record how its file is read."""
    csv = fmt == "csv"
    return {"encoding": options.encoding, "delimiter": options.delimiter if csv else None,
            "decimal_mark": options.decimal_mark if csv else None}


class ImportController(Controller):
    path = "/v1/imports"
    tags = ["Imports"]

    @post("/", summary="Start an import", operation_id="CreateImport", status_code=202,
          description=FORMAT_DESCRIPTION, request_max_body_size=MAX_IMPORT_BYTES,
          responses={415: ResponseSpec(None, description="The body is not NDJSON or CSV.",
                                       media_type="application/problem+json")},
          opt={RAW_BODY: (MULTIPART, "application/x-ndjson", "text/csv")},
          **secured("imports:write"))
    async def create(
        self, request: Request[Any, Any, Any], session: AsyncSession, actor: Actor,
        filename: Annotated[str | None, Parameter(
            max_length=300, description="The file's name, kept for reference.")] = None,
        encoding: Annotated[Encoding | None, Parameter(
            description="The file's text encoding; detected when not given.")] = None,
        delimiter: Annotated[Delimiter | None, Parameter(
            description="CSV: the cell separator; detected from the header when not given."
        )] = None,
        decimal_mark: Annotated[DecimalMark | None, Parameter(
            description="CSV: the decimal mark of amounts; `,` when not given and cells are "
                        "separated by `;`, else `.`.")] = None,
    ) -> ImportOut:
        """Upload an NDJSON or CSV file of debtors, obligations and payments; it is imported
        by a background job (follow it here or at `/v1/jobs/{job_id}`)."""
        reading = Reading(encoding, delimiter, decimal_mark)
        return import_out(await create_import(request, session, actor, filename, reading), 0)

    @get("/", summary="List imports", operation_id="ListImports", **READ)
    async def index(self, session: AsyncSession, limit: Limit = 20,
                   starting_after: StartingAfter = None) -> Page[ImportOut]:
        """Imports, oldest first, with their status and counts."""
        result = (await session.execute(paginate(_with_progress(), ImportRun.id, limit,
                                                 starting_after))).all()
        page = page_of([r[0] for r in result], limit, lambda r: r)
        progress = {r[0].id: r[1] for r in result}
        return Page(data=[import_out(r, progress[r.id]) for r in page.data],
                    has_more=page.has_more, next_cursor=page.next_cursor)

    @get("/{import_id:int}", summary="Get an import", operation_id="GetImport", **READ)
    async def retrieve(self, import_id: int, session: AsyncSession) -> ImportOut:
        """One import: status, rows processed of the total, applied and failed."""
        return import_out(*await get_import(session, import_id))

    @get("/{import_id:int}/errors", summary="List an import's row errors",
         operation_id="ListImportErrors", **READ)
    async def errors(self, import_id: int, session: AsyncSession, limit: Limit = 20,
                     starting_after: StartingAfter = None) -> Page[ImportRowErrorOut]:
        """Every rejected row and dropped field in line order: line, field, stable code,
        reason and severity (`error`: the row was skipped; `warning`: the field was)."""
        await get_import(session, import_id)
        stmt = select(ImportRowError).where(ImportRowError.import_id == import_id)
        found = (await session.scalars(paginate(stmt, ImportRowError.id, limit,
                                                starting_after))).all()
        return page_of(found, limit, lambda e: ImportRowErrorOut(
            id=e.id, line=e.line, field=e.field, code=e.code, reason=e.reason,
            severity=e.severity))
