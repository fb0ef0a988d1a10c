"""The canonical spec: what the resource holds, and how the seed's lenient forms become it.

One rule per field, read from the field table (``siprtmp_contract.fields``):
- ``violation`` is that table's JSON Schema (types, required fields, lengths, patterns, list sizes,
  enums, bounds, unknown fields) checked in Python, as the API server checks the CRD written
  from the same table. The spec parser applies it to every spec, so it refuses whatever the CRD
  refuses; what the parser checks beyond it is the CRD's CEL rules' (tests/unit/
  test_spec_agreement.py holds the two sides to the same verdicts).
- ``normalise`` is the REST API's (and a bridge's own spec file's) reading of the seed's bodies:
  ``"true"``, ``"5060"``, ``"PCMU,G722"``, ``"UDP"``, ``ulaw``, fields sent empty, connection
  fields at the top level, each turned into the canonical value once, before a resource is made.
  What it cannot turn canonical it leaves as sent, for the parser to refuse by name.

Patterns are matched whole (``re.fullmatch``): every pattern of the table is anchored, and so
matched the API server's RE2 reads them the same way (Python's ``$`` alone would also match
before a final newline).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from siprtmp_contract.fields import SPEC, Field, names

#: The seed's later flat ``/rest-api/call/startup`` shape puts connection fields on top.
_FLAT = names("connection") - names()


def _boolean(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _integer(field: Field, value: Any) -> Any:
    """ASCII digits as the number, no longer than the field's bound is (Python's ``int()``
    refuses over 4300 digits, and such a number is out of bounds anyway); 5060.0 as 5060."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    text = value.strip() if isinstance(value, str) else None
    if text and text.isascii() and text.isdigit():
        high = field.bounds[1] if field.bounds else 0
        return int(text) if len(text) <= len(str(high)) else value
    return value


def _string(field: Field, value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and not field.enum:
        return str(value)  # YAML's ``sipLogin: 1000``
    if not isinstance(value, str):
        return value
    text = value.strip()
    for choice in field.enum or ():
        if isinstance(choice, str) and choice.lower() == text.lower():
            return choice
    return text


def _list(field: Field, value: Any) -> Any:
    if isinstance(value, str):  # "PCMU,G722", "PCMU G722"
        value = [part for part in re.split(r"[,\s]+", value) if part]
    if not isinstance(value, list) or field.items is None:
        return value
    return [_value(field.items, item) for item in value]


_READINGS: dict[str, Callable[[Field, Any], Any]] = {
    "boolean": lambda _, value: _boolean(value),
    "integer": _integer,
    "string": _string,
    "array": _list,
}


def _present(value: Any) -> bool:
    """The seed's clients send "" (or null) for a field they leave empty."""
    return value is not None and value != ""


def _object(field: Field, value: Mapping[str, Any]) -> dict[str, Any]:
    """Known fields read, empty ones dropped (an object left empty too), unknown ones as sent."""
    children = {child.name: child for child in field.fields}
    result: dict[str, Any] = {}
    for name, item in value.items():
        child = children.get(name)
        read = _value(child, item) if child is not None else item
        if _present(read) and read != {}:
            result[name] = read
    return result


def _value(field: Field, value: Any) -> Any:
    if field.normalise is not None:
        fixed = field.normalise(value)
        if fixed is not None:
            return fixed
    if field.type == "object":
        return _object(field, value) if isinstance(value, Mapping) else value
    read = _READINGS.get(field.type)
    return value if read is None else read(field, value)


def normalise(document: Mapping[str, Any]) -> dict[str, Any]:
    """A spec as the seed's clients write one → the canonical spec (pure; nothing checked)."""
    flat = {k: v for k, v in document.items() if k in _FLAT}
    spec = {k: v for k, v in document.items() if k not in _FLAT}
    nested = spec.get("connection")
    if flat and (nested is None or isinstance(nested, Mapping)):
        spec["connection"] = {**flat, **(nested or {})}  # nested values win
    else:
        spec.update(flat)  # left for the parser to name
    return _object(SPEC, spec)


def _shown(field: Field, value: Any) -> str:
    """A refused value as a message quotes it: cut when long, never when secret."""
    if field.secret:
        return "(not shown)"
    if isinstance(value, int) and abs(value) >= 10**40:
        return "an integer of more than 40 digits"  # repr() refuses past 4300 digits
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def is_integer(value: Any) -> bool:
    """JSON Schema's integer: a whole number, ``5060.0`` too, never a boolean."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "object": (lambda value: isinstance(value, Mapping), "must be an object"),
    "array": (lambda value: isinstance(value, list), "must be a list"),
    "string": (lambda value: isinstance(value, str), "must be a string"),
    "boolean": (lambda value: isinstance(value, bool), "must be true or false"),
    "integer": (is_integer, "must be a whole number"),
    "number": (
        lambda value: isinstance(value, int | float) and not isinstance(value, bool),
        "must be a number",
    ),
}


def _own_violation(field: Field, value: Any) -> str | None:
    """What is wrong with ``value`` itself (not with what it holds), None when nothing."""
    fits, problem = _TYPES[field.type]
    if not fits(value):
        return f"{problem}, got {_shown(field, value)}"
    if field.enum is not None and value not in field.enum:
        choices = ", ".join(map(str, field.enum))
        return f"must be one of {choices}, got {_shown(field, value)}"
    low, high = field.minimum, field.maximum
    if field.enum is None and low is not None and high is not None and not low <= value <= high:
        return f"must be between {low} and {high}, got {_shown(field, value)}"
    if field.min_length is not None and len(value) < field.min_length:
        return f"must be at least {field.min_length} characters long"
    if field.max_length is not None and len(value) > field.max_length:
        return f"must be at most {field.max_length} characters long"
    if field.pattern is not None and not re.fullmatch(field.pattern, value):
        return f"is not of the form this field takes, got {_shown(field, value)}"
    if field.min_items is not None and len(value) < field.min_items:
        return f"must hold at least {field.min_items} item(s)"
    if field.max_items is not None and len(value) > field.max_items:
        return f"must hold at most {field.max_items} items"
    return None


def violation(
    document: Any, keep: Callable[[Field], bool], field: Field = SPEC, path: str = ""
) -> tuple[str, str] | None:
    """The first field of ``document`` that the table's schema refuses, and why (None: it is
    canonical). ``keep`` picks the fields the reader has (the resource: those in the CRD).
    A null is an absent field, as the API server prunes it."""
    problem = _own_violation(field, document)
    if problem is not None:
        return path, problem
    prefix = f"{path}." if path else ""
    if field.type == "array" and field.items is not None:
        for item in document:
            found = violation(item, keep, field.items, path)
            if found is not None:
                return found
    if field.type != "object":
        return None
    children = {child.name: child for child in field.fields if keep(child)}
    for name in field.required:
        if document.get(name) is None:
            return f"{prefix}{name}", "is required"
    for name, value in document.items():
        child = children.get(name)
        if child is None:
            return f"{prefix}{name}", "is not a known field"
        if value is not None:
            found = violation(value, keep, child, f"{prefix}{name}")
            if found is not None:
                return found
    return None
