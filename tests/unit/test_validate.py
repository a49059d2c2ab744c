"""The GX suite in include/expectations decides what is quarantined, and with which reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ghl_shift4shop.batches import read_jsonl, write_jsonl
from ghl_shift4shop.errors import PermanentError
from ghl_shift4shop.state import StateStore
from ghl_shift4shop.validate import QualityGateError, quality_gate, validate_batch

ROOT = Path(__file__).resolve().parents[2]


def good(i: int, **over) -> dict:
    c = {"id": f"c{i:019d}", "email": f"person{i}@example.com", "dateUpdated": "2026-11-01T10:00:00.000Z"}
    c.update(over)
    return c


@pytest.fixture
def store(tmp_path):
    return StateStore(f"sqlite:///{tmp_path / 'state.db'}")


def run(tmp_path, store, records, data_docs=True):
    path = tmp_path / "in.jsonl"
    write_jsonl(path, records)
    ref = {"batch": 1, "path": str(path), "rows": len(records)}
    return validate_batch(
        ref,
        state=store,
        data_dir=tmp_path,
        expectations_dir=ROOT / "include" / "expectations",
        run_id="r1",
        data_docs=data_docs,
    )


@pytest.mark.parametrize("data_docs", [True, False], ids=["fresh context, data docs", "cached context"])
def test_each_rule_quarantines_with_its_reason(tmp_path, store, data_docs):
    records = [
        good(1),
        good(2, email=None),
        good(3, email="   "),
        good(4, email="john at example"),
        good(5, email="a@b"),
        good(6, email="x" * 95 + "@example.com"),
        good(7, dateUpdated="yesterday"),
        good(8, id=None),
        good(9, dateUpdated=None),
    ]
    result = run(tmp_path, store, records, data_docs)
    assert (result["rows"], result["valid"], result["quarantined"]) == (9, 1, 8)
    assert [r["id"] for r in read_jsonl(result["path"])] == [records[0]["id"]]
    reasons = {q["source_id"]: q["reason"] for q in store.open_quarantine("contacts")}
    assert reasons[records[1]["id"]].startswith("missing_email")
    assert reasons[records[2]["id"]].startswith("missing_email")
    assert reasons[records[3]["id"]].startswith("invalid_email")
    assert reasons[records[4]["id"]].startswith("invalid_email")
    assert reasons[records[5]["id"]].startswith("email_too_long")
    assert reasons[records[6]["id"]].startswith("invalid_date_updated")
    assert reasons[records[8]["id"]].startswith("missing_date_updated")
    [no_id] = [k for k in reasons if k.startswith("no-id:")]
    assert reasons[no_id].startswith("missing_id")


def test_rerun_converges_and_fixed_records_are_resolved(tmp_path, store):
    bad = good(2, email="broken")
    run(tmp_path, store, [good(1), bad])
    run(tmp_path, store, [good(1), bad])
    assert len(store.open_quarantine("contacts")) == 1
    run(tmp_path, store, [good(1), good(2)])
    assert store.open_quarantine("contacts") == []


def test_quality_gate_threshold():
    ok = quality_gate([{"rows": 100, "quarantined": 10}], 0.10)
    assert ok["bad_share"] == 0.1
    with pytest.raises(QualityGateError, match="11 of 100") as info:
        quality_gate([{"rows": 50, "quarantined": 5}, {"rows": 50, "quarantined": 6}], 0.10)
    assert isinstance(info.value, PermanentError)  # fails the task without retries
    assert quality_gate([], 0.0)["rows"] == 0


def test_the_cached_suite_fails_the_rows_a_fresh_context_fails():
    """run_suite without Data Docs reuses one GX context per process: same failures as a new context each
    time, batch after batch (nothing of one batch's validation leaks into the next)."""
    from ghl_shift4shop.ghl.hook import normalize_search_item
    from ghl_shift4shop.validate import _run_fresh, load_suite_spec, run_suite, suite_frame

    from sandbox.seed import generate_contacts

    spec = load_suite_spec(ROOT / "include" / "expectations", "contacts")
    generated = [normalize_search_item(c) for c in generate_contacts(1500, seed=8, dirty_share=0.2, location_id="x")]
    batches = [
        generated[:500],
        [good(i) for i in range(50)],  # nothing fails
        [good(1), good(1), good(2, email="a@b"), good(3, id=None), good(4, dateUpdated="now")],
        generated[500:],
        generated[:500],
    ]
    failing = 0
    for records in batches:
        frame = suite_frame(spec, records)
        cached = run_suite(spec, frame)
        assert cached == _run_fresh(spec, frame, None)
        failing += len(cached)
    assert failing > 100


def test_the_suite_cache_keeps_the_latest_few_suites_of_a_long_lived_worker():
    """One GX context per suite version: an expectations file that keeps changing must not pile up
    contexts in a worker that lives for days; the suites in use stay cached."""
    from ghl_shift4shop import validate
    from ghl_shift4shop.validate import load_suite_spec, run_suite, suite_frame

    spec = load_suite_spec(ROOT / "include" / "expectations", "contacts")
    frame = suite_frame(spec, [good(i) for i in range(3)])
    for version in range(validate._CACHE_SIZE + 4):
        run_suite({**spec, "meta_version": version}, frame)
        run_suite(spec, frame)  # the suite in use, between every change
    assert len(validate._CACHED) == validate._CACHE_SIZE
    assert json.dumps(spec, sort_keys=True) in validate._CACHED
