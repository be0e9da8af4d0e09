"""Checks every route gets from its handler's parsed signature, before the handler runs.

* a query parameter the handler does not declare is a 400 ``unknown_parameter`` (a typo
  such as ``?debtorid=5`` must not silently list everything);
* a parameter repeated more than :data:`MAX_REPEATED` times is a 422 ``too_many_values``;
* a date outside :data:`MIN_DATE`..:data:`MAX_DATE`, in a query parameter or in a date field
  of a JSON body, is a 422 ``date_out_of_range`` (date arithmetic near year 1 or 9999
  overflows);
* a NUL character (which PostgreSQL text cannot hold) in a query value or anywhere in a JSON
  body is a 422 ``nul_character`` naming the field.

The public webhook route is exempt from the query checks: the provider decides its query.
"""

from __future__ import annotations

import re
import types
import typing
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import msgspec
from litestar import Request
from litestar.constants import RESERVED_KWARGS
from litestar.handlers import HTTPRouteHandler
from litestar.params import ParameterKwarg
from msgspec import inspect as mi

from cartera.api import listing
from cartera.errors import CarteraError, Invalid

MAX_REPEATED = 20
MIN_DATE = date(1900, 1, 1)
MAX_DATE = date(2999, 12, 31)
PUBLIC_WEBHOOK_PREFIX = "/v1/hooks/"
"""The public webhook route, whatever comes after (an id or an unguessable token)."""
_PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")
_JSON_NUL = b"\\u0000"


class UnknownParameter(CarteraError):
    status = 400
    code = "unknown_parameter"
    title = "Unknown parameter"


@dataclass(frozen=True)
class QuerySpec:
    """The query parameters a handler declares, which of them are dates, whether it takes a
    JSON body, and where the body's date fields are (see :func:`date_fields`)."""

    names: frozenset[str]
    dates: frozenset[str]
    json_body: bool
    body_dates: Any = None


def _merge(a: Any, b: Any) -> Any:
    if a is None or b is True:
        return b
    if b is None or a is True:
        return a
    return {k: _merge(a.get(k), b.get(k)) for k in a.keys() | b.keys()}


