"""Declarative base and the column types every domain shares."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    TypeDecorator,
    type_coerce,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from cartera.crypto import payload_keyring, pii_cipher

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an ``INTEGER PRIMARY KEY``; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JsonType = JSON().with_variant(postgresql.JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware instant stored in UTC; naive values are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: instants must carry a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SealedText(TypeDecorator[str]):
    """Personal data, sealed at rest (:class:`~cartera.crypto.PiiCipher`): values are sealed
    when bound and opened when read, so ORM and Core statements see plaintext. Equality
    (``==``, ``in_``) still works, sealed under the primary key; while an old master key is
    still live use :func:`sealed_in`. Raw SQL that bypasses the type must seal and open with
    :func:`~cartera.crypto.pii_cipher` and the same ``field``; SQL functions over the
    plaintext (``lower``, ``LIKE``, lengths) do not apply to these columns."""

    impl = Text
    cache_ok = True

    def __init__(self, field: str) -> None:
        super().__init__()
        self.field = field

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else pii_cipher().seal(value, self.field)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else pii_cipher().open(value, self.field)


def payload_context(field: str) -> bytes:
    """The associated data a sealed payload of ``field`` (``"table.column"``) is sealed
    with: a value moved into another column does not open."""
    return b"cartera-payload:" + field.encode()


def seal_payload(data: bytes, field: str) -> bytes:
    """``data`` sealed (randomized AES-256-GCM under the primary master key) for ``field``:
    what :class:`SealedBytes` and :class:`SealedJson` store; for raw SQL that bypasses them."""
    return payload_keyring().seal(data, context=payload_context(field))


def open_payload(token: bytes, field: str) -> bytes:
    """The plaintext of :func:`seal_payload`, opened with whichever live key sealed it;
    ``ValueError`` or ``cryptography.exceptions.InvalidTag`` for anything else."""
    return payload_keyring().open(bytes(token), context=payload_context(field))


def seal_json(value: Any, field: str) -> bytes:
    """A JSON value sealed as :class:`SealedJson` stores it."""
    return seal_payload(msgspec.json.encode(value), field)


def open_json(token: bytes, field: str) -> Any:
    """The JSON value of :func:`seal_json`'s output."""
    return msgspec.json.decode(open_payload(token, field))


class SealedBytes(TypeDecorator[bytes]):
    """Bytes carrying personal data that are never looked up by value (raw provider
    bodies), sealed at rest with randomized AES-256-GCM (:func:`seal_payload`): sealed when
    bound, opened when read, so ORM and Core statements see the plaintext. Nothing about the
    value can be queried in SQL (not even equality: each seal differs). Raw SQL that
    bypasses the type seals and opens with :func:`seal_payload` / :func:`open_payload` and
    the same ``field``; ``cartera secrets rotate`` reseals the column
    (every column of this type: :func:`cartera.secrets_rotation.sealed_payloads`)."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, field: str) -> None:
        super().__init__()
        self.field = field

    def process_bind_param(self, value: bytes | None, dialect: Any) -> bytes | None:
        return None if value is None else seal_payload(bytes(value), self.field)

    def process_result_value(self, value: bytes | None, dialect: Any) -> bytes | None:
        return None if value is None else open_payload(value, self.field)


class SealedString(TypeDecorator[str]):
    """Text carrying personal data that is never looked up or matched in SQL (a provider's
    error text echoing an address, an import's row error quoting the rejected value, a
    webhook request's URL), sealed like :class:`SealedBytes` as its UTF-8 bytes."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, field: str) -> None:
        super().__init__()
        self.field = field

    def process_bind_param(self, value: str | None, dialect: Any) -> bytes | None:
        return None if value is None else seal_payload(value.encode(), self.field)

    def process_result_value(self, value: bytes | None, dialect: Any) -> str | None:
        return None if value is None else open_payload(value, self.field).decode()


class SealedJson(TypeDecorator[Any]):
    """A JSON value carrying personal data that is never queried inside SQL (rendered
    messages, their variables, provider payloads, audited changes), sealed at rest like
    :class:`SealedBytes`: the value is JSON-encoded (msgspec) and sealed when bound, opened
    and decoded when read. Python ``None`` is SQL ``NULL``. JSON operators, paths and
    comparisons do not apply to these columns: a part SQL must see lives in its own column.
    Raw SQL uses :func:`seal_json` / :func:`open_json` with the same ``field``."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, field: str) -> None:
        super().__init__()
        self.field = field

    def process_bind_param(self, value: Any, dialect: Any) -> bytes | None:
        return None if value is None else seal_json(value, self.field)

    def process_result_value(self, value: bytes | None, dialect: Any) -> Any:
        return None if value is None else open_json(value, self.field)


def sealed_in(column: Any, values: list[str]) -> ColumnElement[bool]:
    """``column IN values`` for a :class:`SealedText` column, matching rows sealed under
    every live master key (rows not yet resealed after a rotation included)."""
    field = column.type.field
    cipher = pii_cipher()
    if cipher.single_key:
        return column.in_(values)  # type: ignore[no-any-return]
    forms = [form for value in values for form in cipher.lookup_forms(value, field)]
    return type_coerce(column, Text).in_(forms)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class, typed as one (for set-based statements)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class TenantScoped:
    """Mixin for rows that belong to one tenant; tenant sessions filter them automatically."""

    @declared_attr
    def tenant_id(cls) -> Mapped[int]:
        return mapped_column(BigId, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)


class DebtorOwned(TenantScoped):
    """Mixin for rows that belong to one debtor (the class declares ``debtor_id``).

    ``(tenant_id, debtor_id)`` references ``debtors (tenant_id, id)``: a row can never name
    another tenant's debtor, and one foreign-key check (not two) guards each insert, which
    bulk loads of millions of rows feel. Tables list :func:`debtor_fk` in their arguments.
    """

    @declared_attr
    def tenant_id(cls) -> Mapped[int]:
        return mapped_column(BigId, nullable=False)


def debtor_fk(deferrable: bool = False) -> ForeignKeyConstraint:
    """The ``(tenant_id, debtor_id)`` reference of a :class:`DebtorOwned` table;
    ``deferrable``: ``DEFERRABLE INITIALLY IMMEDIATE`` (checked as an ordinary reference,
    but a transaction may defer it, see :data:`cartera.strategies.simulate.DEFERRED`)."""
    return ForeignKeyConstraint(["tenant_id", "debtor_id"], ["debtors.tenant_id", "debtors.id"],
                                ondelete="CASCADE", **deferred_check(deferrable))


def deferred_check(deferrable: bool = True) -> dict[str, Any]:
    """The keyword arguments of a reference that a transaction may defer
    (``DEFERRABLE INITIALLY IMMEDIATE``: checked at the end of each statement unless the
    transaction says ``SET CONSTRAINTS ... DEFERRED``)."""
    return {"deferrable": True, "initially": "IMMEDIATE"} if deferrable else {}
