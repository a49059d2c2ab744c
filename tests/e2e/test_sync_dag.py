"""End to end: ``dag.test()`` of ghl_shift4shop_sync against both simulators over real HTTP.

Call counts come from the simulators' request logs, not from the client's own counters.
"""

from __future__ import annotations

import threading
import time
import unicodedata

import pytest
import requests

from sandbox.seed import generate_contacts
from tests.conftest import GHL_TOKEN, LOCATION_ID, SECURE_URL

pytestmark = pytest.mark.usefixtures("airflow_db")


def run(dag, **conf):
    dr = dag.test(run_conf=conf or None)
    return dr


def summary_of(dr) -> dict:
    from ghl_shift4shop.sync import state_store

    return state_store().recent_summaries(1)[0] if dr else {}


def ghl_put(sims, contact_id: str, body: dict) -> dict:
    r = requests.put(
        f"{sims.ghl.url}/contacts/{contact_id}",
        json=body,
        headers={"Authorization": f"Bearer {GHL_TOKEN}", "Version": "2021-07-28"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()["contact"]


def by_ghl_id(customers: list[dict]) -> dict[str, dict]:
    out = {}
    for c in customers:
        assert c["AdditionalField1"] not in out, f"duplicate customer for {c['AdditionalField1']}"
        out[c["AdditionalField1"]] = c
    return out


def expected_text(*candidates, limit: int) -> str | None:
    """What the mapping's ``text`` normalizer and the store's cut make of the first non-empty
    candidate, computed here from the rule rather than with the production code: NFC, control
    characters removed, whitespace collapsed, stripped, cut to ``limit`` UTF-16 units without
    splitting a character (then stripped again); ``None`` when nothing is left."""
    value = next((v for v in candidates if isinstance(v, str) and v.strip()), None)
    if value is None:
        return None
    value = unicodedata.normalize("NFC", value)
    value = "".join(ch for ch in value if ch.isspace() or unicodedata.category(ch) != "Cc")
    value = " ".join(value.split())
    out, used = "", 0
    for ch in value:
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > limit:
            break
        out += ch
    return out.strip() or None


def name_parts(contact: dict) -> tuple[str | None, str | None]:
    """The mapping's ``name_first`` / ``name_last``: first word and rest of ``name`` (or ``contactName``)."""
    parts = str(contact.get("name") or contact.get("contactName") or "").split(maxsplit=1)
    return (parts[0] if parts else None), (parts[1] if len(parts) > 1 else None)


def writes(sims) -> list[dict]:
    return [r for r in sims.s4s_requests() if r["method"] in ("POST", "PUT", "DELETE")]


def test_first_run_mirrors_contacts_field_by_field_then_rerun_writes_nothing(sims, sync_dag):
    contacts = generate_contacts(1000, seed=3, dirty_share=0.0, location_id=LOCATION_ID)
    # The name fallbacks: no firstName (the first word of the name, which GHL then derives from
    # lastName); no first or last name but a name (its first word, and the rest as the last name).
    contacts[1]["firstName"] = None
    contacts[2].update(firstName=None, lastName=None, name="  Grace\tBrewster  Hopper ", contactName=None)
    sims.ghl_state.load_contacts(contacts)
    # One customer already exists in the store with the same email in other case: adopted, not duplicated.
    first = contacts[0]
    sims.s4s_state.load_customers(
        SECURE_URL, [{"Email": first["email"].upper(), "Password": "x", "ShippingCity": "Depot"}]
    )

    dr = run(sync_dag)
    assert dr.state == "success"
    customers = sims.customers()
    assert len(customers) == 1000
    mirrored = by_ghl_id(customers)
    for c in contacts:
        cust = mirrored[c["id"]]
        served = sims.ghl_state.get_contact(c["id"])  # what the sync read (GHL derives name fields)
        name_first, name_last = name_parts(served)
        email_local = served["email"].split("@", 1)[0]
        assert cust["Email"].lower() == c["email"].strip().lower()
        assert cust["BillingFirstName"] == expected_text(served.get("firstName"), name_first, email_local, limit=50)
        assert cust["BillingLastName"] == expected_text(served.get("lastName"), name_last, limit=50)
        assert cust["BillingCity"] == expected_text(c.get("city"), limit=100)
        assert cust["BillingZipCode"] == expected_text(c.get("postalCode"), limit=20)
        assert cust["BillingCountry"] == (c.get("country") or None)
        # The seed's phones are E.164 already (sandbox/seed.py): the normalizer keeps them as they are.
        assert cust["BillingPhoneNumber"] == (c.get("phone") or None)
        assert cust["AdditionalField2"] == (", ".join(c.get("tags") or []) or None)
    # The fallbacks were really taken.
    assert mirrored[contacts[1]["id"]]["BillingFirstName"] == contacts[1]["lastName"].split()[0]
    assert mirrored[contacts[2]["id"]]["BillingFirstName"] == "Grace"
    assert mirrored[contacts[2]["id"]]["BillingLastName"] == "Brewster Hopper"
    adopted = mirrored[first["id"]]
    assert adopted["ShippingCity"] == "Depot"  # fields we do not map are left alone
    summary = summary_of(dr)
    assert summary["extracted"] == 1000 and summary["created"] == 999 and summary["adopted"] == 1
    ghl_searches = sims.ghl_requests("/contacts/search")
    assert len(ghl_searches) <= 3, ghl_searches
    assert summary["calls_ghl"] == len(sims.ghl_requests())

    sims.clear_logs()
    dr = run(sync_dag)
    assert dr.state == "success"
    assert writes(sims) == []
    assert len(sims.customers()) == 1000
    summary = summary_of(dr)
    assert summary["created"] == summary["updated"] == 0


def test_incremental_run_writes_only_changed_contacts_within_the_call_budget(sims, sync_dag):
    contacts = generate_contacts(1000, seed=4, dirty_share=0.0, location_id=LOCATION_ID)
    sims.ghl_state.load_contacts(contacts)
    assert run(sync_dag).state == "success"

    sims.clear_logs()
    changed = contacts[100:130]
    for c in changed:
        ghl_put(sims, c["id"], {"city": "Reykjavík"})
    dr = run(sync_dag)
    assert dr.state == "success"
    summary = summary_of(dr)
    assert summary["updated"] == 30 and summary["created"] == 0
    puts = [r for r in sims.s4s_requests("PUT")]
    assert len(puts) == 1 and writes(sims) == puts
    mirrored = by_ghl_id(sims.customers())
    assert all(mirrored[c["id"]]["BillingCity"] == "Reykjavík" for c in changed)
    assert sum(1 for c in mirrored.values() if c["BillingCity"] == "Reykjavík") >= 30

    # All 1,000 changed: updates cost at most 13 Shift4Shop calls (10 bulk PUTs of 100).
    sims.clear_logs()
    for c in contacts:
        ghl_put(sims, c["id"], {"address1": "1 Renamed Road"})  # companyName is not updatable (UpdateContactDto)
    sims.clear_logs()
    dr = run(sync_dag)
    assert dr.state == "success"
    assert summary_of(dr)["updated"] == 1000
    assert len(sims.s4s_requests()) <= 13, sims.s4s_requests()
    assert len(sims.ghl_requests("/contacts/search")) <= 3
    assert all(c["BillingAddress1"] == "1 Renamed Road" for c in sims.customers())


def test_contact_updated_while_the_extract_runs_is_picked_up_next_run(sims, sync_dag):
    contacts = generate_contacts(1200, seed=5, dirty_share=0.0, location_id=LOCATION_ID)
    sims.ghl_state.load_contacts(contacts)
    # Slow search pages only (the child fetches stay fast): a window to edit in.
    sims.ghl_state.faults.set([{"action": "latency", "path": "/contacts/search", "seconds": 0.3}])
    # The oldest change sorts first: on page 1, long behind the cursor when it is edited just
    # after the last page was served, while the run goes on to validate and load.
    target = min(contacts, key=lambda c: (c["dateUpdated"], c["id"]))

    def edit_after_last_page():
        deadline = time.time() + 60
        while time.time() < deadline and len(sims.ghl_requests("/contacts/search")) < 3:
            time.sleep(0.01)
        ghl_put(sims, target["id"], {"city": "Changed Mid-Extract"})

    editor = threading.Thread(target=edit_after_last_page)
    editor.start()
    assert run(sync_dag).state == "success"
    editor.join()
    sims.ghl_state.faults.clear()
    assert by_ghl_id(sims.customers())[target["id"]]["BillingCity"] != "Changed Mid-Extract"

    dr = run(sync_dag)
    assert dr.state == "success"
    assert by_ghl_id(sims.customers())[target["id"]]["BillingCity"] == "Changed Mid-Extract"
    assert len(sims.customers()) == 1200


def test_bad_rows_are_quarantined_and_too_many_fail_the_run(sims, sync_dag, monkeypatch):
    from ghl_shift4shop.sync import state_store

    contacts = generate_contacts(200, seed=6, dirty_share=0.0, location_id=LOCATION_ID)
    contacts[0]["email"] = None
    contacts[1]["email"] = "not-an-email"
    contacts[2]["email"] = ("x" * 95) + "@example.com"
    contacts[3]["email"] = contacts[4]["email"].upper()  # same person twice, other case
    sims.ghl_state.load_contacts(contacts)

    dr = run(sync_dag)
    assert dr.state == "success"
    reasons = {q["source_id"]: q["reason"] for q in state_store().open_quarantine("contacts")}
    assert reasons[contacts[0]["id"]].startswith("missing_email")
    assert reasons[contacts[1]["id"]].startswith("invalid_email")
    assert reasons[contacts[2]["id"]].startswith("email_too_long")
    dup = {contacts[3]["id"], contacts[4]["id"]} & set(reasons)
    assert len(dup) == 1 and reasons[dup.pop()].startswith("duplicate_email")
    assert len(sims.customers()) == 196
    assert summary_of(dr)["quarantined"] == 4

    # Above the threshold the run fails before anything is written.
    sims.ghl_state.reset()
    sims.s4s_state.reset()
    sims.clear_logs()
    monkeypatch.setenv("GHL_S4S_STATE_URL", f"sqlite:///{state_store().engine.url.database}.2")
    bad = generate_contacts(50, seed=8, dirty_share=0.0, location_id=LOCATION_ID)
    for c in bad[:10]:
        c["email"] = "broken"
    sims.ghl_state.load_contacts(bad)
    dr = run(sync_dag)
    assert dr.state == "failed"
    assert writes(sims) == []


def test_manual_window_syncs_exactly_that_window_and_leaves_the_watermark(sims):
    from datetime import UTC, datetime, timedelta

    from ghl_shift4shop.sync import state_store
    from ghl_shift4shop.timeutil import format_ts

    base = datetime(2026, 10, 1, tzinfo=UTC)
    contacts = generate_contacts(48, seed=12, dirty_share=0.0, location_id=LOCATION_ID)
    for i, c in enumerate(contacts):
        c["dateAdded"] = c["dateUpdated"] = format_ts(base + timedelta(hours=i))
    sims.ghl_state.load_contacts(contacts)
    state_store().set_watermark("contacts", "2026-09-01T00:00:00.000Z", "setup")

    # dag.test(run_conf=...) leaves the conf in the DAG object's params; a fresh parse keeps the
    # shared DAG clean for later tests (a real trigger's conf applies to its own run only).
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import ROOT

    fresh = DagBag(dag_folder=str(ROOT / "dags")).dags["ghl_shift4shop_sync"]
    dr = run(fresh, window_start="2026-10-01T12:00:00Z", window_end="2026-10-01T23:59:59Z")
    assert dr.state == "success"
    assert sorted(by_ghl_id(sims.customers())) == sorted(c["id"] for c in contacts[12:24])
    assert state_store().get_watermark("contacts") == "2026-09-01T00:00:00.000Z"
