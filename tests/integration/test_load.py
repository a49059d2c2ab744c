"""The load stage against the Shift4Shop simulator: no duplicates whatever the store does."""

from __future__ import annotations

from pathlib import Path

import pytest
from ghl_shift4shop.batches import write_jsonl
from ghl_shift4shop.load import load_customers
from ghl_shift4shop.mapping import load_mapping
from ghl_shift4shop.shift4shop.hook import Shift4ShopHook
from ghl_shift4shop.transform import transform_records

from tests.conftest import SECURE_URL

pytestmark = pytest.mark.both_profiles  # the load must hold under either reading of the store

ROOT = Path(__file__).resolve().parents[2]
MAPPING = load_mapping(ROOT / "include" / "mappings" / "contacts_to_customers.yaml")


def contacts(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "id": f"ghl{i:017d}",
            "firstName": f"First{i}",
            "lastName": f"Last{i}",
            "email": f"person{i}@example.com",
            "city": "Lyon",
            "dateUpdated": f"2026-11-01T10:00:{i % 60:02d}.000Z",
        }
        for i in range(start, start + n)
    ]


def refs_for(tmp_path, records, batch_size=1000) -> list[dict]:
    rows = transform_records(records, MAPPING)
    refs = []
    for b, i in enumerate(range(0, len(rows), batch_size), start=1):
        path = tmp_path / f"t{b}.jsonl"
        write_jsonl(path, rows[i : i + batch_size])
        refs.append({"batch": b, "path": str(path), "rows": len(rows[i : i + batch_size])})
    return refs


def load(tmp_path, state, records, **kw):
    return load_customers(
        refs_for(tmp_path, records), hook=Shift4ShopHook(), state=state, mapping=MAPPING, run_id="r", **kw
    )


def emails(sims) -> list[str]:
    return sorted(c["Email"].lower() for c in sims.customers())


def resolution_calls(sims) -> list[dict]:
    """The store calls made to find existing customers: every request before the first write."""
    calls = sims.s4s_requests()
    first_write = next((i for i, r in enumerate(calls) if r["method"] != "GET"), len(calls))
    return calls[:first_write]


def test_falls_back_to_single_creates_when_the_store_refuses_arrays(sims, state, tmp_path):
    sims.s4s_state.configure(accept_array_post=False)
    out = load(tmp_path, state, contacts(5))
    assert out["created"] == 5
    assert len(emails(sims)) == len(set(emails(sims))) == 5
    posts = sims.s4s_requests("POST")
    assert len(posts) == 1 + 5  # the refused array, then one at a time
    assert all(c["Enabled"] is True for c in sims.customers())  # create_defaults from the mapping


def test_customer_deleted_in_the_store_is_created_again(sims, state, tmp_path):
    load(tmp_path, state, contacts(3))
    victim = next(c for c in sims.customers() if c["Email"] == "person1@example.com")
    sims.s4s_state.delete_customer(sims.s4s_state.resolve_store(SECURE_URL), victim["CustomerID"])
    changed = contacts(3)
    for c in changed:
        c["city"] = "Nice"
    out = load(tmp_path, state, changed)
    assert out["updated"] == 2 and out["created"] == 1
    assert emails(sims) == sorted(f"person{i}@example.com" for i in range(3))
    assert {c["BillingCity"] for c in sims.customers()} == {"Nice"}


def test_store_side_rejections_are_quarantined_and_the_rest_lands(sims, state, tmp_path):
    load(tmp_path, state, contacts(3))
    # Someone registered person9@ in the store by hand; GHL contact 0 now wants that address.
    sims.s4s_state.load_customers(SECURE_URL, [{"Email": "person9@example.com", "Password": "x"}])
    changed = contacts(3)
    changed[0]["email"] = "person9@example.com"
    changed[1]["city"] = "Nice"
    out = load(tmp_path, state, changed)
    assert out["updated"] == 1 and out["load_quarantined"] == 1
    [q] = state.open_quarantine("contacts")
    # Refused before the store is asked: a store that accepts a second customer with one e-mail
    # (the strict reading) must not end up with two.
    assert q["source_id"] == changed[0]["id"] and q["reason"].startswith("duplicate_email: person9@example.com")
    assert sorted(emails(sims)) == ["person0@example.com", "person1@example.com", "person2@example.com",
                                    "person9@example.com"]  # fmt: skip


