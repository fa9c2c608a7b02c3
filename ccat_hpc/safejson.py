"""Decoding JSON that comes from outside (manifests, later API bodies), hostile until checked.

``json.loads`` alone lets through what ops-db cannot store or what breaks later code:
NaN and Infinity (invalid JSON for PostgreSQL), numbers out of 64-bit range, strings
with lone surrogates or NUL characters (PostgreSQL refuses both), and nesting deep
enough to exhaust the interpreter's stack. :func:`loads_checked` decodes and then
walks the value once (iteratively), so every problem is reported with the path of the
value that has it; nothing here raises anything but :class:`JsonProblem`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ccat_hpc.yamlfile import format_location

MAX_DEPTH = 32
MAX_INTEGER = 2**63 - 1


class JsonProblem(ValueError):
    """The text is not JSON, or holds a value ops-db cannot take; the message says where."""


class _NonFinite:
    """What ``NaN``, ``Infinity`` and ``-Infinity`` decode to, until the walk reports them."""

    def __init__(self, text: str) -> None:
        self.text = text


def loads_checked(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """Decode ``text`` and check every value in it; raise JsonProblem naming the first bad one."""
    try:
        value = json.loads(text, parse_constant=_NonFinite)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise JsonProblem(f"invalid JSON at {where}: {exc.msg}") from None
    except RecursionError:
        raise JsonProblem("invalid JSON: nested too deeply") from None
    except ValueError:  # an integer literal longer than Python converts (thousands of digits)
        raise JsonProblem("invalid JSON: a number has too many digits") from None
    check_values(value, max_depth)
    return value


def check_values(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise JsonProblem for the first value (in document order) ops-db could not store."""
    stack: list[tuple[Any, tuple[int | str, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if len(path) > max_depth:
            raise JsonProblem(f"{_where(path)}: nested deeper than {max_depth} levels")
        problem = _problem(item)
        if problem is not None:
            raise JsonProblem(f"{_where(path)}: {problem}")
        stack.extend(reversed(_children(item, path)))


def _children(item: Any, path: tuple[int | str, ...]) -> list[tuple[Any, tuple[int | str, ...]]]:
    if isinstance(item, dict):
        for key in item:
            problem = _string_problem(key)
            if problem is not None:
                raise JsonProblem(f"{_where(path)}: a key {problem}")
        return [(child, (*path, key)) for key, child in item.items()]
    if isinstance(item, list):
        return [(child, (*path, index)) for index, child in enumerate(item)]
    return []


def _problem(item: Any) -> str | None:
    if isinstance(item, _NonFinite):
        return f"{item.text} is not allowed (numbers must be finite)"
    if isinstance(item, float) and not math.isfinite(item):
        return "number out of range"
    if isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_INTEGER:
        return "integer out of the 64-bit range"
    if isinstance(item, str):
        return _string_problem(item)
    return None


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an invalid character (a lone UTF-16 surrogate)"
    return None


def _where(path: tuple[int | str, ...]) -> str:
    return describe_path(path) if path else "<top>"


def describe_path(path: tuple[int | str, ...]) -> str:
    """``files[0].path`` for a value's place; keys from outside are quoted when odd."""
    shown = tuple(
        part if isinstance(part, int) or part.isprintable() else repr(part) for part in path
    )
    return format_location(shown)