def date_fields(t: mi.Type, seen: frozenset[type] = frozenset()) -> Any:
    """Where the dates of a body type are: ``True`` for a date, else a tree keyed by field
    name, ``[]`` (list items) or ``*`` (dict values); ``None`` when it holds no date."""
    if isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.DateType | mi.DateTimeType):
        return True
    if isinstance(t, mi.UnionType):
        tree = None
        for member in t.types:
            tree = _merge(tree, date_fields(member, seen))
        return tree
    if isinstance(t, mi.StructType) and t.cls not in seen:
        fields = {f.encode_name: date_fields(f.type, seen | {t.cls}) for f in t.fields}
        return {k: v for k, v in fields.items() if v is not None} or None
    if isinstance(t, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
        items = date_fields(t.item_type, seen)
        return None if items is None else {"[]": items}
    if isinstance(t, mi.DictType):
        values = date_fields(t.value_type, seen)
        return None if values is None else {"*": values}
    return None


def _body_dates(handler: HTTPRouteHandler) -> Any:
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return None
    try:
        return date_fields(mi.type_info(data.annotation))
    except (TypeError, ValueError):
        return None


def _is_date(annotation: Any) -> bool:
    if annotation in (date, datetime):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_date(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_date(arg) for arg in typing.get_args(annotation))
    return False


def query_spec(handler: HTTPRouteHandler) -> QuerySpec:
    """Read the declared query parameters off the handler's signature (cached on it)."""
    cached: QuerySpec | None = handler.opt.get("_query_spec")
    if cached is not None:
        return cached
    skipped = set(RESERVED_KWARGS) | set(handler.resolve_dependencies())
    skipped |= {m.group(1) for path in handler.paths for m in _PATH_PARAM.finditer(path)}
    names: set[str] = set()
    dates: set[str] = set()
    for field_name, definition in handler.parsed_fn_signature.parameters.items():
        if field_name in skipped:
            continue
        kwarg = definition.kwarg_definition
        if isinstance(kwarg, ParameterKwarg) and (kwarg.header or kwarg.cookie):
            continue
        name = (kwarg.query if isinstance(kwarg, ParameterKwarg) else None) or field_name
        names.add(name)
        if _is_date(definition.annotation):
            dates.add(name)
    if listing.returns_page(handler):
        names |= listing.LIST_PARAMETERS
    spec = QuerySpec(frozenset(names), frozenset(dates),
                     "data" in handler.parsed_fn_signature.parameters, _body_dates(handler))
    handler.opt["_query_spec"] = spec
    return spec


def _in_range(value: str) -> bool:
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        return True  # not a date at all: the signature's own validation answers it
    return MIN_DATE <= day <= MAX_DATE


def _out_of_range(name: str) -> Invalid:
    return Invalid(f"{name}: dates must be between {MIN_DATE} and {MAX_DATE}",
                   code="date_out_of_range", param=name)


def bad_date_path(value: Any, tree: Any, path: str = "") -> str | None:
    """The path of the first date in ``value`` (decoded JSON) out of range, by ``tree``."""
    if tree is True:
        return path if isinstance(value, str) and not _in_range(value) else None
    children: list[tuple[str, Any, Any]] = []
    if isinstance(value, dict):
        for key, sub in tree.items():
            if key == "*":
                children += [(f"{path}.{k}" if path else k, v, sub) for k, v in value.items()]
            elif key in value:
                children.append((f"{path}.{key}" if path else key, value[key], sub))
    elif isinstance(value, list) and "[]" in tree:
        children = [(f"{path}[{i}]", item, tree["[]"]) for i, item in enumerate(value)]
    for child_path, child, sub in children:
        found = bad_date_path(child, sub, child_path)
        if found is not None:
            return found
    return None


def check_query(request: Request[Any, Any, Any], spec: QuerySpec) -> None:
    """Refuse unknown, over-repeated, out-of-range and NUL-carrying query parameters."""
    pairs = list(request.query_params.multi_items())
    for name, count in Counter(name for name, _ in pairs).items():
        if name not in spec.names:
            raise UnknownParameter(f"unknown query parameter {name!r}; this operation takes "
                                   f"{', '.join(sorted(spec.names)) or 'none'}", param=name)
        if count > MAX_REPEATED:
            raise Invalid(f"{name}: at most {MAX_REPEATED} values", code="too_many_values",
                          param=name)
    for name, value in pairs:
        if "\x00" in value:
            raise _nul(name)
        if name in spec.dates and not _in_range(value):
            raise _out_of_range(name)


def _nul(path: str) -> Invalid:
    return Invalid(f"{path}: text must not contain NUL (U+0000) characters",
                   code="nul_character", param=path)


def nul_path(value: Any, path: str = "") -> str | None:
    """The path (``contact_points[0].value``) of the first string holding a NUL, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, list):
        items: Any = ((f"{path}[{i}]", item) for i, item in enumerate(value))
    elif isinstance(value, dict):
        for key in value:
            if "\x00" in key:
                return f"{path}.{key}" if path else key
        items = ((f"{path}.{key}" if path else key, item) for key, item in value.items())
    else:
        return None
    for item_path, item in items:
        found = nul_path(item, item_path)
        if found is not None:
            return found
    return None


async def check_json_body(request: Request[Any, Any, Any], spec: QuerySpec) -> None:
    """Refuse a JSON body with a NUL in any string or a date out of range (malformed JSON
    and wrong types are left to the decoder)."""
    if "json" not in request.headers.get("content-type", ""):
        return
    body = await request.body()
    has_nul = _JSON_NUL in body
    if not has_nul and spec.body_dates is None:
        return
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return
    path = nul_path(decoded) if has_nul else None
    if path is not None:
        raise _nul(path or "body")
    path = bad_date_path(decoded, spec.body_dates) if spec.body_dates is not None else None
    if path is not None:
        raise _out_of_range(path or "body")


async def before_request(request: Request[Any, Any, Any]) -> None:
    """The app-wide hook: the checks above, for the handler the request was routed to."""
    handler = request.scope["route_handler"]
    if not isinstance(handler, HTTPRouteHandler):
        return
    spec = query_spec(handler)
    listing.CURRENT.set(None)
    path = _path(request)
    if not path.startswith(PUBLIC_WEBHOOK_PREFIX) and not _is_docs(request, path):
        if request.scope.get("query_string"):  # none: nothing to refuse
            check_query(request, spec)
        if spec.names >= listing.LIST_PARAMETERS:
            listing.CURRENT.set(listing.parse(request.query_params))
    if spec.json_body:
        check_content_type(request, handler)
        await check_json_body(request, spec)


class UnsupportedMediaType(CarteraError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


def _takes_json(handler: HTTPRouteHandler) -> bool:
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return False
    media = getattr(data.kwarg_definition, "media_type", None)
    return media is None or str(getattr(media, "value", media)) == "application/json"


def check_content_type(request: Request[Any, Any, Any], handler: HTTPRouteHandler) -> None:
    """A JSON body sent as something else (a form, text) is 415 ``unsupported_media_type``;
    ``application/json`` and any ``+json`` type are accepted, and so is a body without a
    ``Content-Type``."""
    given = request.headers.get("content-type")
    if given is None or not _takes_json(handler):
        return
    media = given.split(";", 1)[0].strip().lower()
    if media == "application/json" or (media.startswith("application/")
                                        and media.endswith("+json")):
        return
    raise UnsupportedMediaType(f"send the body as application/json, not {media or 'nothing'!r}",
                               param="Content-Type")


def _path(request: Request[Any, Any, Any]) -> str:
    """``request.url.path``, without building the URL (a parse per request)."""
    scope = request.scope
    return scope.get("root_path", "") + scope["path"]


def _is_docs(request: Request[Any, Any, Any], path: str) -> bool:
    config = request.app.openapi_config
    docs = (config.path if config else None) or "/docs"
    return path == docs or path.startswith(docs + "/")
