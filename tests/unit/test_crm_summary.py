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


def _longest_prefix_within(text: str, limit: int) -> str:
    """Reference for ``cut``: the longest whole-character prefix within ``limit`` UTF-16 units."""
    for end in range(len(text), -1, -1):
        if len(text[:end].encode("utf-16-le")) // 2 <= limit:
            return text[:end]
    return ""


# The alphabet mixes 1-unit characters, 2-unit ones (astral: emoji, CJK extension B) and spaces,
# so limits land inside surrogate pairs and on trailing whitespace.
cut_text = st.text(alphabet=st.sampled_from("ab é\t\n中🚀𠀋😀"), max_size=300) | st.text(max_size=300)


@settings(max_examples=300)
@given(cut_text, st.data())
def test_cut_respects_utf16_and_never_splits_a_character(text, data):
    # Limits around the text's own length, so most examples cut (and many cut inside a pair).
    limit = data.draw(st.integers(min_value=0, max_value=utf16_len(text) + 2), label="limit")
    out = cut(text, limit)
    # The bound holds whatever else is true.
    assert utf16_len(out) <= limit
    # Whole characters only: every character of the result is the input's, in place (a split
    # surrogate pair could not be a prefix of a str, and would not encode).
    assert text.startswith(out)
    out.encode("utf-16-le")
    # Nothing is cut from text that fits; text that does not fit keeps as much as fits (less the
    # trailing whitespace at the cut, which ``cut`` trims).
    if utf16_len(text) <= limit:
        assert out == text
    else:
        assert out == _longest_prefix_within(text, limit).rstrip()
