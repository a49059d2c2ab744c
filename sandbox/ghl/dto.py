"""Validation of the child objects' write bodies (tasks, notes, appointments, the task search).

Owns the NestJS ValidationPipe imitation those DTOs share: a field table maps each accepted
property to its kind (``"string"``, ``"boolean"``, ``"int"``, ``"iso"``, ``"string[]"`` or a tuple
of the allowed enum values), and ``dto_errors`` returns every class-validator message in order
(unknown property, empty required field, wrong kind). Contacts have their own checks in
``contacts.py`` (their DTOs have more special cases).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sandbox.ghl.base import is_int, parse_ms

__all__ = ["Kind", "apply_plain", "dto_errors", "kind_error"]

Kind = str | tuple[str, ...]


def kind_error(name: str, kind: Kind, v: Any) -> str | None:
    """The class-validator message for a value of the wrong kind (None when it is fine)."""
    if kind == "string":
        return None if isinstance(v, str) else f"{name} must be a string"
    if kind == "boolean":
        return None if isinstance(v, bool) else f"{name} must be a boolean value"
    if kind == "int":
        return None if is_int(v) else f"{name} must be a number conforming to the specified constraints"
    if kind == "iso":
        ok = isinstance(v, str) and not v.strip().lstrip("-").isdigit() and parse_ms(v) is not None
        return None if ok else f"{name} must be a valid ISO 8601 date string"
    if kind == "string[]":
        if not isinstance(v, list):
            return f"{name} must be an array"
        return None if all(isinstance(x, str) for x in v) else f"each value in {name} must be a string"
    if not isinstance(kind, tuple):
        raise ValueError(f"unknown field kind {kind!r}")
    return None if v in kind else f"{name} must be one of the following values: {', '.join(kind)}"


def dto_errors(
    body: dict, fields: dict[str, Kind], *, required: Iterable[str] = (), nullable: Iterable[str] = ()
) -> list[str]:
    """Whitelist + type checks of a write DTO, NestJS ValidationPipe style (every problem, in order)."""
    errors = [f"property {k} should not exist" for k in body if k not in fields]
    required, nullable = set(required), set(nullable)
    for name, kind in fields.items():
        v = body.get(name)
        if name in required and (v is None or v == ""):
            errors.append(f"{name} should not be empty")
            if v is None:
                errors.append(kind_error(name, kind, v) or f"{name} should not be empty")
            continue
        if name not in body or (v is None and name in nullable):
            continue
        msg = kind_error(name, kind, v)
        if msg:
            errors.append(msg)
    return errors


def apply_plain(doc: dict, body: dict) -> None:
    """Copy a validated body onto ``doc``; ``null`` clears a (nullable) field."""
    for k, v in body.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
