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
    assert q["source_id"] == changed[0]["id"] and q["reason"].startswith("store_rejected_update: 400")


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
