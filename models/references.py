"""References from one step's input to an earlier step's output: ``{"$ref": "steps.<name>.output.<path>"}``.

Resolution is pure (used inside workflows): a reference object is replaced by the value it points to.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

REF_KEY = "$ref"
_REF = re.compile(r"^steps\.(?P<step>[A-Za-z][A-Za-z0-9_\-]{0,63})\.output(?P<path>(\.[^.]+)*)$")


class ReferenceError_(ValueError):
    """A reference that cannot be resolved (unknown step, missing key); the message says which."""


@dataclass(frozen=True)
class Reference:
    text: str
    step: str
    path: tuple[str, ...]


def parse_reference(text: str) -> Reference:
    match = _REF.match(text)
    if not match:
        raise ReferenceError_(f"invalid reference {text!r}: expected 'steps.<name>.output[.<key>...]'")
    path = tuple(p for p in match.group("path").split(".") if p)
    return Reference(text=text, step=match.group("step"), path=path)


def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {REF_KEY} and isinstance(value[REF_KEY], str)


def find_references(value: Any) -> Iterator[Reference]:
    """Every reference inside a JSON value (invalid ones raise ReferenceError_)."""
    if _is_ref(value):
        yield parse_reference(value[REF_KEY])
    elif isinstance(value, dict):
        for item in value.values():
            yield from find_references(item)
    elif isinstance(value, list):
        for item in value:
            yield from find_references(item)


def resolve(value: Any, outputs: dict[str, Any]) -> Any:
    """``value`` with every reference replaced from ``outputs`` (step name -> that step's output object)."""
    if _is_ref(value):
        ref = parse_reference(value[REF_KEY])
        if ref.step not in outputs:
            raise ReferenceError_(f"{ref.text}: step {ref.step!r} has no output")
        current: Any = outputs[ref.step]
        for key in ref.path:
            if isinstance(current, dict) and key in current:
                current = current[key]
            elif isinstance(current, list) and key.isdigit() and int(key) < len(current):
                current = current[int(key)]
            else:
                raise ReferenceError_(f"{ref.text}: no {key!r} in the output of step {ref.step!r}")
        return current
    if isinstance(value, dict):
        return {k: resolve(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, outputs) for v in value]
    return value
