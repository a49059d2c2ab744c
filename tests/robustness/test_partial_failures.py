"""Partial failures: a 206 with failed items, and GHL's daily budget running low mid-run."""

from __future__ import annotations

import pytest

from sandbox.seed import generate_contacts
from tests.conftest import LOCATION_ID
from tests.e2e.test_sync_dag import by_ghl_id, ghl_put, run, summary_of

pytestmark = pytest.mark.usefixtures("airflow_db")


def test_206_commits_successes_and_dead_letters_retryable_failures(sims, sync_dag, monkeypatch):
    from ghl_shift4shop.sync import state_store

    contacts = generate_contacts(40, seed=31, dirty_share=0.0, location_id=LOCATION_ID)
    sims.ghl_state.load_contacts(contacts)
    assert run(sync_dag).state == "success"
    busy = {by_ghl_id(sims.customers())[c["id"]]["CustomerID"] for c in contacts[:3]}

    original = sims.s4s_state.update_customers

    def store_busy_for_three(store_key, items):
        # The store answers 206: these three items fail with 503 (and are not applied).
        items = list(items)
        ok = original(store_key, [i for i in items if int(i["CustomerID"]) not in busy])
        out, it = [], iter(ok)
        for i in items:
            cid = int(i["CustomerID"])
            out.append(
                {"Key": "Error", "Value": str(cid), "Status": "503", "Message": "Service busy"}
                if cid in busy
                else next(it)
            )
        return out

    monkeypatch.setattr(sims.s4s_state, "update_customers", store_busy_for_three)
    for c in contacts[:10]:
        ghl_put(sims, c["id"], {"city": "Tallinn"})
    dr = run(sync_dag)
    assert dr.state == "success"
    assert summary_of(dr)["updated"] == 7 and summary_of(dr)["dead_lettered"] == 3
    assert [d["status"] for d in state_store().list_dead_letters("contacts")] == [503, 503, 503]
    customers = by_ghl_id(sims.customers())
    assert sum(customers[c["id"]]["BillingCity"] == "Tallinn" for c in contacts[:10]) == 7
    assert state_store().open_quarantine() == []  # retryable: not quarantined

    # The store recovers; the next run loads the dead letters although nothing changed in GHL.
    monkeypatch.setattr(sims.s4s_state, "update_customers", original)
    dr = run(sync_dag)
    assert dr.state == "success"
    assert summary_of(dr)["dead_letters_retried"] == 3 and summary_of(dr)["updated"] == 3
    assert all(by_ghl_id(sims.customers())[c["id"]]["BillingCity"] == "Tallinn" for c in contacts[:10])
    assert state_store().list_dead_letters() == []


def test_daily_budget_low_stops_cleanly_and_the_next_run_resumes(sims, sync_dag, monkeypatch):
    from ghl_shift4shop.sync import state_store

    contacts = generate_contacts(1200, seed=32, dirty_share=0.0, location_id=LOCATION_ID)
    sims.ghl_state.load_contacts(contacts)
    monkeypatch.setenv("GHL_S4S_GHL_DAILY_RESERVE", "10")
    # Two search pages fit in what is left of today's budget before the reserve (and, where search
    # items carry no names, the 1,000 reads of their full contacts).
    reads = 1000 if sims.profile == "strict" else 0
    sims.ghl_state.configure(rate_limit=True, burst_max=100_000, daily_limit=12 + reads)
    dr = run(sync_dag)
    assert dr.state == "success"  # a budget stop is not a failure
    summary = summary_of(dr)
    assert summary["stopped_early"] == 1 and summary["extracted"] == 1000
    assert summary["deferred_streams"] == "appointments, notes, tasks"
    assert len(sims.customers()) == 1000
    marks = {w["stream"]: w["value"] for w in state_store().list_watermarks()}
    loaded = sorted(c["dateUpdated"] for c in contacts)[:1000]
    assert set(marks) == {"contacts"} and marks["contacts"] < loaded[-1]
    assert not any(r["status"] == 429 for r in sims.ghl_requests())

    # A new day: the rest arrives, and the deferred streams catch up; nothing is duplicated.
    sims.ghl_state.configure(daily_limit=200_000)
    dr = run(sync_dag)
    assert dr.state == "success"
    assert len(by_ghl_id(sims.customers())) == 1200
    assert {w["stream"] for w in state_store().list_watermarks()} == {"contacts", "tasks", "notes", "appointments"}
