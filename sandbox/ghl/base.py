"""What every concern of the GHL simulator's state shares: ids, timestamps, small helpers.

Owns the API's timestamp format (``iso_ms``/``parse_ms``), id generation, the JSON-integer test and
the parent -> children link tables the child objects (tasks, notes, events) keep per contact.
Nothing here holds state; errors are ``errors.py``'s.
"""

from __future__ import annotations

import math
import random
import secrets
import string
import time
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

__all__ = [
    "EPOCH",
    "iso_ms",
    "is_int",
    "link",
    "new_id",
    "now_ms",
    "parse_ms",
    "unlink",
]

_ALNUM = string.ascii_letters + string.digits
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_ms(ms: int) -> str:
    """Epoch ms -> ``YYYY-MM-DDTHH:mm:ss.sssZ`` (the API's timestamp format)."""
    dt = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_ms(value: Any, zone: tzinfo = UTC) -> int | None:
    """ISO-8601 string (``Z``/offset/date-only; zone-less read in ``zone``) or epoch-ms number -> epoch
    ms; None if unparseable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(math.floor(value)) if math.isfinite(value) else None
    if not isinstance(value, str) or not value:
        return None
    s = value.strip()
    if s.lstrip("-").isdigit():
        return int(s)
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone)
    return (dt - EPOCH) // timedelta(milliseconds=1)


_ID_RNG = random.Random(secrets.randbits(64))  # ids need uniqueness, not secrecy; urandom per char is slow


def new_id() -> str:
    """A 20-char alphanumeric id like the API's (``seD4PfOuKoVMLkEZqohJ``)."""
    return "".join(_ID_RNG.choices(_ALNUM, k=20))


def is_int(v: Any) -> bool:
    """A JSON integer (``20.0`` counts, ``True`` does not)."""
    return isinstance(v, int) and not isinstance(v, bool) or (isinstance(v, float) and v.is_integer())


def link(table: dict[str, dict[str, None]], parent: str, child: str) -> None:
    """Record ``child`` under ``parent`` (insertion-ordered id sets)."""
    table.setdefault(parent, {})[child] = None


def unlink(table: dict[str, dict[str, None]], parent: str | None, child: str) -> None:
    """Forget ``child`` under ``parent``; an emptied parent entry is dropped."""
    ids = table.get(parent or "")
    if ids is not None:
        ids.pop(child, None)
        if not ids:
            del table[parent or ""]
