"""The XCom contract between the sync's tasks: what each task body takes and returns.

Every payload is a JSON-safe dict (XCom stores JSON); these TypedDicts only name its keys, so a
reader of ``sync.py`` or the DAG file sees what flows from one task to the next. Data itself never
travels through XCom: batches are files on disk, referred to by :class:`BatchRef`.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict


class Window(TypedDict):
    """plan_window → extract, fetch_children, commit_watermark (built by ``cursors.Cursor``)."""

    mode: Literal["incremental", "window"]
    since: str  # where the contact search starts
    until: str | None  # window end, exclusive; None: open-ended
    streams: dict[str, str]  # per stream: the instant its changes start from
    run_id: str
    stream: str  # the parent stream ("contacts")


class BatchRef(TypedDict):
    """One batch file of one stage: extract → validate → fetch_children → transform → load."""

    batch: int
    path: str
    rows: int


class ValidatedRef(BatchRef):
    """validate → quality_gate and fetch_children."""

    valid: int
    quarantined: int


class ExtractSummary(TypedDict):
    """extract → its ``summary`` XCom, read by commit_watermark (its batches are mapped over)."""

    stream: str
    since: str
    until: str | None  # last instant searched (inclusive), None: open-ended
    started_at: str  # the watermark never passes this minus the lag
    extracted: int
    pages_rows: int
    fetched_in_full: int
    vanished: int
    newest_date_updated: str | None
    stopped: str | None  # why the extract stopped early (the daily budget), None: ran to the end
    complete_through: str | None  # on an early stop: the last instant covered in full
    batches: list[BatchRef]
    calls_ghl: int


class GateResult(TypedDict):
    """quality_gate: the share of bad rows (raises above the threshold)."""

    rows: int
    quarantined: int
    bad_share: float
    max_bad_share: float


class ChildStreamRef(TypedDict):
    """One child stream of one batch, as fetch_children left it."""

    ok: bool
    path: NotRequired[str]
    contacts: NotRequired[int]
    items: NotRequired[int]
    quarantined: NotRequired[int]
    deferred: NotRequired[bool]  # the daily budget ran low: next run
    error: NotRequired[str]


class FetchedRef(ValidatedRef):
    """fetch_children → transform and load_crm: the validated batch plus its child streams."""

    children: dict[str, ChildStreamRef]


class LoadResult(TypedDict):
    """load → commit_watermark: the customer load's counts."""

    created: int
    updated: int
    unchanged: int
    adopted: int
    load_quarantined: int
    dead_lettered: int
    dead_letters_retried: int
    settled_by_lookup: int
    calls_shift4shop: int
    newest_date_updated: str | None


class StreamStatus(TypedDict, total=False):
    """load_crm → commit_watermark, per child stream (plus the stream's load counts)."""

    ok: bool
    deferred: bool
    errors: list[str]


class WatermarkResult(TypedDict):
    """commit_watermark → report."""

    watermark: str | None  # the parent stream's, after the commit
    advanced: list[str]
    held: NotRequired[list[str]]
    reason: NotRequired[str]


RunSummary = dict[str, int | str | None]
"""report's return value: the counts of SUMMARY_FIELDS and CRM_FIELDS, the failed streams, the watermark."""
