"""Kill the worker (SIGKILL) at every stage boundary, rerun: nothing lost, no duplicate, watermark right.

The killed run is a real ``airflow dags test`` in its own process, so the kill takes the whole
worker down mid-run, as an OOM kill or a lost node would. The rerun is a ``dag.test()`` in the test
process (the same Airflow and state databases), which saves a second Airflow start-up per case.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ghl_shift4shop.faultpoints import CRM_POINTS, POINTS

from sandbox.seed import generate_contacts
from tests.builders import include_with_crm, seed_ghl
from tests.conftest import LOCATION_ID, SECURE_URL
from tests.e2e.test_sync_dag import by_ghl_id

pytestmark = pytest.mark.usefixtures("airflow_db")
AIRFLOW = str(Path(sys.executable).parent / "airflow")
N = 200  # contacts: two chunks of 100, so a kill can land between two store calls


def airflow_dags_test(kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GHL_S4S_KILL_AT"}
    if kill_at:
        env["GHL_S4S_KILL_AT"] = kill_at
    return subprocess.run(
        [AIRFLOW, "dags", "test", "ghl_shift4shop_sync"], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("point", POINTS)
def test_kill_at_each_boundary_then_rerun_converges(sims, sync_dag, point):
    from ghl_shift4shop.sync import state_store

    contacts = generate_contacts(N, seed=41, dirty_share=0.0, location_id=LOCATION_ID)
    sims.ghl_state.load_contacts(contacts)

    killed = airflow_dags_test(kill_at=point)
    assert killed.returncode == -9, killed.stdout[-3000:] + killed.stderr[-3000:]
    state = state_store()
    assert state.get_watermark("contacts") is None  # never advanced by a run that did not finish
    created_before_rerun = len(sims.customers())
    mapped_before_rerun = state.count_mapped("contacts")
    if point in ("mid_create", "mid_load"):
        assert 0 < created_before_rerun < N  # the kill really landed between two store calls
    if point == "mid_create":
        assert mapped_before_rerun == created_before_rerun - 100  # a chunk in the store, not in the map

    assert sync_dag.test().state == "success"
    customers = by_ghl_id(sims.customers())  # raises on a duplicate
    assert sorted(customers) == sorted(c["id"] for c in contacts)
    assert state.count_mapped("contacts") == N
    newest = max(c["dateUpdated"] for c in contacts)
    assert state.get_watermark("contacts") == newest
    summary = state.recent_summaries(1)[0]
    assert summary["unchanged"] == mapped_before_rerun  # recorded before the kill: skipped
    # In the store but not recorded (killed between the POST and the id map): found by email.
    assert summary["adopted"] == created_before_rerun - mapped_before_rerun
    assert summary["created"] == N - created_before_rerun


@pytest.mark.parametrize("point", CRM_POINTS)
def test_kill_while_writing_crm_tickets_then_rerun_never_duplicates_a_ticket_or_message(
    sims, sync_dag, point, tmp_path, monkeypatch
):
    """Killed between a ticket's create and its id map (or mid-stream): the rerun finds it, never re-sends."""
    from ghl_shift4shop.sync import state_store

    include_with_crm(tmp_path, monkeypatch, tickets=("tasks", "notes"))
    contacts, crm = seed_ghl(sims, 80, seed=42, location_id=LOCATION_ID)

    killed = airflow_dags_test(kill_at=point)
    assert killed.returncode == -9, killed.stdout[-3000:] + killed.stderr[-3000:]
    tickets_before = sims.s4s_state.all_tickets(SECURE_URL)
    assert tickets_before  # the kill landed after at least one ticket reached the store

    assert sync_dag.test().state == "success"
    customers = by_ghl_id(sims.customers())
    owner = {c["CustomerID"]: gid for gid, c in customers.items()}
    tickets = sims.s4s_state.all_tickets(SECURE_URL)
    note_tickets = [t for t in tickets if t["Subject"] == "HighLevel notes"]
    task_tickets = [t for t in tickets if t["Subject"] != "HighLevel notes"]
    # One notes ticket per contact with notes, one message per note; one ticket per open task.
    notes_per_contact: dict[str, int] = {}
    for n in crm["notes"]:
        notes_per_contact[n["contactId"]] = notes_per_contact.get(n["contactId"], 0) + 1
    assert sorted(owner[t["CustomerID"]] for t in note_tickets) == sorted(notes_per_contact)
    for t in note_tickets:
        assert len(t["CrmMessageList"]) == notes_per_contact[owner[t["CustomerID"]]]
    open_tasks = [t for t in crm["tasks"] if not t["completed"]]
    assert len(task_tickets) == len(open_tasks)
    assert sorted((owner[t["CustomerID"]], t["Subject"]) for t in task_tickets) == sorted(
        (t["contactId"], t["title"][:50]) for t in open_tasks
    )
    state = state_store()
    assert state.pending("task_tickets") == {} and state.pending("note_tickets") == {}
    if point == "mid_crm_create":
        assert state.recent_summaries(1)[0].get("settled_by_lookup", 0) >= 1  # found, not sent again
