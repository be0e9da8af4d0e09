"""A Jinja2 sandbox with hard limits: what one template may cost to render.

:class:`BoundedEnvironment` is an :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`
(no attribute tricks, no mutation of lists or dicts) that also bounds the work a template
can ask for:

* ``range`` yields at most :attr:`Limits.max_range` numbers;
* ``*``, ``+``, ``**`` and ``%`` refuse results larger than the output limit before
  building them, and so do the calls and filters that grow text (``center``, ``indent``,
  ``replace``, ``join``, ``format``, ``batch``...): an integer argument above the output
  limit is refused, and so is any string or list result past it;
* every ``for`` loop is rewritten at parse time to iterate through a checkpoint, and every
  call passes one too: past the time budget of the current render, the render stops with
  :class:`RenderLimitExceeded`, even in nested loops that never produce output.

The budget is per render: :func:`budget` opens one (a context manager) for the current
thread or task; code outside a budget has the size limits but no time limit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment


@dataclass(frozen=True)
class Limits:
    """Bounds on one template field and one render."""

    max_source_chars: int = 100_000
    """Longest template source accepted on save (per field)."""
    max_output_chars: int = 200_000
    """Longest text one field may render to; also bounds every intermediate value."""
    max_range: int = 10_000
    """Most numbers one ``range()`` may yield."""
    time_budget_seconds: float = 1.0
    """Wall-clock time one message (all of its fields) may take to render."""


LIMITS = Limits()


class RenderLimitExceeded(SecurityError):
    """A template asked for more than :data:`LIMITS` allow (``code`` says which limit)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Budget:
    deadline: float


_current: ContextVar[_Budget | None] = ContextVar("cartera_render_budget", default=None)


@contextmanager
def budget(seconds: float | None = None) -> Iterator[None]:
    """Render inside a time budget (the configured one by default); nested budgets keep
    the outer, earlier deadline."""
    outer = _current.get()
    deadline = time.monotonic() + (LIMITS.time_budget_seconds if seconds is None else seconds)
    token = _current.set(_Budget(min(deadline, outer.deadline) if outer else deadline))
    try:
        yield
    finally:
        _current.reset(token)


def checkpoint() -> None:
    """Stop the render when its time budget is spent."""
    current = _current.get()
    if current is not None and time.monotonic() > current.deadline:
        raise RenderLimitExceeded(
            "template_timeout",
            f"the template took longer than {LIMITS.time_budget_seconds:g} s to render")


def _too_big(size: int) -> None:
    if size > LIMITS.max_output_chars:
        raise RenderLimitExceeded(
            "template_output_too_large",
            f"the template builds a value longer than {LIMITS.max_output_chars} characters")


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple) else None


def check_result(value: Any) -> Any:
    """``value``, unless it is a string or list past the output limit."""
    size = _sized(value)
    if size is not None:
        _too_big(size)
    return value


_SIZE_ARGUMENTS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "indent",
                             "wordwrap", "batch", "slice"})
"""Calls and filters whose integer arguments are sizes (widths, counts) of what they build."""


def _check_int_arguments(args: Iterable[Any]) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool):
            _too_big(abs(arg))


_PERCENT_WIDTH = re.compile(r"%[#0\- +]*(\d*)(?:\.(\d+))?")
_BRACE_WIDTH = re.compile(r"\{[^{}]*?:[^{}]*?(\d+)(?:\.(\d+))?[^{}]*\}")


def check_format_string(fmt: str, pattern: re.Pattern[str] | None = None) -> None:
    """Refuse a ``%`` or ``{}`` format whose field widths exceed the output limit."""
    for match in (pattern or _PERCENT_WIDTH).finditer(fmt):
        for group in match.groups():
            if group:
                _too_big(int(group))
    if pattern is None:
        check_format_string(fmt, _BRACE_WIDTH)


def _growth(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """An upper bound on the length of what the text-growing operation ``name`` returns
    (0 when ``name`` does not grow its input beyond its arguments' sizes)."""
    text = value if isinstance(value, str) else ""
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str):
        hits = text.count(args[0]) if args[0] else len(text) + 1
        return len(text) + hits * len(str(args[1]))
    if name == "indent":
        width = args[0] if args else kwargs.get("width", 4)
        return len(text) + (text.count("\n") + 1) * len(width if isinstance(width, str)
                                                          else " " * int(width))
    if name == "wordwrap":
        wrap = kwargs.get("wrapstring") or (args[2] if len(args) > 2 else "\n")
        return len(text) * (1 + len(str(wrap)))
    if name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        return len(text) + text.count("\t") * int(size)
    if name == "join" and isinstance(value, list | tuple):
        sep = args[0] if args else kwargs.get("d", "")
        return sum(len(str(v)) for v in value) + len(str(sep)) * len(value)
    return 0


def _guarded(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that checks its arguments and result against the limits."""

    @wraps(fn)
    def filter_(*args: Any, **kwargs: Any) -> Any:
        checkpoint()
        # Filters taking the context or environment get it first; the value comes next.
        skip = 1 + (getattr(fn, "jinja_pass_arg", None) is not None)
        value = args[skip - 1] if len(args) >= skip else None
        rest = args[skip:]
        if name in _SIZE_ARGUMENTS:
            _check_int_arguments((*rest, *kwargs.values()))
        _too_big(_growth(name, value, rest, kwargs))
        if name == "format" and isinstance(value, str):
            check_format_string(value)
        return check_result(fn(*args, **kwargs))

    return filter_


def _capped_range(*args: int) -> Iterator[int]:
    numbers = range(*args)
    if len(numbers) > LIMITS.max_range:
        raise RenderLimitExceeded(
            "template_range_too_large",
            f"range() may yield at most {LIMITS.max_range} numbers, not {len(numbers)}")
    return _checked_iteration(numbers)


def _checked_iteration(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        checkpoint()
        yield item


_LOOP_FILTER = "__cartera_checked_iteration"


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox every Cartera template renders in (see the module docstring)."""

    intercepted_binops = frozenset({"*", "+", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _capped_range
        self.filters = {name: _guarded(name, fn) for name, fn in self.filters.items()}
        self.filters[_LOOP_FILTER] = _checked_iteration

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None,
                                     lineno=loop.iter.lineno)
        return tree

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        checkpoint()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                size = _sized(seq)
                if size is not None and isinstance(times, int):
                    _too_big(size * times)
        elif operator == "+":
            left_size, right_size = _sized(left), _sized(right)
            if left_size is not None and right_size is not None:
                _too_big(left_size + right_size)
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
                _too_big(right * abs(left).bit_length() // 3)  # about its decimal digits
        elif operator == "%" and isinstance(left, str):
            check_format_string(left)
        return check_result(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any,
             *args: Any, **kwargs: Any) -> Any:
        checkpoint()
        name = getattr(__obj, "__name__", "")
        if name in _SIZE_ARGUMENTS:
            _check_int_arguments((*args, *kwargs.values()))
        _too_big(_growth(name, getattr(__obj, "__self__", None), args, kwargs))
        return check_result(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        check_format_string(value.__self__)
        return wrapper
