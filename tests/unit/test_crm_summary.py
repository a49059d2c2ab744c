"""The Comments summary: what it says, and that it never passes 255 characters, whatever the input."""

from __future__ import annotations

from datetime import UTC, datetime

from ghl_shift4shop.crm_summary import build_comments, plain_text
from ghl_shift4shop.text import cut, utf16_len
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_summary_reads_naturally():
    tasks = [
        {"title": "Send quote", "dueDate": "2026-12-01T09:00:00.000Z", "completed": False},
        {"title": "Call back", "dueDate": "2026-11-30T09:00:00.000Z", "completed": False},
        {"title": "Old", "dueDate": "2026-01-01T09:00:00.000Z", "completed": True},
    ]
    notes = [
        {"body": "<p>First <b>contact</b></p>", "dateAdded": "2026-10-01T10:00:00.000Z"},
        {"body": "<p>Asked about &amp; <i>bulk</i> pricing</p>", "dateAdded": "2026-11-20T10:00:00.000Z"},
    ]
    events = [
        {"title": "Past demo", "startTime": "2026-11-01 10:00:00", "appointmentStatus": "showed"},
        {"title": "Cancelled", "startTime": "2026-11-28 10:00:00", "appointmentStatus": "cancelled"},
        {"title": "Demo", "startTime": "2026-12-03T10:00:00+01:00", "appointmentStatus": "confirmed"},
    ]
    text = build_comments(tasks, notes, events, now=NOW)
    assert text == (
        'Tasks: 2 open, next due 2026-11-30 "Call back" | Note 2026-11-20: "Asked about & bulk pricing" | '
        'Next appt 2026-12-03 09:00 UTC "Demo"'
    )


def test_overdue_and_empty_cases():
    overdue = [{"title": "Late", "dueDate": "2026-11-01T00:00:00Z", "completed": False}]
    assert build_comments(overdue, [], [], now=NOW) == 'Tasks: 1 open, overdue since 2026-11-01 "Late"'
    assert build_comments([{"title": "x", "completed": True}], None, None, now=NOW) == "Tasks: 0 open of 1"
    assert build_comments([], [], [], now=NOW) == ""


def test_long_inputs_share_the_room():
    tasks = [{"title": "T" * 500, "dueDate": "2026-12-01T00:00:00Z", "completed": False}]
    notes = [{"body": "N" * 70_000, "dateAdded": "2026-11-01T00:00:00Z"}]
    events = [{"title": "E" * 300, "startTime": "2026-12-02 10:00:00", "appointmentStatus": "new"}]
    text = build_comments(tasks, notes, events, now=NOW)
    assert utf16_len(text) <= 255
    assert text.count("…") == 3 and "Note 2026-11-01" in text and "Next appt" in text


def test_html_is_text_in_the_summary():
    assert plain_text("<script>alert(1)</script><p>Hi&nbsp;there</p>") == "Hi there"


json_text = st.one_of(st.none(), st.text(max_size=400), st.integers(), st.just("2026-12-01T10:00:00Z"))
task = st.fixed_dictionaries(
    {"title": json_text, "dueDate": json_text, "completed": st.one_of(st.booleans(), st.none())}
)
note = st.fixed_dictionaries({"body": json_text, "dateAdded": json_text})
event = st.fixed_dictionaries(
    {"title": json_text, "startTime": json_text, "appointmentStatus": st.sampled_from(["new", "cancelled", None])}
)


@settings(max_examples=300, deadline=None)
@given(st.lists(task, max_size=6), st.lists(note, max_size=6), st.lists(event, max_size=6))
def test_never_more_than_255_whatever_the_input(tasks, notes, events):
    text = build_comments(tasks, notes, events, now=NOW)
    assert utf16_len(text) <= 255


@given(st.text(max_size=300), st.integers(min_value=0, max_value=260))
def test_cut_respects_utf16_and_never_splits_a_character(text, limit):
    out = cut(text, limit)
    assert utf16_len(out) <= limit and text.startswith(out.rstrip()) or text.startswith(out)
    out.encode("utf-16-le")  # no lone surrogate