def test_email_resolution_uses_the_cheaper_of_lookups_and_a_scan(sims, state, tmp_path):
    existing = [{"Email": f"PERSON{i}@EXAMPLE.COM", "Password": "x"} for i in range(0, 600, 3)]
    sims.s4s_state.load_customers(SECURE_URL, existing)
    sims.clear_logs()
    out = load(tmp_path, state, contacts(600))
    assert out["adopted"] == 200 and out["created"] == 400
    before_writes = resolution_calls(sims)
    assert len(before_writes) == 1 + 1  # countonly + one page of 200 instead of 600 look-ups
    assert len(emails(sims)) == len(set(emails(sims))) == 600

    # Two new contacts against a store of 600: two look-ups beat a scan of two pages.
    sims.clear_logs()
    out = load(tmp_path, state, contacts(2, start=600))
    gets = resolution_calls(sims)
    assert out["created"] == 2 and len(gets) == 1 + 2
    assert all("email=" in g["query"] for g in gets[1:])


def test_rerun_is_free(sims, state, tmp_path):
    load(tmp_path, state, contacts(250))
    sims.clear_logs()
    out = load(tmp_path, state, contacts(250))
    assert out["unchanged"] == 250 and sims.s4s_requests() == []


@pytest.mark.parametrize("case_variant", [str.upper, str.title])
def test_two_contacts_with_one_email_never_make_two_customers(sims, state, tmp_path, case_variant):
    records = contacts(2)
    records[1]["email"] = case_variant(records[0]["email"])
    out = load(tmp_path, state, records)
    assert out["created"] == 1 and out["load_quarantined"] == 1
    assert len(sims.customers()) == 1
    [q] = state.open_quarantine("contacts")
    assert q["reason"].startswith("duplicate_email") and records[0]["id"] in q["reason"]


# -- the paths that used to lose or duplicate data ---------------------------------------------


@pytest.mark.parametrize("missing", ["per_item", "whole_404_apply_known", "whole_404_apply_none"])
def test_a_deleted_customer_in_a_bulk_put_is_found_and_the_rest_lands(sims, state, tmp_path, missing):
    """Whatever the store does with a PUT naming one deleted customer, each item gets its own outcome."""
    sims.s4s_state.configure(bulk_put_missing=missing)
    load(tmp_path, state, contacts(150))
    store = sims.s4s_state.resolve_store(SECURE_URL)
    by_email = {c["Email"]: c for c in sims.customers()}
    sims.s4s_state.delete_customer(store, by_email["person7@example.com"]["CustomerID"])
    # The shop re-registered person9 by hand after deleting the synced one: adopt it, never duplicate.
    sims.s4s_state.delete_customer(store, by_email["person9@example.com"]["CustomerID"])
    sims.s4s_state.load_customers(SECURE_URL, [{"Email": "PERSON9@example.com", "Password": "x"}])
    changed = contacts(150)
    for c in changed:
        c["city"] = "Nice"
    out = load(tmp_path, state, changed)
    assert out["created"] == 1 and out["updated"] == 149 and out["load_quarantined"] == 0
    assert emails(sims) == sorted(f"person{i}@example.com" for i in range(150))
    assert {c["BillingCity"] for c in sims.customers()} == {"Nice"}
    puts = sims.s4s_requests("PUT")
    # Two chunks, then halving only around the two missing ones (at most 2 × 2 × log2(100) PUTs),
    # and one PUT for the adopted customer: far from one call per customer.
    assert len(puts) <= 2 + 2 * 2 * 7 + 1


def store_busy_for(sims, monkeypatch, emails_busy: set[str]) -> None:
    """The store answers bulk PUTs 206, failing these customers' items with 503 (not applied)."""
    original = sims.s4s_state.update_customers

    def update_customers(store_key, items):
        items = list(items)
        busy = {c["CustomerID"] for c in sims.s4s_state.all_customers(SECURE_URL) if c["Email"] in emails_busy}
        ok = iter(original(store_key, [i for i in items if int(i["CustomerID"]) not in busy]))
        return [
            {"Key": "Error", "Value": str(i["CustomerID"]), "Status": "503", "Message": "Service busy"}
            if int(i["CustomerID"]) in busy
            else next(ok)
            for i in items
        ]

    monkeypatch.setattr(sims.s4s_state, "update_customers", update_customers)


