"""The cursor: planning a run's span, which contacts each stream takes, and which watermarks move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ghl_shift4shop.cursors import Cursor, EmptyWindow, complete_through, just_before
from ghl_shift4shop.errors import PermanentError
from ghl_shift4shop.timeutil import format_ts

STREAMS = ["contacts", "tasks", "notes"]
INITIAL = "1970-01-01T00:00:00.000Z"
T0 = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)
HALF_HOUR = timedelta(minutes=30)
MS = timedelta(milliseconds=1)


def plan(run_type="scheduled", interval=None, params=None, stored=None) -> Cursor:
    return Cursor.plan(
        streams=STREAMS,
        stored=stored or {},
        initial=INITIAL,
        run_type=run_type,
        data_interval=interval,
        params=params or {},
    )


def extract_summary(started="2026-11-27T12:00:00.000Z", complete=None) -> dict:
    return {"started_at": started, "complete_through": complete}


def test_incremental_plan_keeps_each_streams_mark_and_searches_from_the_oldest():
    cur = plan(stored={"contacts": "2026-11-02T00:00:00.000Z", "tasks": "2026-11-01T00:00:00.000Z"})
    assert cur.mode == "incremental" and cur.until is None and not cur.inclusive
    assert cur.marks == {"contacts": "2026-11-02T00:00:00.000Z", "tasks": "2026-11-01T00:00:00.000Z", "notes": INITIAL}
    assert cur.since == INITIAL


def test_a_backfill_run_takes_its_data_interval_and_params_win_over_it():
    cur = plan("backfill", (T0, T0 + HALF_HOUR), stored={"contacts": "2026-11-02T00:00:00.000Z"})
    assert (cur.mode, cur.since, cur.until) == ("window", format_ts(T0), format_ts(T0 + HALF_HOUR))
    assert cur.marks == dict.fromkeys(STREAMS, format_ts(T0))
    manual = plan("backfill", (T0, T0 + HALF_HOUR), params={"window_start": "2026-09-01T00:00:00+02:00"})
    assert (manual.since, manual.until) == ("2026-08-31T22:00:00.000Z", None)
    # A scheduled run's interval is not a window: scheduled runs are incremental.
    assert plan("scheduled", (T0, T0 + HALF_HOUR)).mode == "incremental"


@pytest.mark.parametrize("end", ["2026-10-01T00:00:00Z", "2026-09-30T23:59:59Z"])
def test_an_empty_or_reversed_window_fails_without_retry(end):
    with pytest.raises(EmptyWindow, match="empty window") as caught:
        plan(params={"window_start": "2026-10-01T00:00:00Z", "window_end": end})
    assert isinstance(caught.value, PermanentError)  # the task fails at once: retrying cannot fix params


def test_consecutive_backfill_intervals_take_every_instant_exactly_once():
    """An interval's end belongs to the next interval: a contact stamped on a boundary is synced once."""
    cursors = [plan("backfill", (T0 + i * HALF_HOUR, T0 + (i + 1) * HALF_HOUR)) for i in range(3)]
    edges = [T0 + i * HALF_HOUR for i in range(4)]
    stamps = [format_ts(e + d) for e in edges for d in (-MS, timedelta(0), MS)]
    for stamp in stamps:
        owners = [i for i, c in enumerate(cursors) if c.covers("contacts", stamp)]
        inside = format_ts(T0) <= stamp < format_ts(edges[-1])
        assert owners == ([(datetime.fromisoformat(stamp.replace("Z", "+00:00")) - T0) // HALF_HOUR] if inside else [])
    # The search asks for the same span: from the start (inclusive) to the last millisecond before the end.
    assert cursors[0].search_range() == (format_ts(T0), format_ts(T0 + HALF_HOUR - MS), True)


def test_incremental_takes_what_is_strictly_after_each_streams_own_mark():
    cur = plan(stored={"contacts": "2026-11-01T00:00:00.000Z", "tasks": "2026-11-03T00:00:00.000Z"})
    assert not cur.covers("contacts", "2026-11-01T00:00:00.000Z")  # loaded by the run that set the mark
    assert cur.covers("contacts", "2026-11-01T00:00:00.001Z")
    assert not cur.covers("tasks", "2026-11-02T00:00:00.000Z")  # the tasks stream already has it
    assert cur.covers("tasks", "2099-01-01T00:00:00.000Z")
    assert not cur.covers("contacts", None)
    assert cur.search_range() == (cur.since, None, False)


def test_a_window_moves_no_watermark():
    cur = plan("backfill", (T0, T0 + HALF_HOUR))
    step = cur.advance(
        stored=dict.fromkeys(STREAMS),
        extracted=extract_summary(),
        newest_loaded=format_ts(T0 + timedelta(minutes=5)),
        stream_ok=dict.fromkeys(STREAMS, True),
        lag_s=0,
    )
    assert step.marks == {} and step.advanced == [] and step.held == [] and step.reason == "explicit window"


def test_failed_streams_are_held_and_an_early_stop_clips_the_others():
    cur = plan(stored=dict.fromkeys(STREAMS, "2026-11-01T00:00:00.000Z"))
    newest = "2026-11-05T10:00:00.000Z"
    step = cur.advance(
        stored=dict(cur.marks),
        extracted=extract_summary(complete=complete_through(newest, stopped_early=True)),
        newest_loaded=newest,
        stream_ok={"contacts": True, "tasks": False, "notes": True},
        lag_s=300,
    )
    assert step.held == ["tasks"]
    assert step.marks == dict.fromkeys(["contacts", "notes"], "2026-11-05T09:59:59.999Z")
    assert complete_through(newest, stopped_early=False) is None
    assert just_before("2026-11-05T10:00:00.000Z") == "2026-11-05T09:59:59.999Z"


def test_payload_round_trip_and_the_old_shape_without_streams():
    cur = plan("backfill", (T0, T0 + HALF_HOUR))
    assert Cursor.from_payload(cur.to_payload("r1", "contacts")) == cur
    old = Cursor.from_payload({"mode": "incremental", "stream": "contacts", "since": INITIAL, "run_id": "r"})
    assert old.marks == {"contacts": INITIAL} and old.until is None
