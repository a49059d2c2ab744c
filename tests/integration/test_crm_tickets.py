"""CRM tickets (switched on) when the store changes under them: deleted tickets, interrupted replacements."""

from __future__ import annotations

import pytest
from ghl_shift4shop.batches import write_jsonl
from ghl_shift4shop.crm_config import load_crm_config
from ghl_shift4shop.shift4shop.hook import Shift4ShopHook
from ghl_shift4shop.tickets import load_crm_stream
from ghl_shift4shop.transport import ApiError

from tests.builders import include_with_crm
from tests.conftest import SECURE_URL
from tests.integration.test_load import contacts, load

pytestmark = pytest.mark.both_profiles  # the load must hold under either reading of the store


def task(tid: str, contact_id: str, title: str, body: str = "Call back", completed: bool = False) -> dict:
    return {
        "id": tid,
        "contactId": contact_id,
        "title": title,
        "body": body,
        "dueDate": "2030-01-01T10:00:00.000Z",
        "completed": completed,
    }


def task_refs(tmp_path, name: str, rows: dict[str, list[dict]]) -> list[dict]:
    path = tmp_path / f"{name}.jsonl"
    write_jsonl(path, [{"contact_id": cid, "items": items, "quarantined_ids": []} for cid, items in rows.items()])
    return [{"path": str(path)}]


def crm_load(tmp_path, state, cfg, name, rows):
    return load_crm_stream(
        "tasks", task_refs(tmp_path, name, rows), hook=Shift4ShopHook(), state=state, cfg=cfg, run_id=name
    )


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    include = include_with_crm(tmp_path, monkeypatch, tickets=("tasks",))
    return load_crm_config(include / "mappings")


def test_a_ticket_the_shop_deleted_does_not_block_every_other_contact_forever(sims, state, tmp_path, cfg):
    people = contacts(2)
    load(tmp_path, state, people)
    a, b = people[0]["id"], people[1]["id"]
    crm_load(tmp_path, state, cfg, "run1", {a: [task("t0", a, "Quote")], b: [task("t1", b, "Visit")]})
    assert len(sims.s4s_state.all_tickets(SECURE_URL)) == 2
    # The merchant deletes contact a's ticket in the store admin (tidying up).
    ticket_a = next(t for t in sims.s4s_state.all_tickets(SECURE_URL) if t["Subject"] == "Quote")
    sims.s4s_state.delete_ticket(sims.s4s_state.resolve_store(SECURE_URL), int(ticket_a["CrmID"]))
    # Next runs: a's task is edited; b gets a new task. b's new task must reach the store.
    for run_no in (2, 3):
        try:
            crm_load(
                tmp_path,
                state,
                cfg,
                f"run{run_no}",
                {a: [task("t0", a, "Quote v2")], b: [task("t1", b, "Visit"), task("t2", b, "Invoice")]},
            )
        except ApiError as exc:
            print(f"run {run_no}: stream failed: {exc}")
    subjects = sorted(t["Subject"] for t in sims.s4s_state.all_tickets(SECURE_URL))
    assert "Invoice" in subjects, f"b's new task never reached the store after 2 runs: {subjects}"


def test_a_failed_id_map_write_after_a_message_replacement_does_not_send_it_twice(
    sims, state, tmp_path, cfg, monkeypatch
):
    """The replaced message's intent is settled before the new digests are recorded."""
    from ghl_shift4shop import idmaps

    people = contacts(1)
    load(tmp_path, state, people)
    a = people[0]["id"]
    crm_load(tmp_path, state, cfg, "run1", {a: [task("t0", a, "Quote", body="Send the quote")]})
    original = idmaps.TicketMap.record
    calls = {"n": 0}

    def flaky(self, links):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("state database went away (worker killed here)")
        return original(self, links)

    monkeypatch.setattr(idmaps.TicketMap, "record", flaky)
    edited = {a: [task("t0", a, "Quote", body="Send the quote with 10% off")]}
    with pytest.raises(RuntimeError):
        crm_load(tmp_path, state, cfg, "run2", edited)
    crm_load(tmp_path, state, cfg, "run3", edited)  # the next run, same data
    message_posts = [r for r in sims.s4s_requests("POST") if r["path"].lower().endswith("/message")]
    assert len(message_posts) == 1, f"the customer was sent the edited task text {len(message_posts)} times"