def test_a_dead_letter_survives_a_failing_retry_and_is_quarantined_after_five_tries(sims, state, tmp_path, monkeypatch):
    load(tmp_path, state, contacts(3))
    store_busy_for(sims, monkeypatch, {"person1@example.com"})
    attempts = []
    for run_no in range(1, 6):
        # Each run also changes person2, so every PUT mixes a failing and a landing item (a 206).
        changed = contacts(3)
        changed[1]["city"] = "Nice"
        changed[2]["city"] = f"Run {run_no}"
        out = load(tmp_path, state, changed if run_no == 1 else changed[2:])
        letters = state.list_dead_letters("contacts")
        attempts.append([d["attempts"] for d in letters])
        if run_no < 5:
            assert out["dead_lettered"] == 1 and [d["source_id"] for d in letters] == [changed[1]["id"]]
            assert out["dead_letters_retried"] == (0 if run_no == 1 else 1)
    assert attempts == [[1], [2], [3], [4], []]
    [q] = state.open_quarantine("contacts")
    assert q["source_id"] == changed[1]["id"] and q["reason"].startswith("store_failed_5_times: 503")
    assert next(c for c in sims.customers() if c["Email"] == "person2@example.com")["BillingCity"] == "Run 5"


def test_a_dead_letter_lands_once_the_store_recovers(sims, state, tmp_path, monkeypatch):
    load(tmp_path, state, contacts(3))
    with monkeypatch.context() as busy:
        store_busy_for(sims, busy, {"person2@example.com"})
        for run_no in (1, 2):  # person0 changes too, so each PUT mixes a failing and a landing item
            changed = contacts(3)
            changed[0]["city"] = f"Run {run_no}"
            changed[2]["city"] = "Nice"
            load(tmp_path, state, changed if run_no == 1 else changed[:1])
        assert [d["attempts"] for d in state.list_dead_letters("contacts")] == [2]
    out = load(tmp_path, state, [])
    assert out["dead_letters_retried"] == 1 and out["updated"] == 1
    assert state.list_dead_letters("contacts") == [] and state.open_quarantine() == []
    assert next(c for c in sims.customers() if c["Email"] == "person2@example.com")["BillingCity"] == "Nice"


def test_a_store_that_keeps_failing_a_whole_bulk_put_stops_the_load_and_loses_nothing(sims, state, tmp_path):
    """An outage (every PUT 503 after the retries) is not a bad item: nothing is dead-lettered or quarantined."""
    from ghl_shift4shop.transport import RetryableError

    load(tmp_path, state, contacts(4))
    sims.s4s_state.faults.set([{"method": "PUT", "path": "(?i)/customers$", "action": "status", "status": 503}])
    changed = [{**c, "city": "Nice"} for c in contacts(4)]
    with pytest.raises(RetryableError):
        load_customers(
            refs_for(tmp_path, changed),
            hook=Shift4ShopHook(max_attempts=2, backoff_max=0.1),
            state=state,
            mapping=MAPPING,
            run_id="r",
        )
    assert state.list_dead_letters() == [] and state.open_quarantine() == []
    sims.s4s_state.faults.clear()
    out = load(tmp_path, state, changed)
    assert out["updated"] == 4


def test_array_post_results_in_any_order_reach_the_right_customers(sims, state, tmp_path):
    sims.s4s_state.configure(array_post="per_item", result_order="shuffled")
    records = contacts(120)
    out = load(tmp_path, state, records)
    assert out["created"] == 120
    mapped = state.get_mapped("contacts", [c["id"] for c in records])
    by_id = {str(c["CustomerID"]): c for c in sims.customers()}
    for c in records:
        customer = by_id[mapped[c["id"]].target_id]
        assert (customer["Email"], customer["AdditionalField1"]) == (c["email"], c["id"])
    # An update goes to the customer that belongs to the contact, not to its neighbour in the answer.
    changed = [{**c, "city": f"City {c['id'][-3:]}"} for c in records]
    load(tmp_path, state, changed)
    for c in changed:
        assert by_id_now(sims)[mapped[c["id"]].target_id]["BillingCity"] == c["city"]


