"""Tasks, notes, appointments and tags reach the store: dag.test() against both simulators.

GHL does not say whether editing a task or note changes its contact's dateUpdated (the
simulator's default: it does not), so a child change reaches the store when its contact is next
synced; the tests edit the child and then the contact, as a user working a record would.
"""

from __future__ import annotations

import time

import pytest
import requests

from sandbox.seed import generate_contacts
from tests.builders import include_with_crm, seed_ghl
from tests.conftest import GHL_TOKEN, LOCATION_ID, SECURE_URL
from tests.e2e.test_sync_dag import by_ghl_id, ghl_put, run, summary_of, writes

pytestmark = pytest.mark.usefixtures("airflow_db")

HEADERS = {"Authorization": f"Bearer {GHL_TOKEN}", "Version": "2021-07-28"}


def seed(sims, n: int, seed: int = 21) -> tuple[list[dict], dict]:
    return seed_ghl(sims, n, seed, location_id=LOCATION_ID)


def ghl(sims, method: str, path: str, body: dict | None = None) -> dict:
    r = requests.request(method, f"{sims.ghl.url}{path}", json=body, headers=HEADERS, timeout=10)
    assert r.status_code in (200, 201), r.text
    return r.json()


def tickets(sims) -> list[dict]:
    return sims.s4s_state.all_tickets(SECURE_URL)


def status_names(sims) -> dict[int, str]:
    return {int(s["StatusId"]): s["StatusName"] for s in sims.s4s_state.all_crm_statuses(SECURE_URL)}


def messages(ticket: dict) -> list[dict]:
    return ticket.get("CrmMessageList") or ticket.get("messages") or []


def test_by_default_nothing_reaches_a_customer_inbox_and_notes_arrive_in_comments(sims, sync_dag):
    """Shift4Shop e-mails the customer for every CRM message: the default writes none."""
    contacts, crm = seed(sims, 120, seed=20)
    dr = run(sync_dag)
    assert dr.state == "success"
    assert [r for r in sims.s4s_requests() if "/crm" in r["path"].lower()] == []
    assert tickets(sims) == []
    customers = by_ghl_id(sims.customers())
    with_notes = {n["contactId"] for n in crm["notes"]}
    assert with_notes
    for cid in with_notes:
        assert "Note " in (customers[cid]["Comments"] or ""), customers[cid]["Comments"]
    summary = summary_of(dr)
    assert summary["notes_fetched"] == len(crm["notes"])
    assert not any(k.startswith(("tickets_", "messages_")) for k in summary)


def test_all_streams_reach_the_store_and_a_rerun_writes_nothing(sims, sync_dag, tmp_path, monkeypatch):
    include_with_crm(tmp_path, monkeypatch, tickets=("tasks", "notes"))
    contacts, crm = seed(sims, 300)
    dr = run(sync_dag)
    assert dr.state == "success"
    summary = summary_of(dr)
    customers = by_ghl_id(sims.customers())
    assert len(customers) == 300

    # Notes: one ticket per customer with notes, one message per note, in order.
    notes_by_contact: dict[str, list[dict]] = {}
    for n in crm["notes"]:
        notes_by_contact.setdefault(n["contactId"], []).append(n)
    note_tickets = [t for t in tickets(sims) if t["Subject"] == "HighLevel notes"]
    assert len(note_tickets) == len(notes_by_contact)
    for t in note_tickets:
        cid = next(k for k, c in customers.items() if c["CustomerID"] == t["CustomerID"])
        assert len(messages(t)) == len(notes_by_contact[cid])

    # Tasks: a ticket per open task (done tasks never open one), status "Open".
    open_tasks = [t for t in crm["tasks"] if not t["completed"]]
    task_tickets = [t for t in tickets(sims) if t["Subject"] != "HighLevel notes"]
    assert len(task_tickets) == len(open_tasks)
    assert {status_names(sims)[int(t["StatusID"])] for t in task_tickets} == {"Open"}

    # Comments summary and groups on the customer.
    for c in contacts:
        cust = customers[c["id"]]
        assert cust["Comments"] is None or len(cust["Comments"].encode("utf-16-le")) // 2 <= 255
    with_open = {t["contactId"] for t in open_tasks}
    sample = next(iter(with_open))
    assert customers[sample]["Comments"].startswith("Tasks: ")
    assert summary["tasks_fetched"] == len(crm["tasks"])
    assert summary["notes_fetched"] == len(crm["notes"])
    assert summary["failed_streams"] == "none"

    sims.clear_logs()
    assert run(sync_dag).state == "success"
    assert writes(sims) == []


