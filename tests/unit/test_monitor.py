"""The monitoring page's queries (ghl_shift4shop.monitor) over a real SQLite state database, the Data Docs
a real GX validation leaves, and the page's file-serving guard."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ghl_shift4shop import monitor
from ghl_shift4shop.state import StateStore
from ghl_shift4shop.validate import data_docs_dir, load_suite_spec, run_suite, suite_frame

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path) -> StateStore:
    return StateStore(f"sqlite:///{tmp_path / 'state.db'}")


def test_watermark_lag_is_now_minus_the_watermark(store):
    store.set_watermark("contacts", "2026-11-29T10:00:00.000Z", "run-1")
    store.set_watermark("tasks", "2026-11-26T11:30:00.000Z", "run-0")
    now = datetime(2026, 11, 29, 11, 30, tzinfo=UTC)
    marks = {m["stream"]: m for m in monitor.watermarks(store, now)}
    assert marks["contacts"]["lag_seconds"] == 5400 and marks["contacts"]["lag"] == "90 min"
    assert marks["contacts"]["run_id"] == "run-1" and marks["contacts"]["watermark"] == "2026-11-29T10:00:00.000Z"
    assert marks["tasks"]["lag_seconds"] == 3 * 86400 and marks["tasks"]["lag"] == "3.0 d"


def test_quarantine_filters_by_stream_and_text_masks_emails_and_hides_resolved(store):
    store.quarantine(
        "contacts",
        "validate",
        "run-1",
        [
            ("c1", "invalid_email: not a well-formed address", {"id": "c1", "email": "jane.doe@example"}),
            ("c2", "missing_email: Shift4Shop requires Email", {"id": "c2", "email": None}),
            ("c3", "invalid_email: not a well-formed address", {"id": "c3", "email": "x@y"}),
        ],
    )
    store.quarantine("tasks", "validate", "run-1", [("t1@c1", "missing_title", {"id": "t1", "title": ""})])
    store.resolve_quarantine("contacts", ["c3"])

    everything = monitor.quarantine(store)
    assert everything["total"] == 3  # c3 was resolved
    assert {e["source_id"] for e in everything["items"]} == {"c1", "c2", "t1@c1"}
    only_contacts = monitor.quarantine(store, stream="contacts")
    assert {e["source_id"] for e in only_contacts["items"]} == {"c1", "c2"}
    [hit] = monitor.quarantine(store, q="INVALID_email")["items"]
    assert hit["source_id"] == "c1" and hit["stage"] == "validate" and hit["run_id"] == "run-1"
    assert "j***@example" in hit["record"] and "jane.doe" not in json.dumps(everything)
    assert monitor.quarantine(store, stream="tasks", q="invalid")["total"] == 0
    assert monitor.quarantine(store, limit=1)["total"] == 3 and len(monitor.quarantine(store, limit=1)["items"]) == 1


def test_dead_letters_and_latest_reconcile_with_findings(store):
    store.dead_letter("contacts", "c9", 503, "store busy for ann.lee@example.com", {"id": "c9"})
    store.dead_letter("contacts", "c9", 503, "store busy for ann.lee@example.com", {"id": "c9"})
    [dl] = monitor.dead_letters(store)["items"]
    assert (dl["source_id"], dl["status"], dl["attempts"]) == ("c9", 503, 2) and "a***@example.com" in dl["reason"]
    assert monitor.dead_letters(store, q="nothing like it")["total"] == 0

    assert monitor.latest_reconcile(store) is None
    for run_id, value in (("rec-old", "Old"), ("rec-new", "New")):
        store.save_reconcile(
            run_id,
            started_at=datetime.now(UTC),
            dry_run=False,
            status="ok",
            summary={"drift": 1, "missing_in_store": 1},
            findings=[
                {
                    "kind": "drift",
                    "source_id": "c1",
                    "target_id": "7",
                    "field": "BillingCity",
                    "ghl_value": value,
                    "action": "reported",
                },
                {"kind": "missing_in_store", "source_id": "c2", "action": "repaired"},
            ],
        )
    latest = monitor.latest_reconcile(store)
    assert latest["run_id"] == "rec-new" and latest["summary"] == {"drift": 1, "missing_in_store": 1}
    assert [(f["kind"], f["ghl_value"]) for f in latest["findings"]] == [("drift", "New"), ("missing_in_store", None)]
    assert [f["kind"] for f in monitor.latest_reconcile(store, kind="missing_in_store")["findings"]] == [
        "missing_in_store"
    ]


def test_runs_chart_is_a_standalone_svg_of_the_counts():
    rows = [{"finished_at": f"2026-11-29T1{i}:00:00Z", "counts": {"extracted": 10 * i, "created": i}} for i in range(3)]
    svg = monitor.runs_chart_svg(rows)
    assert svg.lstrip().startswith("<svg") and "extracted" in svg and "created" in svg
    assert re.findall(r"<script[^>]*\bsrc=", svg) == []  # nothing fetched from a CDN


def test_validation_leaves_data_docs_that_a_retry_replaces(tmp_path):
    spec = load_suite_spec(ROOT / "include" / "expectations", "contacts")
    records = [
        {"id": "c1", "email": "ok@example.com", "dateUpdated": "2026-11-29T10:00:00.000Z"},
        {"id": "c2", "email": "mary.major@nowhere", "dateUpdated": "2026-11-29T10:00:00.000Z"},
    ]
    site = data_docs_dir(tmp_path, "manual__2026-11-29T10:00:00+00:00", "contacts", 3)
    for _attempt in range(2):
        failures = run_suite(spec, suite_frame(spec, records), docs_dir=site)
    assert set(failures) == {1}
    [listed] = monitor.data_docs(tmp_path, "manual__2026-11-29T10:00:00+00:00")
    assert (listed["stream"], listed["batch"], listed["success"], listed["unsuccessful"]) == ("contacts", 3, False, 1)
    assert listed["failed"] == [{"expectation": "expect_column_values_to_match_regex", "column": "email"}]
    [page] = listed["validations"]
    assert len(list((site / "validations").rglob("*.html"))) == 1  # the retry replaced the first attempt's site
    html = (site.parent.parent / page).read_text(encoding="utf-8")
    assert "m***@nowhere" in html and "mary.major" not in html
    assert not (site / "static").exists()
    # A site still being built is not listed.
    (site.parent / "00004.tmp-123").mkdir()
    (site.parent / "00004.tmp-123" / "index.html").write_text("<html></html>")
    assert [s["batch"] for s in monitor.data_docs(tmp_path, "manual__2026-11-29T10:00:00+00:00")] == [3]


def test_data_docs_files_are_served_only_from_inside_their_folder(tmp_path):
    from fastapi import HTTPException
    from ghl_shift4shop.ui import _within

    root = tmp_path / "runs" / "r" / "data_docs"
    (root / "contacts" / "00001").mkdir(parents=True)
    (root / "contacts" / "00001" / "index.html").write_text("ok")
    (tmp_path / "state.db").write_text("secret")
    assert _within(root, "contacts/00001/index.html").read_text() == "ok"
    for escape in ("../../../state.db", "/etc/passwd", "contacts/../../../../state.db", "contacts"):
        with pytest.raises(HTTPException) as err:
            _within(root, escape)
        assert err.value.status_code == 404


def test_held_children_and_the_overview_counts(store, tmp_path):
    store.hold_children("tasks", [{"contact_id": "c1", "items": [{"id": "t1"}]}], "customer not in the store yet")
    store.hold_children("notes", [{"contact_id": "c2", "items": [{"id": "n1"}]}], "create outcome unknown")
    [held] = monitor.held(store, q="not in the store")["items"]
    assert (held["stream"], held["contact_id"], held["attempts"]) == ("tasks", "c1", 1)
    assert monitor.held(store, stream="notes")["total"] == 1
    store.quarantine("contacts", "validate", "r1", [("c5", "missing_email", {"id": "c5"})])
    store.dead_letter("contacts", "c6", 500, "boom", {"id": "c6"})
    store.save_summary("r1", {"extracted": 7, "created": 5, "quarantined": 1, "failed_streams": "none"})
    over = monitor.overview(store, tmp_path, now=datetime(2026, 11, 29, tzinfo=UTC))
    assert (over["open_quarantine"], over["dead_letters"], over["held"], over["reconcile"]) == (1, 1, 2, None)
    [run] = over["runs"]
    assert run["run_id"] == "r1" and run["counts"]["extracted"] == 7 and run["counts"]["updated"] == 0
    assert run["data_docs"] == 0 and run["failed_streams"] == "none"
