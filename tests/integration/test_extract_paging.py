"""Extract paging at its boundaries, over real HTTP against the GHL simulator.

Asserts rows extracted == distinct ids == contacts in the window (no skipped or repeated page)
and counts search calls from the simulator's request log.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from ghl_shift4shop.batches import read_jsonl
from ghl_shift4shop.extract import extract_contacts
from ghl_shift4shop.ghl.hook import GhlHook
from ghl_shift4shop.timeutil import format_ts

from sandbox.seed import generate_contacts
from tests.conftest import LOCATION_ID


def _contacts(n: int, *, same_stamp: str | None = None, seed: int = 1) -> list[dict]:
    contacts = generate_contacts(n, seed=seed, dirty_share=0.0, location_id=LOCATION_ID)
    if same_stamp:
        for c in contacts:
            c["dateUpdated"] = same_stamp
    return contacts


def _extract(tmp_path, since="1970-01-01T00:00:00.000Z", until=None, batch_size=5000):
    hook = GhlHook()  # the sims fixture lifts the client budgets with the simulators' limits
    summary = extract_contacts(
        hook, data_dir=tmp_path, run_id="paging", since=since, until=until, batch_size=batch_size, workers=16
    )
    ids = [c["id"] for b in summary["batches"] for c in read_jsonl(b["path"])]
    return summary, ids


@pytest.mark.parametrize("n", [500, 10_000, 10_001])
def test_exact_page_and_search_cap_boundaries(sims, tmp_path, n):
    contacts = _contacts(n, seed=n)
    sims.ghl_state.load_contacts(contacts)
    summary, ids = _extract(tmp_path)
    assert len(ids) == len(set(ids)) == n
    assert set(ids) == {c["id"] for c in contacts}
    searches = sims.ghl_requests("/contacts/search")
    # Full pages plus the one short (possibly empty) page that ends the walk.
    assert len(searches) == n // 500 + 1
    assert summary["calls_ghl"] == len(searches)
    # Batches of at most batch_size, memory bounded by it.
    assert all(b["rows"] <= 5000 for b in summary["batches"])
    assert len(summary["batches"]) == math.ceil(n / 5000)


@pytest.mark.both_profiles
def test_search_items_without_names_are_read_in_full_once_each(sims, tmp_path):
    """Strict: the doc-example item shape carries no name, so each contact is read with GET /contacts/{id}."""
    contacts = _contacts(700, seed=3)
    sims.ghl_state.load_contacts(contacts)
    summary, ids = _extract(tmp_path)
    assert sorted(ids) == sorted(c["id"] for c in contacts)
    searches = sims.ghl_requests("/contacts/search")
    reads = [r for r in sims.ghl_requests("/contacts/") if r not in searches]
    assert len(searches) == 2 and summary["calls_ghl"] == len(sims.ghl_requests())
    assert sorted(r["path"].rsplit("/", 1)[1] for r in reads) == (sorted(ids) if sims.profile == "strict" else [])
    assert summary["fetched_in_full"] == len(reads)
    served = {c["id"]: sims.ghl_state.get_contact(c["id"]) for c in contacts}
    for batch in summary["batches"]:
        for row in read_jsonl(batch["path"]):
            for key in ("firstName", "lastName", "name", "address1"):
                assert row.get(key) == served[row["id"]].get(key), key


def test_many_contacts_sharing_one_timestamp_across_page_boundaries(sims, tmp_path):
    stamp = "2026-11-20T08:00:00.000Z"
    contacts = _contacts(1_234, same_stamp=stamp, seed=9)
    sims.ghl_state.load_contacts(contacts)
    summary, ids = _extract(tmp_path, batch_size=400)
    assert sorted(ids) == sorted(c["id"] for c in contacts)
    assert summary["newest_date_updated"] == stamp
    assert [b["rows"] for b in summary["batches"]] == [400, 400, 400, 34]


def test_window_bounds_are_inclusive_and_respected(sims, tmp_path):
    base = datetime(2026, 11, 1, tzinfo=UTC)
    contacts = _contacts(30, seed=2)
    for i, c in enumerate(contacts):
        c["dateAdded"] = c["dateUpdated"] = format_ts(base + timedelta(hours=i))
    sims.ghl_state.load_contacts(contacts)
    _, ids = _extract(
        tmp_path, since=format_ts(base + timedelta(hours=10)), until=format_ts(base + timedelta(hours=19))
    )
    assert sorted(ids) == sorted(c["id"] for c in contacts[10:20])


def test_empty_window_costs_one_call(sims, tmp_path):
    summary, ids = _extract(tmp_path)
    assert ids == [] and summary["batches"] == [] and summary["newest_date_updated"] is None
    assert len(sims.ghl_requests("/contacts/search")) == 1