def test_notes_cost_one_call_per_changed_contact_and_none_for_unchanged(sims, sync_dag):
    contacts, _ = seed(sims, 200)
    assert run(sync_dag).state == "success"
    sims.clear_logs()
    changed = contacts[10:17]
    for c in changed:
        ghl_put(sims, c["id"], {"city": "Porto"})
    assert run(sync_dag).state == "success"
    note_calls = [r for r in sims.ghl_requests("/contacts/") if r["path"].endswith("/notes")]
    assert sorted(r["path"].split("/")[2] for r in note_calls) == sorted(c["id"] for c in changed)
    task_searches = sims.ghl_requests(f"/locations/{LOCATION_ID}/tasks/search")
    assert len(task_searches) == 2  # one page of tasks, then the empty page that says there is no more


def test_tasks_for_1000_contacts_take_few_search_calls_and_none_is_missed(sims, sync_dag):
    _, crm = seed(sims, 1000, seed=22)
    dr = run(sync_dag)
    assert dr.state == "success"
    assert summary_of(dr)["tasks_fetched"] == len(crm["tasks"])
    searches = sims.ghl_requests(f"/locations/{LOCATION_ID}/tasks/search")
    # 100 contact ids per search (10 chunks); each chunk's pages (100 tasks, or 25 where the server
    # caps them) and the empty page that ends it.
    page = 100 if sims.profile == "lenient" else 25
    assert 2 * 10 <= len(searches) <= len(crm["tasks"]) // page + 2 * 10


def test_edits_completions_and_deletions_follow_through(sims, sync_dag, tmp_path, monkeypatch):
    """A completed or deleted task closes its ticket; an edited note replaces its message (one per note)."""
    include_with_crm(tmp_path, monkeypatch, tickets=("tasks", "notes"))
    contacts, crm = seed(sims, 120, seed=23)
    assert run(sync_dag).state == "success"
    open_tasks = [t for t in crm["tasks"] if not t["completed"]]
    done, gone = open_tasks[0], next(t for t in open_tasks[1:] if t["contactId"] != open_tasks[0]["contactId"])
    note = crm["notes"][0]
    before = {t["CrmID"]: t for t in tickets(sims)}

    ghl(sims, "PUT", f"/contacts/{done['contactId']}/tasks/{done['id']}/completed", {"completed": True})
    ghl(sims, "DELETE", f"/contacts/{gone['contactId']}/tasks/{gone['id']}")
    ghl(sims, "PUT", f"/contacts/{note['contactId']}/notes/{note['id']}", {"body": "<p>Edited: wants 12 units</p>"})
    for cid in {done["contactId"], gone["contactId"], note["contactId"]}:
        ghl_put(sims, cid, {"city": "Ghent"})
    sims.clear_logs()
    assert run(sync_dag).state == "success"

    after = {t["CrmID"]: t for t in tickets(sims)}
    assert len(after) == len(before)  # nothing new: updates, not additions
    statuses = status_names(sims)
    closed = {cid for cid, t in after.items() if statuses[int(t["StatusID"])] == "Closed"}
    assert len(closed) == 2
    note_ticket = next(
        t
        for t in after.values()
        if t["Subject"] == "HighLevel notes"
        and t["CustomerID"] == by_ghl_id(sims.customers())[note["contactId"]]["CustomerID"]
    )
    assert len(messages(note_ticket)) == len(messages(before[note_ticket["CrmID"]]))
    assert any("Edited: wants 12 units" in m["Message"] for m in messages(note_ticket))
    posts = sims.s4s_requests("POST")
    assert len(posts) == 1 and posts[0]["path"].endswith("/message")  # the edited note's new message


