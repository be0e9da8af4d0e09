"""Strict OData query handling shared by the SAP fakes: ``$filter``, ``$orderby``, ``$select``.

A field the entity does not have, an operator or literal outside the grammar, or a
comparison between different types (``IsCleared eq 'false'``) raises :class:`BadQuery`,
which the fakes answer with 400 — so a connector that builds a wrong query fails loudly.
Grammar: ``expr := and ('or' and)*``, ``and := term ('and' term)*``,
``term := '(' expr ')' | FIELD OP literal`` with ``OP`` in eq ne gt ge lt le and literals
``'text'``, ``datetime'YYYY-MM-DDTHH:MM:SS'``, ``true``, ``false``, ``null`` and integers.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<open>\()|(?P<close>\))|datetime'(?P<dt>[^']*)'|'(?P<str>(?:[^']|'')*)'"
    r"|(?P<num>-?\d+)(?![\w.])|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt,
    "ge": operator.ge, "lt": operator.lt, "le": operator.le,
}  # fmt: skip
Predicate = Callable[[dict[str, Any]], bool]


class BadQuery(ValueError):
    """The query is not one the real service would accept."""


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise BadQuery(f"cannot parse $filter near {text[position:position + 20]!r}")
        position = match.end()
        kind = match.lastgroup
        assert kind is not None
        value = match.group(kind)
        if kind == "dt":
            try:
                value = datetime.fromisoformat(value).date()
            except ValueError as exc:
                raise BadQuery(f"bad datetime literal {value!r}") from exc
            kind = "lit"
        elif kind == "str":
            value, kind = value.replace("''", "'"), "lit"
        elif kind == "num":
            value, kind = int(value), "lit"
        out.append((kind, value))
    return out


class _Parser:
    def __init__(self, text: str, fields: Collection[str]) -> None:
        self.tokens = _tokens(text)
        self.position = 0
        self.fields = fields

    def peek(self) -> tuple[str, Any]:
        return self.tokens[self.position] if self.position < len(self.tokens) else ("end", None)

    def take(self) -> tuple[str, Any]:
        token = self.peek()
        self.position += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.expr()
        if self.peek()[0] != "end":
            raise BadQuery(f"unexpected {self.peek()[1]!r} in $filter")
        return predicate

    def expr(self) -> Predicate:
        parts = [self.conjunction()]
        while self.peek() == ("word", "or"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else lambda row: any(p(row) for p in parts)

    def conjunction(self) -> Predicate:
        parts = [self.term()]
        while self.peek() == ("word", "and"):
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else lambda row: all(p(row) for p in parts)

    def term(self) -> Predicate:
        kind, value = self.take()
        if kind == "open":
            inner = self.expr()
            if self.take()[0] != "close":
                raise BadQuery("unbalanced parentheses in $filter")
            return inner
        if kind != "word" or value not in self.fields:
            raise BadQuery(f"unknown property {value!r} in $filter")
        field = value
        op_kind, op = self.take()
        if op_kind != "word" or op not in _OPS:
            raise BadQuery(f"unknown operator {op!r} in $filter")
        literal = self.literal()
        compare = _OPS[op]

        def predicate(row: dict[str, Any]) -> bool:
            actual = row.get(field)
            if literal is None or actual is None:
                return compare(actual, literal) if op in ("eq", "ne") else False
            if type(actual) is not type(literal):
                raise BadQuery(f"{field} is {type(actual).__name__}, compared with "
                               f"{type(literal).__name__}")  # fmt: skip
            return bool(compare(actual, literal))

        return predicate

    def literal(self) -> Any:
        kind, value = self.take()
        if kind == "lit":
            return value
        if kind == "word" and value in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[value]
        raise BadQuery(f"expected a literal, got {value!r}")


def compile_filter(text: str, fields: Collection[str]) -> Predicate:
    """A row predicate for ``$filter`` (type errors surface when it runs; see ``select_rows``)."""
    return _Parser(text, fields).parse()


def parse_list(text: str, fields: Collection[str], what: str) -> list[str]:
    """A comma list (``$select``) whose every name must be in ``fields``."""
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in fields]
    if unknown or not names:
        raise BadQuery(f"unknown properties {unknown} in {what}")
    return names


def order_key(text: str, fields: Collection[str]) -> list[tuple[str, bool]]:
    """``$orderby`` as ``[(field, descending)]``."""
    out = []
    for part in text.split(","):
        bits = part.split()
        if len(bits) not in (1, 2) or bits[0] not in fields or bits[1:] not in ([], ["asc"],
                                                                                 ["desc"]):
            raise BadQuery(f"bad $orderby {part!r}")
        out.append((bits[0], bits[1:] == ["desc"]))
    return out


def select_rows(rows: list[dict[str, Any]], query: dict[str, str],
                fields: Collection[str]) -> list[dict[str, Any]]:  # fmt: skip
    """Rows matching ``$filter`` in ``$orderby`` order (stable, by insertion otherwise)."""
    matched = rows
    if "$filter" in query:
        predicate = compile_filter(query["$filter"], fields)
        matched = [row for row in rows if predicate(row)]
    if "$orderby" in query:
        for field, descending in reversed(order_key(query["$orderby"], fields)):
            matched = sorted(matched, key=lambda r, f=field: _sortable(r.get(f)),
                             reverse=descending)  # fmt: skip
    return matched


def _sortable(value: Any) -> tuple[int, Any]:
    return (0, "") if value is None else (1, value)


def single_query(raw: dict[str, list[str]], allowed: Collection[str]) -> dict[str, str]:
    """One value per query option; an option the service does not know is a ``BadQuery``."""
    unknown = [name for name in raw if name not in allowed]
    if unknown:
        raise BadQuery(f"unknown query options {unknown}")
    repeated = [name for name, values in raw.items() if len(values) != 1]
    if repeated:
        raise BadQuery(f"repeated query options {repeated}")
    return {name: values[0] for name, values in raw.items()}


def non_negative(query: dict[str, str], name: str, default: int) -> int:
    """An integer option such as ``$top``/``$skip``."""
    value = query.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise BadQuery(f"{name} must be a non-negative integer")
    return int(value)