def by_id_now(sims) -> dict[str, dict]:
    return {str(c["CustomerID"]): c for c in sims.customers()}


@pytest.mark.parametrize("refusal", ["reject", "reject_no_content"])
def test_a_refused_array_post_falls_back_and_is_remembered(sims, state, tmp_path, refusal):
    sims.s4s_state.configure(array_post=refusal)
    out = load(tmp_path, state, contacts(30))
    assert out["created"] == 30 and len(emails(sims)) == len(set(emails(sims))) == 30
    sims.clear_logs()
    out = load(tmp_path, state, contacts(5, start=30))
    assert out["created"] == 5
    posts = sims.s4s_requests("POST")
    assert len(posts) == 5  # the refusal was remembered: no array POST on the next run


def test_the_email_lookup_reads_every_page_of_a_partial_match(sims, state, tmp_path):
    sims.s4s_state.configure(email_filter="contains")
    # 700 customers whose e-mail contains person1@example.com, and the real one last.
    others = [{"Email": f"x{i}person1@example.com", "Password": "x"} for i in range(700)]
    sims.s4s_state.load_customers(SECURE_URL, [*others, {"Email": "Person1@Example.com", "Password": "x"}])
    out = load(tmp_path, state, contacts(1, start=1))
    assert out["adopted"] == 1 and out["created"] == 0
    assert len(sims.customers()) == 701


def test_a_store_error_without_a_body_fails_that_item_only(sims, state, tmp_path):
    """Bare 400s (no content, an HTML page or the JSON array, in turn) fail their items; the rest lands."""
    sims.s4s_state.configure(array_post="reject_no_content", error_bodies="varied")
    sims.s4s_state.faults.set(
        [{"method": "POST", "path": "(?i)/customers$", "after": 2, "count": 3, "action": "status", "status": 400}]
    )
    out = load(tmp_path, state, contacts(6))
    assert out["created"] == 3 and out["load_quarantined"] == 3
    reasons = [q["reason"] for q in state.open_quarantine("contacts")]
    assert len(reasons) == 3 and all(r.startswith("store_rejected_create: 400") for r in reasons), reasons
    assert len(sims.customers()) == 3


def test_a_create_whose_answer_never_came_is_looked_up_not_sent_twice(sims, state, tmp_path):
    # The store commits the create, then the answer is lost (timeout): the next look-up finds it.
    sims.s4s_state.faults.set(
        [{"method": "POST", "path": "(?i)/customers$", "count": 1, "action": "commit_then_timeout", "seconds": 1.5}]
    )
    out = load_with_timeout(tmp_path, state, contacts(4), timeout=1)
    assert emails(sims) == sorted(f"person{i}@example.com" for i in range(4))
    assert out["created"] == 4 and out["settled_by_lookup"] >= 1
    assert state.pending("contacts") == {}


def load_with_timeout(tmp_path, state, records, timeout: float):
    return load_customers(
        refs_for(tmp_path, records),
        hook=Shift4ShopHook(timeout=timeout, max_attempts=2),
        state=state,
        mapping=MAPPING,
        run_id="r",
        bulk_create="off",  # one POST per customer, so the fault hits a create of one known record
    )


def test_a_create_that_lands_after_the_client_gave_up_is_adopted_next_run_not_sent_twice(sims, state, tmp_path):
    """The store writes late (after the client's timeout): not found at once, so not re-sent this run."""
    import time

    started = time.time()
    sims.s4s_state.faults.set(
        [{"method": "POST", "path": "(?i)/customers$", "count": 1, "action": "timeout", "seconds": 2}]
    )
    out = load_with_timeout(tmp_path, state, contacts(1), timeout=0.5)
    assert out["created"] == 0 and out["dead_lettered"] == 1
    assert set(state.pending("contacts")) == {"ghl00000000000000000"}  # "may have landed"
    time.sleep(2.5)  # the late write lands
    assert len(sims.customers()) == 1
    out = load_with_timeout(tmp_path, state, [], timeout=5)
    assert out["dead_letters_retried"] == 1 and out["adopted"] == 1 and out["created"] == 0
    assert len(sims.customers()) == 1 and state.pending("contacts") == {}
    assert [r["method"] for r in sims.s4s_requests("POST") if r["ts"] >= started] == ["POST"]  # one create, ever