def test_tags_map_to_groups_by_priority(sims, sync_dag):
    contacts = generate_contacts(4, seed=24, dirty_share=0.0, location_id=LOCATION_ID)
    contacts[0]["tags"] = ["newsletter", "returning", "vip"]  # vip outranks returning
    contacts[1]["tags"] = ["b2b", "loyalty"]  # b2b → Wholesale outranks loyalty
    contacts[2]["tags"] = ["newsletter"]  # no rule: the group is left alone
    contacts[3]["tags"] = []
    sims.ghl_state.load_contacts(contacts)
    assert run(sync_dag).state == "success"
    groups = {int(g["CustomerGroupID"]): g["Name"] for g in sims.s4s_state.all_customer_groups(SECURE_URL)}
    customers = by_ghl_id(sims.customers())
    assert groups[customers[contacts[0]["id"]]["CustomerGroupID"]] == "VIP"
    assert groups[customers[contacts[1]["id"]]["CustomerGroupID"]] == "Wholesale"
    assert customers[contacts[2]["id"]]["CustomerGroupID"] == 0
    assert customers[contacts[0]["id"]]["AdditionalField2"] == "newsletter, returning, vip"
    assert set(groups.values()) == {"VIP", "Wholesale"}  # groups are created when first needed


def test_a_failing_stream_keeps_its_watermark_and_the_others_advance(sims, sync_dag, tmp_path, monkeypatch):
    from ghl_shift4shop.sync import state_store

    # A status the store does not have: the notes stream cannot load (the API cannot create one).
    include_with_crm(tmp_path, monkeypatch, tickets=("tasks", "notes"), notes={"status": "Waiting"})
    seed(sims, 60, seed=25)

    dr = run(sync_dag)
    assert dr.state == "failed"  # the run is red so someone looks
    state = state_store()
    assert summary_of(dr)["failed_streams"] == "notes"
    marks = {w["stream"]: w["value"] for w in state.list_watermarks()}
    assert set(marks) == {"contacts", "tasks", "appointments"}  # notes held back
    assert len(sims.customers()) == 60
    assert not [t for t in tickets(sims) if t["Subject"] == "HighLevel notes"]

    include_with_crm(tmp_path, monkeypatch, notes={"status": "Open"})
    sims.clear_logs()
    dr = run(sync_dag)
    assert dr.state == "success"
    # Only the notes stream had work left: notes fetched for every contact, nothing else written.
    assert [t for t in tickets(sims) if t["Subject"] == "HighLevel notes"]
    assert {w["stream"] for w in state.list_watermarks()} == {"contacts", "tasks", "appointments", "notes"}
    assert not sims.s4s_requests("PUT")


def test_appointment_tickets_when_switched_on(sims, sync_dag, tmp_path, monkeypatch):
    from datetime import UTC, datetime

    from ghl_shift4shop.crm_summary import parse_when

    include_with_crm(tmp_path, monkeypatch, tickets=("appointments",))
    contacts, crm = seed(sims, 150, seed=26)
    now = datetime.now(UTC)
    upcoming = [
        e
        for e in crm["events"]
        if parse_when(e["startTime"]) >= now and e["appointmentStatus"] not in ("cancelled", "invalid", "noshow")
    ]
    assert upcoming, "the generator makes upcoming appointments"
    assert run(sync_dag).state == "success"
    subjects = [t["Subject"] for t in tickets(sims)]
    assert sum(1 for e in upcoming if e["title"][:50] in subjects) == len(upcoming)

    target = upcoming[0]
    ghl(sims, "PUT", f"/calendars/events/appointments/{target['id']}", {"appointmentStatus": "cancelled"})
    ghl_put(sims, target["contactId"], {"city": "Bruges"})
    assert run(sync_dag).state == "success"
    statuses = status_names(sims)
    [ticket] = [
        t
        for t in tickets(sims)
        if t["Subject"] == target["title"][:50]
        and t["CustomerID"] == by_ghl_id(sims.customers())[target["contactId"]]["CustomerID"]
    ]
    assert statuses[int(ticket["StatusID"])] == "Closed"


