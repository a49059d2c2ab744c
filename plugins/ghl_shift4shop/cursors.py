"""Cursors: which changes a run covers, and how far each stream's watermark moves afterwards.

The one place for the watermark rules. A run's :class:`Cursor` is planned once (``plan_window``)
and travels through XCom as a :class:`~ghl_shift4shop.payloads.Window`; the extract, the child
fetches and the watermark commit all ask it rather than compare timestamps themselves.

* incremental: each stream has its own watermark; a contact belongs to a stream's run when its
  ``dateUpdated`` is strictly after that mark (a contact stamped exactly at the mark was loaded by
  the run that set it). The contact search starts at the oldest mark.
* window (``window_start``/``window_end`` params, or a backfill run's data interval): exactly the
  half-open span ``[since, until)``. A stamp at ``until`` belongs to the next window, so
  consecutive backfill intervals cover every instant once. A window never moves a watermark.

After the load, a stream that succeeded advances to ``min(extract start − lag, newest dateUpdated
loaded)``, clipped at ``complete_through`` when the extract stopped early, never backwards, never
``now()``; a stream that failed keeps its mark.

Timestamps are GHL's millisecond ISO strings (``timeutil.format_ts``), which sort as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from ghl_shift4shop.errors import PermanentError
from ghl_shift4shop.payloads import ExtractSummary, Window
from ghl_shift4shop.timeutil import format_ts, parse_ts

Mode = Literal["incremental", "window"]

# GHL stamps carry milliseconds: one millisecond before an instant is the last one before it.
TICK = timedelta(milliseconds=1)


class EmptyWindow(PermanentError, ValueError):
    """A window whose end is not after its start: the run's params need fixing, not a retry."""


def just_before(stamp: str) -> str:
    """The last representable instant before ``stamp``."""
    return format_ts(parse_ts(stamp) - TICK)


def complete_through(newest: str | None, stopped_early: bool) -> str | None:
    """How far an extract that stopped early covered every contact.

    Results come in ``dateUpdated`` order, but contacts sharing the last stamp seen may lie beyond
    the stop, so only the instant before it is complete. ``None`` when the extract ran to the end.
    """
    return just_before(newest) if stopped_early and newest else None


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


@dataclass(frozen=True)
class Advance:
    """What a watermark commit decided: the new marks of the streams that moved, and who was held."""

    marks: dict[str, str] = field(default_factory=dict)
    advanced: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    reason: str | None = None  # why nothing moved, when that is the rule rather than the data


@dataclass(frozen=True)
class Cursor:
    """One run's span of changes, per stream."""

    mode: Mode
    since: str  # where the contact search starts
    until: str | None  # window end, exclusive; None: open-ended (incremental)
    marks: Mapping[str, str]  # per stream: the instant its changes start from

    @property
    def inclusive(self) -> bool:
        """A window includes its start; an incremental run starts just after the watermark."""
        return self.mode == "window"

    # -- planning --------------------------------------------------------------------------
    @classmethod
    def incremental(cls, stored: Mapping[str, str | None], initial: str) -> Cursor:
        """From each stream's stored watermark (``initial`` for a stream that has none).

        Each stream keeps its own mark, so one failing stream never holds back the others; the
        search starts at the oldest.
        """
        marks = {stream: mark or initial for stream, mark in stored.items()}
        return cls("incremental", min(marks.values()), None, marks)

    @classmethod
    def window(cls, streams: list[str], start: str, end: str | None) -> Cursor:
        """Exactly ``[start, end)`` for every stream (``end`` None: up to now)."""
        since = format_ts(parse_ts(start))
        until = format_ts(parse_ts(end)) if end else None
        if until is not None and until <= since:
            raise EmptyWindow(f"empty window: window_end {until} is not after window_start {since}")
        return cls("window", since, until, dict.fromkeys(streams, since))

    @classmethod
    def plan(
        cls,
        *,
        streams: list[str],
        stored: Mapping[str, str | None],
        initial: str,
        run_type: str,
        data_interval: tuple[datetime | None, datetime | None] | None,
        params: Mapping[str, object],
    ) -> Cursor:
        """The run's cursor: the ``window_start``/``window_end`` params, else a backfill run's data
        interval, else incremental from ``stored`` (one entry per stream in ``streams``)."""
        start, end = params.get("window_start"), params.get("window_end")
        if not start and run_type == "backfill" and data_interval and data_interval[0]:
            start = format_ts(data_interval[0])
            end = format_ts(data_interval[1]) if data_interval[1] else None
        if start:
            return cls.window(streams, str(start), str(end) if end else None)
        return cls.incremental({s: stored.get(s) for s in streams}, initial)

    # -- membership ------------------------------------------------------------------------
    def search_range(self) -> tuple[str, str | None, bool]:
        """``(since, last included instant or None, since inclusive?)`` for the contact search,
        whose upper bound is inclusive (``lte``)."""
        return self.since, just_before(self.until) if self.until else None, self.inclusive

    def covers(self, stream: str, stamp: str | None) -> bool:
        """Is a contact with this ``dateUpdated`` in ``stream``'s part of the run?"""
        mark = self.marks.get(stream, self.since)
        stamp = str(stamp or "")
        after = stamp > mark or (self.inclusive and stamp == mark)
        return after and (self.until is None or stamp < self.until)

    # -- after the load --------------------------------------------------------------------
    def advance(
        self,
        *,
        stored: Mapping[str, str | None],
        extracted: ExtractSummary,
        newest_loaded: str | None,
        stream_ok: Mapping[str, bool],
        lag_s: int,
    ) -> Advance:
        """Which streams' watermarks move, and to where. A window moves none."""
        if self.mode != "incremental":
            return Advance(reason="explicit window")
        newest = newest_loaded
        clip = extracted.get("complete_through")
        if clip and newest:
            newest = min(newest, clip)  # never past the last instant an early-stopped extract covered
        result = Advance()
        for stream in self.marks:
            if not stream_ok.get(stream, False):
                result.held.append(stream)
                continue
            current = stored.get(stream)
            new = next_watermark(current, extracted["started_at"], newest, lag_s)
            if new is not None and new != current:
                result.marks[stream] = new
                result.advanced.append(stream)
        return result

    # -- XCom ------------------------------------------------------------------------------
    def to_payload(self, run_id: str, stream: str) -> Window:
        return {
            "mode": self.mode,
            "since": self.since,
            "until": self.until,
            "streams": dict(self.marks),
            "run_id": run_id,
            "stream": stream,
        }

    @classmethod
    def from_payload(cls, window: Window) -> Cursor:
        marks = window.get("streams") or {window["stream"]: window["since"]}
        return cls(window["mode"], window["since"], window.get("until"), dict(marks))
