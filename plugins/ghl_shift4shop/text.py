"""Cutting text to the store's limits.

Shift4Shop is an ASP.NET application: its length limits count UTF-16 code units, so an emoji
costs two. Cutting by Python characters could overrun a limit; cutting bytes could split a
character. These helpers cut by UTF-16 units and never split a surrogate pair.
"""

from __future__ import annotations


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int, *, ellipsis: bool = False) -> str:
    """The longest prefix of ``text`` within ``limit`` UTF-16 units (ending in … if cut and asked)."""
    if 2 * len(text) <= limit or utf16_len(text) <= limit:  # no character takes more than 2 units
        return text
    budget = limit - 1 if ellipsis else limit
    out, used = [], 0
    for ch in text:
        size = 2 if ord(ch) > 0xFFFF else 1
        if used + size > budget:
            break
        out.append(ch)
        used += size
    result = "".join(out).rstrip()
    return result + "…" if ellipsis and budget >= 0 else result