def test_tasks_of_a_contact_whose_customer_is_not_in_the_store_yet_are_held_then_land(
    sims, sync_dag, tmp_path, monkeypatch
):
    """The customer's create fails this run: its tasks wait (counted), and land on the next run."""
    from ghl_shift4shop.sync import state_store

    include_with_crm(tmp_path, monkeypatch, tickets=("tasks",))
    contacts, crm = seed(sims, 40, seed=27)
    open_tasks = [t for t in crm["tasks"] if not t["completed"]]
    victim = open_tasks[0]["contactId"]
    victim_email = next(c["email"] for c in contacts if c["id"] == victim).lower()
    original = sims.s4s_state.create_customer

    def busy_for_the_victim(store_key, body):
        if isinstance(body, dict) and str(body.get("Email", "")).lower() == victim_email:
            return {"Key": "Error", "Value": "", "Status": "503", "Message": "Service busy"}
        return original(store_key, body)

    monkeypatch.setattr(sims.s4s_state, "create_customer", busy_for_the_victim)
    dr = run(sync_dag)
    assert dr.state == "success"
    summary = summary_of(dr)
    assert summary["tasks_held"] == 1 and summary["dead_lettered"] == 1
    state = state_store()
    assert [(h["stream"], h["contact_id"]) for h in state.list_held()] == [("tasks", victim)]
    assert state.get_watermark("tasks") is not None  # the stream moved on; the held row is kept
    victim_tasks = [t for t in open_tasks if t["contactId"] == victim]
    assert len(tickets(sims)) == len(open_tasks) - len(victim_tasks)

    monkeypatch.setattr(sims.s4s_state, "create_customer", original)  # the store recovers
    dr = run(sync_dag)
    assert dr.state == "success"
    assert state.list_held() == [] and state.list_dead_letters() == []
    customer = by_ghl_id(sims.customers())[victim]
    mine = [t for t in tickets(sims) if t["CustomerID"] == customer["CustomerID"]]
    assert sorted(t["Subject"] for t in mine) == sorted(t["title"][:50] for t in victim_tasks)
    assert len(tickets(sims)) == len(open_tasks)


def test_a_ticket_whose_create_answer_never_came_is_found_on_the_next_run_not_sent_twice(
    sims, sync_dag, tmp_path, monkeypatch
):
    """The store writes the ticket after the client gave up: held, then found by lookup."""
    from ghl_shift4shop.sync import state_store

    include_with_crm(tmp_path, monkeypatch, tickets=("tasks",))
    monkeypatch.setenv("GHL_S4S_HTTP_TIMEOUT_SECONDS", "1")
    contacts, crm = seed(sims, 30, seed=28)
    open_tasks = [t for t in crm["tasks"] if not t["completed"]]
    sims.s4s_state.faults.set([{"method": "POST", "path": "(?i)/crm$", "count": 1, "action": "timeout", "seconds": 2}])
    dr = run(sync_dag)
    assert dr.state == "success"
    assert summary_of(dr)["tasks_held"] == 1
    time.sleep(2)  # the late write has landed
    dr = run(sync_dag)
    assert dr.state == "success"
    assert summary_of(dr)["settled_by_lookup"] == 1
    assert len(tickets(sims)) == len(open_tasks)  # one ticket per open task: the late one adopted
    state = state_store()
    assert state.pending("task_tickets") == {} and state.list_held() == []
