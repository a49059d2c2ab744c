"""Timestamps as both APIs and the watermark table write them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


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


def next_watermark(current: str | None, extract_started_at: str, newest_loaded: str | None, lag_s: int) -> str | None:
    """``min(extract start − lag, newest dateUpdated loaded)``, never backwards, never now().

    Nothing loaded → the watermark stays. Contacts changed while the extract ran, or not yet
    visible in the search index, have dateUpdated ≥ extract start − lag and come again next run.
    """
    if newest_loaded is None:
        return current
    candidate = min(parse_ts(extract_started_at) - timedelta(seconds=lag_s), parse_ts(newest_loaded))
    if current is not None and candidate <= parse_ts(current):
        return current
    return format_ts(candidate)
