"""Timestamps as both APIs and the watermark table write them (the watermark rules are ``cursors.py``)."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_ts(value: str) -> datetime:
    """ISO-8601 (GHL's ``2021-07-02T05:18:26.704Z`` and offsets) → aware UTC datetime."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def format_ts(dt: datetime) -> str:
    """Aware datetime → ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (GHL's own form, sortable as text)."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
