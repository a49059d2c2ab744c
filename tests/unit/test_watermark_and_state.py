"""Watermark rule and the state database (SQLite here; Postgres when reachable)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from ghl_shift4shop.cursors import next_watermark
from ghl_shift4shop.state import MappedId
from ghl_shift4shop.timeutil import format_ts, parse_ts

from tests.builders import fresh_state_store


def at(hh_mm: str, day: str = "2026-11-27") -> str:
    return f"{day}T{hh_mm}:00.000Z"


START = at("12:00")  # the extract started here; with the 300 s lag, start - lag = 11:55
LAG = 300

# (case, current watermark, newest dateUpdated loaded, lag, expected next watermark). Each wrong
# rule in WRONG_RULES gives another answer for at least one case (checked below).
WATERMARK_CASES = [
    ("newest before start-lag: newest", None, at("10:00"), LAG, at("10:00")),
    ("newest between start-lag and start: start-lag", None, at("11:58"), LAG, at("11:55")),
    ("newest equal to start-lag", None, at("11:55"), LAG, at("11:55")),
    ("newest after the start (future stamp): start-lag", None, at("00:00", "2099-01-01"), LAG, at("11:55")),
    ("no lag: newest after the start is held at the start", None, at("12:30"), 0, at("12:00")),
    ("current behind: moves up to newest", at("09:00"), at("10:00"), LAG, at("10:00")),
    ("current ahead of start-lag: never back", at("11:57"), at("11:59"), LAG, at("11:57")),
    ("current ahead of newest: never back", at("10:00"), at("00:00", "2026-11-20"), LAG, at("10:00")),
    ("nothing loaded: stays", at("10:00"), None, LAG, at("10:00")),
]


@pytest.mark.parametrize(
    ("current", "newest", "lag", "expected"), [c[1:] for c in WATERMARK_CASES], ids=[c[0] for c in WATERMARK_CASES]
)
def test_watermark_is_min_of_lagged_start_and_newest_loaded(current, newest, lag, expected):
    assert next_watermark(current, START, newest, lag) == expected


def _rule(pick, *, never_back: bool = True):
    """A candidate rule: ``pick(start - lag, start, newest)``; nothing loaded keeps the watermark."""

    def rule(current, start, newest, lag):
        if newest is None:
            return current
        start_dt = parse_ts(start)
        candidate = pick(start_dt - timedelta(seconds=lag), start_dt, parse_ts(newest))
        if never_back and current is not None and candidate <= parse_ts(current):
            return current
        return format_ts(candidate)

    return rule


WRONG_RULES = {
    "max(start - lag, newest)": _rule(lambda lagged, start, newest: max(lagged, newest)),
    "min(start, newest): lag ignored": _rule(lambda lagged, start, newest: min(start, newest)),
    "newest": _rule(lambda lagged, start, newest: newest),
    "start - lag": _rule(lambda lagged, start, newest: lagged),
    "now()": _rule(lambda lagged, start, newest: datetime.now(UTC)),
    "min(now() - lag, newest)": _rule(lambda lagged, start, newest: min(datetime.now(UTC) - (start - lagged), newest)),
    "may move backwards": _rule(lambda lagged, start, newest: min(lagged, newest), never_back=False),
}


@pytest.mark.parametrize("name", WRONG_RULES)
def test_the_cases_tell_the_rule_from_its_alternatives(name):
    """Keeps the case table honest: each plausible wrong rule fails at least one of its cases."""
    wrong = WRONG_RULES[name]
    assert [case for case, cur, newest, lag, want in WATERMARK_CASES if wrong(cur, START, newest, lag) != want]


def test_timestamp_round_trip():
    assert format_ts(parse_ts("2021-07-02T05:18:26.704Z")) == "2021-07-02T05:18:26.704Z"
    assert format_ts(parse_ts("2023-09-25T16:00:00+05:30")) == "2023-09-25T10:30:00.000Z"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    yield from fresh_state_store(request.param, tmp_path)


def test_state_round_trip(store):
    assert store.get_watermark("contacts") is None
    store.set_watermark("contacts", "2026-01-01T00:00:00.000Z", "r1")
    store.set_watermark("contacts", "2026-01-02T00:00:00.000Z", "r2")
    assert store.get_watermark("contacts") == "2026-01-02T00:00:00.000Z"
    assert store.reset_watermark("contacts") and store.get_watermark("contacts") is None

    store.record_mapped("contacts", [MappedId("g1", "101", "a@x.io", "h1"), MappedId("g2", "102", "b@x.io", "h2")])
    store.record_mapped("contacts", [MappedId("g1", "101", "a2@x.io", "h1b")])
    got = store.get_mapped("contacts", ["g1", "g2", "nope"])
    assert set(got) == {"g1", "g2"} and got["g1"].payload_hash == "h1b"
    assert store.find_by_match_key("contacts", ["a2@x.io", "a@x.io"])["a2@x.io"].source_id == "g1"
    assert "a@x.io" not in store.find_by_match_key("contacts", ["a@x.io"])

    store.quarantine("contacts", "validate", "r1", [("g9", "missing_email", {"id": "g9"})])
    store.quarantine("contacts", "validate", "r2", [("g9", "invalid_email", {"id": "g9"})])
    [row] = store.open_quarantine("contacts")
    assert row["reason"] == "invalid_email" and row["run_id"] == "r2"
    store.resolve_quarantine("contacts", ["g9"])
    assert store.open_quarantine("contacts") == []

    store.add_stats("r1", "load", {"created": 3})
    store.add_stats("r1", "load", {"created": 5})  # a retried task replaces, never double counts
    store.add_stats("r1", "validate:1", {"valid": 2})
    store.add_stats("r1", "validate:2", {"valid": 4})
    assert store.run_totals("r1") == {"created": 5, "valid": 6}


def test_batch_writes_keep_first_seen_and_let_the_last_row_of_a_key_win(store):
    # The writes are one statement per batch: a key twice in one batch must behave as two writes
    # in a row (Postgres refuses a multi-row upsert touching one row twice), and a quarantined
    # record seen again keeps the time it was first seen.
    store.record_mapped("contacts", [MappedId("g1", "101", "a@x.io", "h1"), MappedId("g1", "101", "a@x.io", "h2")])
    assert store.get_mapped("contacts", ["g1"])["g1"].payload_hash == "h2"

    store.quarantine("contacts", "validate", "r1", [("g9", "missing_email", {"id": "g9"})])
    [first] = store.open_quarantine("contacts")
    n = store.quarantine(
        "contacts", "validate", "r2", [("g9", "invalid_email", {"id": "g9"}), ("g8", "bad_phone", {"id": "g8"})]
    )
    rows = {r["source_id"]: r for r in store.open_quarantine("contacts")}
    assert n == 2 and set(rows) == {"g8", "g9"}
    assert rows["g9"]["first_seen"] == first["first_seen"] and rows["g9"]["last_seen"] > first["last_seen"]
    assert rows["g9"]["reason"] == "invalid_email" and rows["g9"]["run_id"] == "r2"

    store.save_parts([("g1", "notes", ("h", "one")), ("g1", "notes", ("h", "two")), ("g1", "tasks", ("t", "x"))])
    assert store.get_parts(["g1"]) == {"g1": {"notes": ("h", "two"), "tasks": ("t", "x")}}

    store.intend("contacts", {"g5": {"email": "e@x.io"}})
    store.intend("contacts", {"g5": {"email": "f@x.io"}, "g6": {}})
    assert store.pending("contacts") == {"g5": {"email": "f@x.io"}, "g6": {}}


def test_crm_parts_are_upserted_in_bulk_and_the_last_write_wins(store):
    store.save_parts([(f"c{i}", "notes", ("n", f"note {i}")) for i in range(2500)])  # three executemany chunks
    store.save_parts(
        [("c1", "notes", ("n", "newer")), ("c1", "tasks", ("t", "a task")), ("c1", "notes", ("n", "newest"))]
    )
    parts = store.get_parts(["c0", "c1", "c2499", "nope"])
    assert parts["c0"] == {"notes": ("n", "note 0")} and parts["c2499"] == {"notes": ("n", "note 2499")}
    assert parts["c1"] == {"notes": ("n", "newest"), "tasks": ("t", "a task")}
    assert "nope" not in parts
    store.save_parts([])


def test_every_setting_is_read_from_its_environment_variable(monkeypatch):
    from dataclasses import fields

    from ghl_shift4shop.settings import NOT_FROM_ENV, PER_TENANT, Settings, load_settings

    defaults = load_settings()
    special = {"data_dir", "state_url", "include_dir", "rate_backend", *PER_TENANT}
    tunable = [f for f in fields(Settings) if f.name not in NOT_FROM_ENV | special]
    assert tunable
    for f in tunable:
        current = getattr(defaults, f.name)
        changed = {int: lambda v: v + 1, float: lambda v: v + 0.5, str: lambda v: v + "x", bool: lambda v: not v}[
            type(f.default)
        ](current)
        monkeypatch.setenv(f"GHL_S4S_{f.name.upper()}", str(changed))
        assert getattr(load_settings(), f.name) == changed != current, f.name
    monkeypatch.setenv("GHL_S4S_BATCH_SIZE", "many")
    with pytest.raises(ValueError, match="GHL_S4S_BATCH_SIZE"):
        load_settings()
    monkeypatch.setenv("GHL_S4S_BATCH_SIZE", "7")
    for word, value in (("0", False), ("off", False), ("yes", True), ("1", True)):
        monkeypatch.setenv("GHL_S4S_DATA_DOCS", word)
        assert load_settings().data_docs is value, word
    monkeypatch.setenv("GHL_S4S_DATA_DOCS", "maybe")
    with pytest.raises(ValueError, match="GHL_S4S_DATA_DOCS"):
        load_settings()


def test_run_folders_older_than_keep_days_are_pruned_and_newer_ones_kept(tmp_path):
    import time

    from ghl_shift4shop.batches import prune_runs, run_dir, stage_path, write_jsonl

    old, new = (
        stage_path(tmp_path, "old run", "contacts", "extract", 1),
        stage_path(tmp_path, "new", "contacts", "extract", 1),
    )
    write_jsonl(old, [{"id": "a"}])
    write_jsonl(new, [{"id": "b"}])
    eight_days_ago = time.time() - 8 * 86400
    os.utime(run_dir(tmp_path, "old run"), (eight_days_ago, eight_days_ago))
    assert prune_runs(tmp_path, keep_days=7) == 1
    assert not run_dir(tmp_path, "old run").exists() and new.exists()
    assert prune_runs(tmp_path, keep_days=7) == 0


def test_a_reconciliation_run_and_its_findings_round_trip_and_a_retry_replaces_them(store):
    started = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    findings = [
        {"kind": "drift", "source_id": "c1", "target_id": "7", "field": "phone", "ghl_value": "+1", "action": "x"},
        {"kind": "deleted_in_ghl", "source_id": "c2", "target_id": "8", "action": "disabled", "ghl_value": None},
        {"kind": "duplicate_email", "target_id": "9", "store_value": ["9", "10"], "action": "reported"},
    ]
    n = store.save_reconcile(
        "r1", started_at=started, dry_run=True, status="ok", summary={"drift": 1}, findings=findings
    )
    assert n == 3
    got = store.reconcile_findings("r1")
    assert [f["kind"] for f in got] == ["drift", "deleted_in_ghl", "duplicate_email"]
    assert got[2]["store_value"] == '["9", "10"]' and got[1]["ghl_value"] is None
    assert [f["source_id"] for f in store.reconcile_findings("r1", kind="drift")] == ["c1"]
    store.save_reconcile("r1", started_at=started, dry_run=False, status="braked", summary={}, findings=findings[:1])
    assert len(store.reconcile_findings("r1")) == 1
    (run,) = store.recent_reconciles()
    assert run["status"] == "braked" and run["dry_run"] is False and run["summary"] == {}
