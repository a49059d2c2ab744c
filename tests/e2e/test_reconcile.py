"""End to end: ``dag.test()`` of ghl_shift4shop_reconcile against both simulators over real HTTP.

Each test first runs a real sync so the store is in step, then drifts the two sides behind the
sync's back (straight on the simulators' state, as a merchant or a GHL user would), and checks
what the reconciliation finds, what it writes (from the store simulator's request log) and what
the store holds afterwards.
"""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ghl_shift4shop.state import MappedId
from ghl_shift4shop.timeutil import format_ts

from sandbox.seed import generate_contacts
from tests.builders import customers_events, seed_ghl
from tests.conftest import LOCATION_ID, ROOT, SECRETS, SECURE_URL

pytestmark = pytest.mark.usefixtures("airflow_db")

N = 20
# The tests of the reconciliation's own logic run under the strict reading only (the harsher one:
# search items without names, so every contact is read in full); the two that walk every class and
# the disable/enable round trip run under both.
STRICT_ONLY = pytest.mark.profiles("strict")
GHOST = "ghostContact00000001"  # an id-map row whose contact and customer never existed


@pytest.fixture(scope="module")
def reconcile_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["ghl_shift4shop_reconcile"]


def reconcile(dag, *, dry_run: bool = False):
    """One reconcile run; returns (dag run, the stored run row, its findings)."""
    from ghl_shift4shop.sync import state_store

    dr = dag.test(run_conf={"dry_run": dry_run})
    state = state_store()
    run = state.recent_reconciles(1)[0]
    assert run["run_id"] == dr.run_id
    return dr, run, state.reconcile_findings(dr.run_id)


def synced(sims, sync_dag, n: int = N) -> list[dict]:
    contacts, _ = seed_ghl(sims, n, location_id=LOCATION_ID)
    assert sync_dag.test().state == "success"
    assert len(sims.customers()) == n
    sims.clear_logs()
    return contacts


def by_ghl_id(sims) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for c in sims.customers():
        if c.get("AdditionalField1"):
            assert c["AdditionalField1"] not in out, f"two customers for {c['AdditionalField1']}"
            out[c["AdditionalField1"]] = c
    return out


def writes(sims) -> list[dict]:
    return [r for r in sims.s4s_requests() if r["method"] in ("POST", "PUT", "DELETE")]


def store_key(sims) -> str:
    return sims.s4s_state.resolve_store(SECURE_URL)


def of_kind(findings: list[dict], kind: str) -> list[dict]:
    return [f for f in findings if f["kind"] == kind]


def one_deleted_then_reconciled(sims, sync_dag, reconcile_dag, monkeypatch):
    """A synced store, one contact deleted in GHL, one reconcile run (one of 20 is 5%: the share
    allows 10%); returns (the contact, its CustomerID, the dag run, the run row, its findings)."""
    monkeypatch.setenv("GHL_S4S_RECONCILE_MAX_DELETE_SHARE", "0.1")
    gone = synced(sims, sync_dag)[0]
    target = by_ghl_id(sims)[gone["id"]]["CustomerID"]
    sims.ghl_state.delete_contact(gone["id"])
    return (gone, target, *reconcile(reconcile_dag))


