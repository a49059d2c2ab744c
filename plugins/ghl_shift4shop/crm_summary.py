"""The compact CRM summary kept in the customer's ``Comments`` (255 characters, always).

Open tasks and the next due one, the latest note's date and first words, the next appointment:
what a shop assistant needs at a glance, without extra store calls.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime, tzinfo

import nh3

from ghl_shift4shop.text import cut, utf16_len

MAX_COMMENTS = 255
SEPARATOR = " | "
INACTIVE_APPOINTMENTS = {"cancelled", "invalid", "noshow"}


def plain_text(fragment: str | None) -> str:
    """HTML → readable text on one line (tags dropped, entities decoded, whitespace collapsed)."""
    if not fragment:
        return ""
    text = html.unescape(nh3.clean(str(fragment), tags=set()))
    return " ".join(text.split())


def parse_when(value, zone: tzinfo = UTC) -> datetime | None:
    """GHL times as aware UTC: ISO with Z or an offset, or zone-less (``YYYY-MM-DD HH:mm:ss``) read
    in ``zone``. Appointment times are made UTC when fetched (``children.py``), so the default fits."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=zone)).astimezone(UTC)


def _quoted(text: str, room: int) -> str:
    if room <= 2 or not text:
        return ""
    return f'"{cut(text, room - 2, ellipsis=True)}"'


def tasks_part(tasks: list[dict], now: datetime) -> tuple[str, str]:
    """(fixed head, free text) for the tasks part, or ("", "") when there are none."""
    open_tasks = [t for t in tasks if not t.get("completed")]
    if not tasks:
        return "", ""
    if not open_tasks:
        return f"Tasks: 0 open of {len(tasks)}", ""
    dated = sorted(((d, t) for t in open_tasks if (d := parse_when(t.get("dueDate"))) is not None), key=lambda x: x[0])
    head = f"Tasks: {len(open_tasks)} open"
    if not dated:
        return head, ""
    due, task = dated[0]
    label = "overdue since" if due < now else "next due"
    return f"{head}, {label} {due:%Y-%m-%d}", plain_text(task.get("title"))


def notes_part(notes: list[dict]) -> tuple[str, str]:
    dated = sorted(((d, n) for n in notes if (d := parse_when(n.get("dateAdded"))) is not None), key=lambda x: x[0])
    if not dated:
        return "", ""
    when, note = dated[-1]
    return f"Note {when:%Y-%m-%d}:", plain_text(note.get("body"))


def appointments_part(events: list[dict], now: datetime) -> tuple[str, str]:
    upcoming = sorted(
        (
            (start, e)
            for e in events
            if (start := parse_when(e.get("startTime"))) is not None
            and start >= now
            and str(e.get("appointmentStatus") or e.get("status") or "").lower() not in INACTIVE_APPOINTMENTS
        ),
        key=lambda x: x[0],
    )
    if not upcoming:
        return "", ""
    start, event = upcoming[0]
    return f"Next appt {start:%Y-%m-%d %H:%M} UTC", plain_text(event.get("title"))


def build_comments(
    tasks: list[dict] | None, notes: list[dict] | None, events: list[dict] | None, *, now: datetime | None = None
) -> str:
    """The summary, never longer than 255 UTF-16 code units (how the store's .NET side counts)."""
    now = now or datetime.now(UTC)
    return compose([tasks_part(tasks or [], now), notes_part(notes or []), appointments_part(events or [], now)])


PART_BUILDERS = {
    "tasks": lambda items, now: tasks_part(items, now),
    "notes": lambda items, now: notes_part(items),
    "appointments": lambda items, now: appointments_part(items, now),
}


def compose(parts: list[tuple[str, str]]) -> str:
    """Join (head, free text) parts, sharing the 255 units among the free texts."""
    parts = [p for p in parts if p and p[0]]
    if not parts:
        return ""
    heads = [cut(head, 80) for head, _ in parts]
    fixed = sum(utf16_len(h) + 1 for h in heads) + utf16_len(SEPARATOR) * (len(parts) - 1)
    room = max(MAX_COMMENTS - fixed, 0)
    # Free texts share what is left, the shorter ones first so no room is wasted.
    texts = [t for _, t in parts]
    shares = [0] * len(parts)
    order = sorted(range(len(parts)), key=lambda i: utf16_len(texts[i]))
    for rank, i in enumerate(order):
        fair = room // (len(parts) - rank)
        need = utf16_len(texts[i]) + 2 if texts[i] else 0
        shares[i] = min(need, fair)
        room -= shares[i]
    pieces = []
    for head, text, share in zip(heads, texts, shares, strict=True):
        quoted = _quoted(text, share)
        pieces.append(f"{head} {quoted}" if quoted else head)
    return cut(SEPARATOR.join(pieces), MAX_COMMENTS)
