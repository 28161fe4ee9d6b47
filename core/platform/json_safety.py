"""What JSON AINS accepts: only values every later reader can hold.

Whatever the API accepts is stored in the registry, read back, sent to an agent and written into a workflow
history. Python's ``json`` module accepts more than those readers do, so request bodies are parsed with
``parse_request_json``, which refuses, naming the field:

* lone UTF-16 surrogates (``"\\ud800"``, or the same code point encoded as bytes): not Unicode, cannot be
  encoded as UTF-8, so neither serialised to an agent nor into a history;
* ``NaN``, ``Infinity``, ``-Infinity`` and numbers that overflow a double (``1e400``): not JSON (RFC 8259);
* integers beyond +/-(2**53 - 1): JSON consumers (JavaScript, many decoders) silently round them (I-JSON,
  RFC 7493); the database's integer columns end at 2**63 - 1 anyway;
* nesting deeper than ``MAX_DEPTH``: decoders on the way (jiter in pydantic, agents' parsers) refuse it.

The common case costs almost nothing: the body is parsed once by the C decoder, and the tree is walked only
when a cheap hint (a surrogate escape in the text, a flagged number, many brackets) says it may be needed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 64
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class UnsafeJSON(ValueError):
    """A JSON document AINS refuses: ``path`` is the location of the offending value (keys and indexes)."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(f"{'.'.join(str(p) for p in path) or '(document)'}: {message}")
        self.path = path
        self.message = message


class _Refused:
    """Stands in for a number the decoder met that JSON readers cannot hold; the walk reports where."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_constant(text: str) -> _Refused:
    return _Refused(text)


def _parse_int(text: str) -> int | _Refused:
    value = int(text)
    return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else _Refused(text)


def _parse_float(text: str) -> float | _Refused:
    value = float(text)
    return value if math.isfinite(value) else _Refused(text)


def parse_request_json(body: bytes) -> Any:
    """``body`` decoded as JSON; ``json.JSONDecodeError`` when it is not JSON, ``UnsafeJSON`` when it holds a
    value listed in the module docstring."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Invalid UTF-8, or surrogates encoded as bytes: decode as json does (which lets surrogates through),
        # and let the walk find them.
        try:
            text = body.decode("utf-8-sig", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise json.JSONDecodeError("the body is not valid UTF-8", "", exc.start) from None
        suspect = True
    else:
        suspect = _SURROGATE_ESCAPE.search(body) is not None
    flagged = False

    def constant(token: str) -> _Refused:
        nonlocal flagged
        flagged = True
        return _parse_constant(token)

    def integer(token: str) -> int | _Refused:
        nonlocal flagged
        value = _parse_int(token)
        flagged = flagged or isinstance(value, _Refused)
        return value

    def number(token: str) -> float | _Refused:
        nonlocal flagged
        value = _parse_float(token)
        flagged = flagged or isinstance(value, _Refused)
        return value

    try:
        value = json.loads(text, parse_constant=constant, parse_int=integer, parse_float=number)
    except RecursionError:
        raise UnsafeJSON((), f"nested deeper than {MAX_DEPTH} levels") from None
    if suspect or flagged or body.count(b"[") + body.count(b"{") > MAX_DEPTH:
        problem = find_unsafe(value)
        if problem is not None:
            raise problem
    return value


def _lone_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _problem(value: Any) -> str | None:
    if isinstance(value, _Refused):
        if value.text.lstrip("-").isdigit():
            return f"integer {value.text} is out of range: integers must be within +/-(2**53 - 1)"
        return f"{value.text} is not allowed: numbers must be finite (NaN and Infinity are not JSON)"
    if isinstance(value, str) and _lone_surrogate(value):
        return "lone UTF-16 surrogate in a string: text must be valid Unicode"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not allowed: numbers must be finite"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        return "integer out of range: integers must be within +/-(2**53 - 1)"
    return None


def _children(value: Any) -> Iterator[tuple[str | int, Any]]:
    if isinstance(value, dict):
        yield from value.items()
    elif isinstance(value, list):
        yield from enumerate(value)


def find_unsafe(value: Any) -> UnsafeJSON | None:
    """The first value in ``value`` (parsed JSON, or any dict/list tree) that AINS would refuse, or None."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, node = stack.pop()
        if len(path) > MAX_DEPTH:
            return UnsafeJSON(path[:2], f"nested deeper than {MAX_DEPTH} levels")
        problem = _problem(node)
        if problem is not None:
            return UnsafeJSON(path, problem)
        children = list(_children(node))
        for key, child in reversed(children):
            if isinstance(key, str) and _lone_surrogate(key):
                return UnsafeJSON(
                    (*path, key.encode("utf-8", "backslashreplace").decode()), "lone UTF-16 surrogate in a key"
                )
            stack.append(((*path, key), child))
    return None