def test_every_class_found_in_dry_run_then_repaired_by_policy_then_nothing_left(
    sims, sync_dag, reconcile_dag, state, monkeypatch
):
    # 1 of 20 customers switched off is 5%: above the 2% default, so this deployment allows 10%.
    monkeypatch.setenv("GHL_S4S_RECONCILE_MAX_DELETE_SHARE", "0.1")
    contacts = synced(sims, sync_dag)
    edited, deleted, removed, shared, tasked = contacts[:5]
    customers = by_ghl_id(sims)
    key = store_key(sims)
    # Drift: a field edited by hand in the store (the sync's stored digest still matches).
    city = customers[edited["id"]]["BillingCity"]
    assert city and sims.s4s_state.update_customer(key, customers[edited["id"]]["CustomerID"], {"BillingCity": "X"})
    # Deleted in GHL: the customer stays, carrying the contact's GHL id.
    sims.ghl_state.delete_contact(deleted["id"])
    # Missing in the store: a contact that never reached it, and a customer removed from the store.
    new = generate_contacts(1, seed=777, dirty_share=0.0, location_id=LOCATION_ID)[0]
    new["email"] = "brand.new.contact@example.org"
    sims.ghl_state.load_contacts([new])
    sims.s4s_state.delete_customer(key, customers[removed["id"]]["CustomerID"])
    # The same e-mail on a second, hand-made customer (no GHL id: never ours to change).
    walk_in = sims.s4s_state.load_customers(
        SECURE_URL, [{"Email": shared["email"].upper(), "Password": "x", "BillingFirstName": "Walk-in"}]
    )[0]
    # An id-map row pointing at nothing.
    state.record_mapped("contacts", [MappedId(GHOST, "987654", "ghost@example.com", "digest")])
    # A task added without touching its contact: only the task sweep can see it.
    stamp = sims.ghl_state.get_contact(tasked["id"])["dateUpdated"]
    sims.ghl_state.create_task(
        tasked["id"], {"title": "Call back about the order", "dueDate": "2031-01-01T00:00:00.000Z", "completed": False}
    )
    assert sims.ghl_state.get_contact(tasked["id"])["dateUpdated"] == stamp
    open_tasks = sum(not t.get("completed") for t in sims.ghl_state.list_tasks(tasked["id"]))
    before = sims.customers()

    # Dry run: every class listed with its ids, nothing written.
    dr, run, findings = reconcile(reconcile_dag, dry_run=True)
    assert dr.state == "success" and run["status"] == "ok" and run["dry_run"]
    assert [(f["source_id"], f["field"], f["ghl_value"], f["store_value"]) for f in of_kind(findings, "drift")] == [
        (edited["id"], "BillingCity", city, "X")
    ]  # and no false drift anywhere else, under either profile
    assert [(f["source_id"], f["action"]) for f in of_kind(findings, "deleted_in_ghl")] == [
        (deleted["id"], "would_disable")
    ]
    assert {f["source_id"]: f["action"] for f in of_kind(findings, "missing_in_store")} == {
        new["id"]: "would_repair",
        removed["id"]: "would_repair",
    }
    assert sorted(int(f["target_id"]) for f in of_kind(findings, "duplicate_email")) == sorted(
        [int(customers[shared["id"]]["CustomerID"]), walk_in]
    )
    assert [(f["source_id"], f["action"]) for f in of_kind(findings, "dangling_id_map")] == [(GHOST, "reported")]
    assert [f["source_id"] for f in of_kind(findings, "tasks_changed")] == [tasked["id"]]
    assert not of_kind(findings, "count_mismatch") and not of_kind(findings, "reappeared")
    assert writes(sims) == []
    assert sims.customers() == before
    report = Path(run["report_dir"])
    with (report / "findings.csv").open(encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == len(findings)
    assert "tasks_changed" in (report / "summary.html").read_text(encoding="utf-8")

    # Repair: GHL wins, through the sync's load path.
    sims.clear_logs()
    dr, run, findings = reconcile(reconcile_dag)
    assert dr.state == "success" and run["status"] == "ok" and not run["dry_run"]
    actions = {(f["kind"], f["source_id"]): f["action"] for f in findings}
    assert actions == {
        ("drift", edited["id"]): "repaired",
        ("deleted_in_ghl", deleted["id"]): "disabled",
        ("missing_in_store", new["id"]): "repaired",
        ("missing_in_store", removed["id"]): "repaired",
        ("duplicate_email", shared["id"]): "reported",
        ("duplicate_email", None): "reported",
        ("dangling_id_map", GHOST): "reported",
        ("tasks_changed", tasked["id"]): "repaired",
    }
    after = by_ghl_id(sims)  # also: still one customer per GHL id
    assert after[edited["id"]]["BillingCity"] == city
    assert after[deleted["id"]]["Enabled"] is False
    assert after[new["id"]]["Email"] == new["email"] and after[new["id"]]["Enabled"] is True
    assert after[removed["id"]]["Email"].lower() == removed["email"].lower()
    assert after[tasked["id"]]["Comments"].startswith(f"Tasks: {open_tasks} open")
    assert sum(c["Email"].lower() == shared["email"].lower() for c in sims.customers()) == 2
    assert next(c for c in sims.customers() if c["CustomerID"] == walk_in)["BillingFirstName"] == "Walk-in"
    assert state.get_mapped("contacts", [GHOST])  # reported, not forgotten
    assert {f["source_id"] for f in findings if f["action"] == "repaired"} == {
        edited["id"],
        new["id"],
        removed["id"],
        tasked["id"],
    }

    # Converged: what is left is what the policy only reports; nothing is written.
    sims.clear_logs()
    dr, run, findings = reconcile(reconcile_dag)
    assert dr.state == "success" and run["status"] == "ok"
    assert {(f["kind"], f["action"]) for f in findings} == {
        ("duplicate_email", "reported"),
        ("dangling_id_map", "reported"),
        ("deleted_in_ghl", "already_disabled"),
    }
    assert writes(sims) == []


@STRICT_ONLY
@pytest.mark.parametrize("keeps_total", [False, True])
def test_a_search_answer_missing_30_percent_disables_nothing_and_fails_the_run(
    sims, sync_dag, reconcile_dag, keeps_total
):
    synced(sims, sync_dag)
    # The strict reading: `total` agrees with the short list, so only the share gives it away.
    sims.ghl_state.configure(search_hide_share=0.3, search_hide_keeps_total=keeps_total)
    dr, run, findings = reconcile(reconcile_dag)
    assert dr.state == "failed"
    assert run["status"] == "braked" and run["summary"]["brake_reason"]
    hidden = of_kind(findings, "deleted_in_ghl")
    assert len(hidden) == 6 and {f["action"] for f in hidden} == {"braked"}
    counted = of_kind(findings, "count_mismatch")
    if keeps_total:
        assert [(f["ghl_value"], f["store_value"]) for f in counted] == [("20", "14")]
    else:
        assert counted == []
    assert writes(sims) == []
    assert all(c["Enabled"] is True for c in sims.customers())
    assert (Path(run["report_dir"]) / "findings.csv").exists()


def test_deleted_contact_is_disabled_then_enabled_when_it_reappears(sims, sync_dag, reconcile_dag, monkeypatch):
    monkeypatch.setenv("GHL_S4S_RECONCILE_MAX_DELETE_SHARE", "0.1")
    contacts = synced(sims, sync_dag)
    gone, switched_off = contacts[0], contacts[1]
    raw = sims.ghl_state.raw_contact(gone["id"])
    tasks = sims.ghl_state.list_tasks(gone["id"])  # GHL drops a deleted contact's tasks
    sims.ghl_state.delete_contact(gone["id"])
    dr, run, findings = reconcile(reconcile_dag)
    assert dr.state == "success" and run["status"] == "ok"
    assert [(f["kind"], f["source_id"], f["action"]) for f in findings] == [("deleted_in_ghl", gone["id"], "disabled")]
    customer = by_ghl_id(sims)[gone["id"]]
    assert customer["Enabled"] is False
    puts = [r for r in writes(sims) if r["method"] == "PUT"]
    assert len(puts) == 1 and not [r for r in writes(sims) if r["method"] != "PUT"]
    # The store's customers asset tells the story: the repair's event says what it switched off.
    dag_id, task_id, _, extra = customers_events()[-1]
    assert (dag_id, task_id, extra["disabled"], extra["enabled"]) == ("ghl_shift4shop_reconcile", "repair", 1, 0)

    # The contact comes back (restored in GHL); a merchant meanwhile switched another customer off
    # by hand: only the one this job disabled is switched on again.
    sims.ghl_state.load_contacts([raw])
    sims.ghl_state.load_tasks(tasks)
    other = by_ghl_id(sims)[switched_off["id"]]
    sims.s4s_state.update_customer(store_key(sims), other["CustomerID"], {"Enabled": False})
    sims.clear_logs()
    dr, run, findings = reconcile(reconcile_dag)
    assert dr.state == "success" and run["status"] == "ok"
    assert [(f["kind"], f["source_id"], f["action"]) for f in findings] == [("reappeared", gone["id"], "enabled")]
    after = by_ghl_id(sims)
    assert after[gone["id"]]["Enabled"] is True
    assert customers_events()[-1][3]["enabled"] == 1
    assert after[switched_off["id"]]["Enabled"] is False
    sims.clear_logs()
    dr, run, findings = reconcile(reconcile_dag)
    assert findings == [] and writes(sims) == []


@STRICT_ONLY
def test_delete_policy_deletes_the_customer_and_forgets_its_mapping(
    sims, sync_dag, reconcile_dag, state, tmp_path, monkeypatch
):
    include = tmp_path / "include"
    shutil.copytree(ROOT / "include", include)
    (include / "mappings" / "reconcile.yaml").write_text("deleted_in_ghl: delete\n", encoding="utf-8")
    monkeypatch.setenv("GHL_S4S_INCLUDE_DIR", str(include))
    gone, target, dr, run, findings = one_deleted_then_reconciled(sims, sync_dag, reconcile_dag, monkeypatch)
    assert dr.state == "success" and run["status"] == "ok"
    assert [(f["kind"], f["source_id"], f["target_id"], f["action"]) for f in findings] == [
        ("deleted_in_ghl", gone["id"], str(target), "deleted")
    ]
    assert [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in writes(sims)] == [("DELETE", str(target))]
    assert gone["id"] not in by_ghl_id(sims) and len(sims.customers()) == N - 1
    assert state.get_mapped("contacts", [gone["id"]]) == {}
    sims.clear_logs()
    dr, run, findings = reconcile(reconcile_dag)
    assert findings == [] and writes(sims) == []


@STRICT_ONLY
def test_no_secret_or_email_in_logs_or_xcom(sims, sync_dag, reconcile_dag, capfd, caplog, monkeypatch):
    from tests.robustness.test_secrets import xcom_values

    monkeypatch.setenv("GHL_S4S_RECONCILE_MAX_DELETE_SHARE", "0.1")
    contacts = synced(sims, sync_dag)
    customers = by_ghl_id(sims)
    # Findings that carry e-mails as values: an e-mail edited in the store, a duplicate, a deletion.
    edited = customers[contacts[0]["id"]]
    sims.s4s_state.update_customer(store_key(sims), edited["CustomerID"], {"Email": "edited.by.hand@example.net"})
    sims.s4s_state.load_customers(SECURE_URL, [{"Email": contacts[1]["email"], "Password": "x"}])
    sims.ghl_state.delete_contact(contacts[2]["id"])
    capfd.readouterr()
    caplog.clear()
    caplog.set_level("INFO")
    dr, run, findings = reconcile(reconcile_dag)
    assert dr.state == "success"
    assert {f["kind"] for f in findings} == {"drift", "duplicate_email", "deleted_in_ghl"}
    assert by_ghl_id(sims)[contacts[0]["id"]]["Email"] == contacts[0]["email"]  # put back
    out = capfd.readouterr()
    logs = out.out + out.err + caplog.text  # the task logs, wherever pytest routed them
    assert "reconcile summary for" in logs  # the logs were captured
    emails = [c["email"] for c in contacts] + ["edited.by.hand@example.net"]
    assert not [e for e in emails if e in logs]
    assert not [s for s in SECRETS if s in logs]
    values = xcom_values([dr.run_id])
    assert values and not [v for v in values if any(e in v for e in emails) or any(s in v for s in SECRETS)]


@STRICT_ONLY
def test_a_repair_that_fails_still_reports_and_stores_the_run_as_failed(sims, sync_dag, reconcile_dag, monkeypatch):
    monkeypatch.setenv("GHL_S4S_RECONCILE_MAX_DELETE_SHARE", "0.1")
    contacts = synced(sims, sync_dag)
    sims.ghl_state.delete_contact(contacts[0]["id"])
    # The store refuses the disable (401: the app lost its write privilege): no retry can help.
    sims.s4s_state.faults.set([{"action": "status", "status": 401, "method": "PUT", "path": "/Customers"}])
    dr, run, findings = reconcile(reconcile_dag)
    assert dr.state == "failed"
    tis = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert tis == {"compare": "success", "recheck": "success", "repair": "failed", "report": "failed"}
    assert run["status"] == "failed"
    assert [(f["kind"], f["action"]) for f in findings] == [("deleted_in_ghl", "failed")]
    assert (Path(run["report_dir"]) / "findings.csv").exists()
    assert all(c["Enabled"] is True for c in sims.customers())


@STRICT_ONLY
def test_a_customer_that_only_carries_a_value_in_the_ghl_id_field_is_reported_never_switched_off(
    sims, sync_dag, reconcile_dag, monkeypatch
):
    # The share would allow switching both off: only the id map decides what is ours.
    monkeypatch.setenv("GHL_S4S_RECONCILE_MAX_DELETE_SHARE", "0.5")
    synced(sims, sync_dag)
    labelled = sims.s4s_state.load_customers(
        SECURE_URL,
        [
            # A merchant's own label in the field this job keeps GHL ids in.
            {"Email": "wholesale.buyer@example.org", "Password": "x", "AdditionalField1": "wholesale", "Enabled": True},
            # An id of GHL's shape, written by some other tool: no id-map row links it to this job.
            {
                "Email": "other.tool@example.org",
                "Password": "x",
                "AdditionalField1": "Zx9aQ8bR7cS6dT5eU4fV",
                "Enabled": True,
            },
        ],
    )
    dr, run, findings = reconcile(reconcile_dag)
    assert dr.state == "success" and run["status"] == "ok"
    assert sorted((f["source_id"], f["action"]) for f in of_kind(findings, "deleted_in_ghl")) == [
        ("Zx9aQ8bR7cS6dT5eU4fV", "reported"),
        ("wholesale", "reported"),
    ]
    assert writes(sims) == []
    held = {c["CustomerID"]: c for c in sims.customers()}
    assert all(held[cid]["Enabled"] is True for cid in labelled)


def test_a_contact_deleted_and_made_again_with_the_same_email_takes_its_customer_over(
    sims, sync_dag, reconcile_dag, state, monkeypatch
):
    old, customer_id, _, _, findings = one_deleted_then_reconciled(sims, sync_dag, reconcile_dag, monkeypatch)
    assert [(f["kind"], f["action"]) for f in findings] == [("deleted_in_ghl", "disabled")]

    again = made_again(sims, old, seed=4242)
    assert sync_dag.test().state == "success"
    held = {q["source_id"]: q["reason"] for q in state.open_quarantine("contacts")}
    assert held.get(again["id"], "").startswith("duplicate_email")  # the old contact's id-map row holds it

    sims.clear_logs()
    dr, run, findings = reconcile(reconcile_dag)
    assert dr.state == "success" and run["status"] == "ok"
    assert sorted((f["kind"], f["source_id"], f["action"]) for f in findings) == [
        ("deleted_in_ghl", old["id"], "handed_over"),
        ("missing_in_store", again["id"], "repaired"),
    ]
    customers = sims.customers()
    assert len(customers) == N  # taken over, not made again
    now = by_ghl_id(sims)[again["id"]]
    assert now["CustomerID"] == customer_id and now["Enabled"] is True
    assert now["BillingFirstName"] == again["firstName"]
    assert old["id"] not in by_ghl_id(sims)
    assert state.get_mapped("contacts", [old["id"]]) == {}
    assert state.get_mapped("contacts", [again["id"]])[again["id"]].target_id == str(customer_id)
    assert again["id"] not in {q["source_id"] for q in state.open_quarantine("contacts")}

    # Converged: the sync and the next reconciliation have nothing to do.
    sims.clear_logs()
    assert sync_dag.test().state == "success"
    dr, run, findings = reconcile(reconcile_dag)
    assert findings == [] and writes(sims) == []


def made_again(sims, old: dict, seed: int) -> dict:
    """The person of ``old`` made again in GHL: a new contact id, the same e-mail, changed now."""
    again = generate_contacts(1, seed=seed, dirty_share=0.0, location_id=LOCATION_ID)[0]
    again["email"] = old["email"]
    again["dateAdded"] = again["dateUpdated"] = format_ts(datetime.now(UTC))
    sims.ghl_state.load_contacts([again])
    return again


@STRICT_ONLY
def test_a_handover_whose_load_fails_still_gives_the_customer_back_the_next_night(
    sims, sync_dag, reconcile_dag, state, monkeypatch
):
    from ghl_shift4shop.idmaps import DisabledMap

    old, customer_id, _, _, findings = one_deleted_then_reconciled(sims, sync_dag, reconcile_dag, monkeypatch)
    assert [(f["kind"], f["action"]) for f in findings] == [("deleted_in_ghl", "disabled")]
    again = made_again(sims, old, seed=4243)
    assert sync_dag.test().state == "success"  # quarantined: the old contact's row holds the e-mail

    # A bad night: the store refuses every PUT (the load's and the enable's).
    sims.s4s_state.faults.set([{"action": "status", "status": 400, "method": "PUT", "path": "/Customers"}])
    dr, run, findings = reconcile(reconcile_dag)
    assert run["status"] == "failed"
    assert {(f["kind"], f["action"]) for f in findings} == {
        ("deleted_in_ghl", "handed_over"),
        ("missing_in_store", "failed"),
    }
    assert DisabledMap(state).all() == {again["id"]: str(customer_id)}  # off by this job, now the new contact's
    sims.s4s_state.faults.clear()

    dr, run, findings = reconcile(reconcile_dag)
    assert dr.state == "success" and run["status"] == "ok"
    assert ("reappeared", again["id"], "enabled") in {(f["kind"], f["source_id"], f["action"]) for f in findings}
    assert {f["action"] for f in findings} == {"enabled", "repaired"}  # and the customer written from it
    now = by_ghl_id(sims)[again["id"]]
    assert now["CustomerID"] == customer_id and now["Enabled"] is True and len(sims.customers()) == N
    sims.clear_logs()
    dr, run, findings = reconcile(reconcile_dag)
    assert findings == [] and writes(sims) == []


@STRICT_ONLY
def test_a_contact_made_again_after_its_customer_was_removed_gets_a_new_customer(
    sims, sync_dag, reconcile_dag, state, monkeypatch
):
    monkeypatch.setenv("GHL_S4S_RECONCILE_MAX_DELETE_SHARE", "0.1")
    old = synced(sims, sync_dag)[0]
    sims.s4s_state.delete_customer(store_key(sims), by_ghl_id(sims)[old["id"]]["CustomerID"])
    sims.ghl_state.delete_contact(old["id"])
    again = made_again(sims, old, seed=4244)
    assert sync_dag.test().state == "success"
    assert again["id"] in {q["source_id"] for q in state.open_quarantine("contacts")}
    dr, run, findings = reconcile(reconcile_dag)
    assert dr.state == "success" and run["status"] == "ok"
    assert sorted((f["kind"], f["source_id"], f["action"]) for f in findings) == [
        ("dangling_id_map", old["id"], "handed_over"),
        ("missing_in_store", again["id"], "repaired"),
    ]
    assert by_ghl_id(sims)[again["id"]]["Email"].lower() == old["email"].lower()
    assert len(sims.customers()) == N and state.get_mapped("contacts", [old["id"]]) == {}
    sims.clear_logs()
    dr, run, findings = reconcile(reconcile_dag)
    assert findings == [] and writes(sims) == []


@STRICT_ONLY
def test_a_reconciliation_sharing_the_sync_runs_id_leaves_that_runs_files_and_counts_alone(
    sims, sync_dag, reconcile_dag, state
):
    """Run ids come from ``run_after``: the nightly run at 02:00 and the sync run whose interval ends at
    02:00 are both ``scheduled__…T02:00:00+00:00``, and run at the same time. The repair stages its
    contacts through the sync's own stage functions, which file and count by that key."""
    from ghl_shift4shop.batches import run_dir
    from ghl_shift4shop.settings import load_settings

    seed_ghl(sims, N, location_id=LOCATION_ID)
    when = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    synced_run = sync_dag.test(run_after=when, logical_date=when)
    assert synced_run.state == "success" and len(sims.customers()) == N
    files = sorted(run_dir(load_settings().data_dir, synced_run.run_id).rglob("*.jsonl"))
    assert files
    staged = {p: p.read_bytes() for p in files}
    counts = state.run_totals(synced_run.run_id)
    gone = sims.customers()[0]
    sims.s4s_state.delete_customer(store_key(sims), gone["CustomerID"])

    night = reconcile_dag.test(run_after=when, logical_date=when)
    assert night.state == "success" and night.run_id == synced_run.run_id  # the shared id
    findings = state.reconcile_findings(night.run_id)
    assert [(f["kind"], f["source_id"], f["action"]) for f in findings] == [
        ("missing_in_store", gone["AdditionalField1"], "repaired")
    ]
    assert len(sims.customers()) == N
    # The sync run's batch files and counters are as the sync left them.
    assert {p: p.read_bytes() for p in files} == staged
    assert state.run_totals(synced_run.run_id) == counts


@STRICT_ONLY
def test_a_contact_gone_only_for_a_moment_is_never_switched_off(sims, sync_dag, reconcile_dag, state, monkeypatch):
    """The reconciliation reads the two sides one after the other while the sync keeps running."""
    from ghl_shift4shop import reconcile as module

    monkeypatch.setenv("GHL_S4S_RECONCILE_MAX_DELETE_SHARE", "0.5")
    contacts = synced(sims, sync_dag)
    restored, repointed, gone = contacts[:3]
    customers = by_ghl_id(sims)
    raw = sims.ghl_state.raw_contact(restored["id"])
    for c in (restored, repointed, gone):
        sims.ghl_state.delete_contact(c["id"])
    key = store_key(sims)

    # A contact made while the GHL walk runs, and loaded by a concurrent sync run once the walk has
    # passed: it is in the store and the id map, not in what the walk saw.
    late = generate_contacts(1, seed=9191, dirty_share=0.0, location_id=LOCATION_ID)[0]
    read_ghl = module.read_ghl

    def walk_then_a_sync_loads_a_new_contact(*args, **kwargs):
        seen = read_ghl(*args, **kwargs)
        sims.ghl_state.load_contacts([late])
        cid = sims.s4s_state.load_customers(
            SECURE_URL, [{"Email": late["email"], "Password": "x", "AdditionalField1": late["id"], "Enabled": True}]
        )[0]
        state.record_mapped("contacts", [MappedId(late["id"], str(cid), late["email"], "digest")])
        return seen

    # After the comparison, before the repair: one contact is restored in GHL, and another
    # customer is pointed at a different contact (by a sync, or by hand).
    recheck = module.recheck

    def things_change_before_the_recheck(scanned, **kwargs):
        sims.ghl_state.load_contacts([raw])
        sims.s4s_state.update_customer(
            key, customers[repointed["id"]]["CustomerID"], {"AdditionalField1": "someoneElse"}
        )
        return recheck(scanned, **kwargs)

    monkeypatch.setattr(module, "read_ghl", walk_then_a_sync_loads_a_new_contact)
    monkeypatch.setattr(module, "recheck", things_change_before_the_recheck)
    dr, run, findings = reconcile(reconcile_dag)
    assert dr.state == "success" and run["status"] == "ok"
    assert not [f for f in findings if late["id"] in (f["source_id"], f["target_id"])]
    assert {f["source_id"]: f["action"] for f in of_kind(findings, "deleted_in_ghl")} == {
        restored["id"]: "skipped",
        repointed["id"]: "skipped",
        gone["id"]: "disabled",
    }
    enabled = {c["CustomerID"]: c["Enabled"] for c in sims.customers()}
    assert enabled[customers[gone["id"]]["CustomerID"]] is False
    assert enabled[customers[restored["id"]]["CustomerID"]] is True
    assert enabled[customers[repointed["id"]]["CustomerID"]] is True
    assert all(v for cid, v in enabled.items() if cid != customers[gone["id"]]["CustomerID"])


@STRICT_ONLY
def test_a_contact_or_customer_that_cannot_be_asked_again_is_left_alone_and_the_rest_goes_on(
    sims, sync_dag, reconcile_dag, monkeypatch
):
    monkeypatch.setenv("GHL_S4S_RECONCILE_MAX_DELETE_SHARE", "0.5")
    contacts = synced(sims, sync_dag)
    unsure, store_unsure, gone, edited = contacts[:4]
    customers = by_ghl_id(sims)
    for c in (unsure, store_unsure, gone):
        sims.ghl_state.delete_contact(c["id"])
    city = customers[edited["id"]]["BillingCity"]
    sims.s4s_state.update_customer(store_key(sims), customers[edited["id"]]["CustomerID"], {"BillingCity": "X"})
    # Asked again, GHL refuses to say anything about one of them (a bare 400: not "not found"), and
    # the store will not show another's customer.
    sims.ghl_state.faults.set(
        [{"action": "status", "status": 400, "message": "Bad Request", "path": f"/contacts/{unsure['id']}$"}]
    )
    held = customers[store_unsure["id"]]["CustomerID"]
    sims.s4s_state.faults.set([{"action": "status", "status": 400, "method": "GET", "path": f"(?i)/customers/{held}$"}])
    dr, run, findings = reconcile(reconcile_dag)
    assert run["status"] == "failed"  # said loudly...
    assert {f["source_id"]: f["action"] for f in findings} == {
        unsure["id"]: "failed",
        store_unsure["id"]: "failed",
        gone["id"]: "disabled",
        edited["id"]: "repaired",
    }
    enabled = {c["CustomerID"]: c["Enabled"] for c in sims.customers()}
    assert enabled[customers[unsure["id"]]["CustomerID"]] is True  # ...and nothing done to them
    assert enabled[held] is True
    assert enabled[customers[gone["id"]]["CustomerID"]] is False  # the rest of the night went on
    assert by_ghl_id(sims)[edited["id"]]["BillingCity"] == city


@STRICT_ONLY
def test_a_contact_made_again_takes_its_customer_over_even_when_the_store_email_was_edited(
    sims, sync_dag, reconcile_dag, state, monkeypatch
):
    monkeypatch.setenv("GHL_S4S_RECONCILE_MAX_DELETE_SHARE", "0.1")
    old = synced(sims, sync_dag)[0]
    customer_id = by_ghl_id(sims)[old["id"]]["CustomerID"]
    # A merchant corrected the address in the store; the id map still knows the one the sync sent.
    sims.s4s_state.update_customer(store_key(sims), customer_id, {"Email": "corrected.by.hand@example.net"})
    sims.ghl_state.delete_contact(old["id"])
    again = made_again(sims, old, seed=4245)
    assert sync_dag.test().state == "success"  # quarantined on the id map's e-mail
    dr, run, findings = reconcile(reconcile_dag)
    assert dr.state == "success" and run["status"] == "ok"
    assert sorted((f["kind"], f["source_id"], f["action"]) for f in findings) == [
        ("deleted_in_ghl", old["id"], "handed_over"),
        ("missing_in_store", again["id"], "repaired"),
    ]
    now = by_ghl_id(sims)[again["id"]]
    assert now["CustomerID"] == customer_id and now["Enabled"] is True and len(sims.customers()) == N
    assert now["Email"].lower() == old["email"].lower()  # GHL wins
