"""Fetching tasks and appointments against the GHL simulator, under both profiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ghl_shift4shop.children import appointment_window, fetch_appointments, fetch_tasks
from ghl_shift4shop.crm_config import load_crm_config
from ghl_shift4shop.ghl.hook import GhlHook

from tests.builders import seed_ghl
from tests.conftest import LOCATION_ID

pytestmark = pytest.mark.both_profiles  # the load must hold under either reading of the store

ROOT = Path(__file__).resolve().parents[2]
CFG = load_crm_config(ROOT / "include" / "mappings")


def test_appointments_are_the_same_whichever_strategy_fetches_them_and_in_utc(sims):
    contacts, crm = seed_ghl(sims, 150, seed=71, location_id=LOCATION_ID)
    start, end = appointment_window(CFG, datetime.now(UTC))

    def when(e: dict, key: str = "startTime") -> datetime:
        return datetime.fromisoformat(e[key].replace("Z", "+00:00"))

    def in_window(e: dict) -> bool:  # overlap, as the calendar endpoint decides it
        return when(e) <= end and when(e, "endTime") > start

    inside = {e["contactId"] for e in crm["events"] if in_window(e)}
    outside = {e["contactId"] for e in crm["events"] if not start - timedelta(days=1) <= when(e) <= end}
    # Contacts with an appointment in the window and, where the seed has them, others outside it.
    picked = sorted(inside, key=lambda c: (c not in outside, c))[:3]
    assert len(picked) == 3 and picked[0] in outside
    hook = GhlHook()
    per_contact = fetch_appointments(hook, picked, CFG, workers=4)
    assert not sims.ghl_requests("/calendars/events")  # three contacts: one call each
    sims.clear_logs()
    everyone = fetch_appointments(hook, [c["id"] for c in contacts], CFG, workers=4)
    assert sims.ghl_requests("/calendars/events")  # many contacts: by calendar
    assert not [r for r in sims.ghl_requests("/contacts/") if r["path"].endswith("/appointments")]

    for cid in picked:

        def key(e):
            return (e["id"], e["startTime"], e["endTime"])

        assert sorted(map(key, per_contact[cid])) == sorted(map(key, everyone[cid])), cid
        for event in per_contact[cid]:
            # The true instant, whatever zone the location is in (the strict profile: +13:45).
            truth = next(e for e in crm["events"] if e["id"] == event["id"])
            assert event["startTime"].endswith("Z")
            assert datetime.fromisoformat(event["startTime"].replace("Z", "+00:00")) == datetime.fromisoformat(
                truth["startTime"].replace("Z", "+00:00")
            )
    kept = [e for cid in picked for e in per_contact[cid]]
    assert kept and all(
        start - timedelta(hours=1) <= datetime.fromisoformat(e["startTime"].replace("Z", "+00:00")) <= end for e in kept
    )


def test_every_task_of_a_contact_is_found_whatever_the_page_size(sims):
    contacts, _ = seed_ghl(sims, 3, seed=72, location_id=LOCATION_ID, crm=False)
    cid = contacts[0]["id"]
    tasks = [
        {"id": f"task{i:016d}", "title": f"Call {i}", "dueDate": "2026-12-01T10:00:00.000Z", "completed": False,
         "contactId": cid}
        for i in range(130)
    ]  # fmt: skip
    sims.ghl_state.load_tasks(tasks)
    found = fetch_tasks(GhlHook(), [c["id"] for c in contacts], CFG, workers=2)
    assert sorted(t["id"] for t in found[cid]) == sorted(t["id"] for t in tasks)
    pages = sims.ghl_requests(f"/locations/{LOCATION_ID}/tasks/search")
    # Pages of 100 (lenient) or 25 (strict), walked until an empty one.
    assert len(pages) == (130 // 100 + 2 if sims.profile == "lenient" else 130 // 25 + 2)


def test_a_time_zone_named_in_the_connection_spares_the_location_call(sims, monkeypatch):
    import json

    conn = json.loads(sims.connections_env()["AIRFLOW_CONN_GHL_DEFAULT"])
    conn["extra"]["timezone"] = "Asia/Tokyo"
    monkeypatch.setenv("AIRFLOW_CONN_GHL_DEFAULT", json.dumps(conn))
    assert GhlHook().location_timezone() == "Asia/Tokyo"
    assert sims.ghl_requests("/locations/") == []
    monkeypatch.setenv("AIRFLOW_CONN_GHL_DEFAULT", sims.connections_env()["AIRFLOW_CONN_GHL_DEFAULT"])
    assert GhlHook().location_timezone() == sims.ghl_state.location_timezone
    assert len(sims.ghl_requests("/locations/")) == 1


def test_calendar_events_are_read_a_fortnight_at_a_time_and_an_event_across_two_is_kept_once(sims):
    """A batch's memory must not follow the location's size: each calendar answer covers one slice
    (``CALENDAR_SLICE``), and keeps only the batch's contacts' events. An event overlapping two
    slices comes back in both answers and reaches the batch once."""
    from ghl_shift4shop.children import CALENDAR_SLICE, CALENDAR_SLICE_OVERLAP, calendar_slices

    contacts, crm = seed_ghl(sims, 60, seed=73, location_id=LOCATION_ID)
    start, end = appointment_window(CFG, datetime.now(UTC))
    cut = start + CALENDAR_SLICE
    across = {
        "id": "evacross0000000000001",
        "calendarId": crm["calendars"][0]["id"],
        "contactId": contacts[0]["id"],
        "title": "Across the cut",
        "startTime": (cut - timedelta(hours=1)).isoformat(),
        "endTime": (cut + timedelta(hours=1)).isoformat(),
    }
    sims.ghl_state.load_events([across])
    sims.clear_logs()
    batch = [c["id"] for c in contacts[:40]]  # the other 20 contacts' events are not this batch's
    got = fetch_appointments(GhlHook(), batch, CFG, workers=2)

    calls = sims.ghl_requests("/calendars/events")
    queries = [dict(p.split("=") for p in r["query"].split("&")) for r in calls]
    spans = [int(q["endTime"]) - int(q["startTime"]) for q in queries]
    assert len(calls) == len(crm["calendars"]) * len(calendar_slices(start, end)) > len(crm["calendars"])
    assert max(spans) <= (CALENDAR_SLICE + CALENDAR_SLICE_OVERLAP).total_seconds() * 1000
    assert [e["id"] for e in got[contacts[0]["id"]]].count(across["id"]) == 1
    assert set(got) == set(batch)
    # The same events as one contact at a time (the per-contact endpoint), for every contact.
    one_by_one = fetch_appointments(GhlHook(), batch[:3], CFG, workers=2)
    for cid in batch[:3]:
        assert sorted(e["id"] for e in got[cid]) == sorted(e["id"] for e in one_by_one[cid]), cid
