"""The load's memory is one batch (issue 9): the e-mail resolver's index lives in the state DB.

Whatever the number of contacts, the resolver holds in memory only the current batch's e-mails,
adoption by e-mail still finds the right customer in every batch (on SQLite and on Postgres), and
the per-load rows are gone when the load ends, crashed loads' leftovers included.
"""

from __future__ import annotations

import tracemalloc
from datetime import timedelta

import pytest
import sqlalchemy as sa
from ghl_shift4shop import state as state_module
from ghl_shift4shop.load import CustomerLoader, EmailResolver, load_customers
from ghl_shift4shop.shift4shop.hook import Shift4ShopHook
from ghl_shift4shop.state import StateStore, utcnow

from tests.builders import fresh_state_store
from tests.conftest import SECURE_URL
from tests.integration.test_load import MAPPING, contacts, emails, refs_for, resolution_calls

RESOLVER_TABLES = (state_module.resolver_loads, state_module.resolver_emails, state_module.resolver_customers)


@pytest.fixture(params=["sqlite", "postgresql"])
def state_db(request, sims, tmp_path):
    """A fresh state database of either kind (Postgres: a throw-away schema)."""
    yield from fresh_state_store(request.param, tmp_path)


def resolver_rows(state: StateStore) -> int:
    with state.begin() as conn:
        return sum(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in RESOLVER_TABLES)


class WatchedLoader(CustomerLoader):
    """The real loader; after each batch it notes how many e-mails its resolver holds in memory."""

    held: list[int]

    def _load_batch(self, rows: list[dict]) -> None:
        super()._load_batch(rows)
        # Every collection the resolver object holds, whatever it is called.
        self.held.append(sum(len(v) for v in vars(self.resolver).values() if isinstance(v, set | dict | list)))


def test_the_resolver_holds_one_batch_of_emails_while_scanning_for_all(sims, state, tmp_path):
    batch = 100
    # Every third contact of 500 already has a customer: the scan (one page) beats 500 look-ups.
    sims.s4s_state.load_customers(
        SECURE_URL, [{"Email": f"person{i}@example.com", "Password": "x"} for i in range(0, 500, 3)]
    )
    sims.clear_logs()
    loader = WatchedLoader(Shift4ShopHook(), state, MAPPING, "r")
    loader.held = []
    stats = loader.load(refs_for(tmp_path, contacts(500), batch_size=batch))

    assert len(loader.held) == 5 and 0 < max(loader.held) <= batch, loader.held
    assert len(resolution_calls(sims)) == 1 + 1  # countonly + one page: the scan, chosen for all 500
    assert loader.resolver.scanned
    assert stats.adopted == 167 and stats.created == 333
    assert len(emails(sims)) == len(set(emails(sims))) == 500
    assert resolver_rows(state) == 0  # the load's index is deleted when it ends


@pytest.mark.parametrize("mode", ["scan", "lookups"])
def test_adoption_by_email_works_in_every_batch(sims, state_db, tmp_path, mode):
    # Contacts 0..59 in batches of 20 (scan: 60 unmapped e-mails against a 2-page store) or 0..5
    # in batches of 2 (look-ups: 6 e-mails against 12 pages of 5).
    n, batch, page_limit = (60, 20, 50) if mode == "scan" else (6, 2, 5)
    records = contacts(n)
    ghl_id = {i: records[i]["id"] for i in range(n)}
    case = str.upper if mode == "scan" else str.lower  # whether the e-mail filter ignores case is undocumented
    store = [{"Email": case(f"person{i}@example.com"), "Password": "x"} for i in range(0, n, 2)]
    # person1@ twice: a customer carrying another contact's GHL id, and a newer one with none
    # (the docstring's rule: no GHL id beats a foreign one).
    store += [
        {"Email": "person1@example.com", "Password": "x", "AdditionalField1": "ghl-someone-else"},
        {"Email": "person1@example.com", "Password": "x"},
    ]
    # person3@ (another batch) twice: an older customer with no GHL id, a newer one carrying its own.
    store += [
        {"Email": "person3@example.com", "Password": "x"},
        {"Email": "person3@example.com", "Password": "x", "AdditionalField1": ghl_id[3]},
    ]
    store += [{"Email": f"filler{i}@example.com", "Password": "x"} for i in range(60 - len(store))]
    sims.s4s_state.configure(unique_emails=False)  # the store takes updates of shared e-mails
    ids = sims.s4s_state.load_customers(SECURE_URL, store)
    by_email: dict[str, list[int]] = {}
    for customer, cid in zip(store, ids, strict=True):
        by_email.setdefault(customer["Email"].lower(), []).append(cid)
    sims.clear_logs()

    out = load_customers(
        refs_for(tmp_path, records, batch_size=batch),
        hook=Shift4ShopHook(),
        state=state_db,
        mapping=MAPPING,
        run_id="r",
        page_limit=page_limit,
    )

    by_email_calls = [r for r in sims.s4s_requests("GET") if "email=" in r["query"]]
    if mode == "scan":
        assert len(resolution_calls(sims)) == 1 + 2 and by_email_calls == []
    else:  # each e-mail asked once, batch after batch
        assert len(by_email_calls) == n
    mapped = state_db.get_mapped("contacts", ghl_id.values())
    want = {i: by_email[f"person{i}@example.com"][0] for i in range(0, n, 2)}
    want[1] = by_email["person1@example.com"][1]  # no GHL id beats another contact's
    want[3] = by_email["person3@example.com"][1]  # its own GHL id beats the older one
    assert {i: int(mapped[ghl_id[i]].target_id) for i in want} == want
    assert out["adopted"] == len(want) and out["created"] == n - len(want)
    assert len(mapped) == n
    assert resolver_rows(state_db) == 0


def test_a_crashed_loads_index_is_dropped_and_never_read(sims, state_db, tmp_path):
    # A load that died after the scan: its rows claim person0@ has customer 999 (it has none).
    crashed = state_db.resolver_open("contacts")
    state_db.resolver_want(crashed, ["person0@example.com", "person1@example.com"])
    state_db.resolver_index_page(crashed, {"person0@example.com": [(999, "")]})
    recent = state_db.resolver_open("contacts")  # another load, started just now: left alone
    with state_db.begin() as conn:
        conn.execute(
            sa.update(state_module.resolver_loads)
            .where(state_module.resolver_loads.c.token == crashed)
            .values(started_at=utcnow() - timedelta(days=2))
        )

    out = load_customers(
        refs_for(tmp_path, contacts(3)), hook=Shift4ShopHook(), state=state_db, mapping=MAPPING, run_id="r"
    )

    assert out["created"] == 3 and out["adopted"] == 0
    with state_db.begin() as conn:
        tokens = {
            conn.execute(sa.select(t.c.token).distinct()).scalars().one_or_none()
            for t in RESOLVER_TABLES
            if conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
        }
    assert tokens == {recent}


def test_the_prescan_reads_one_batch_at_a_time(sims, state, tmp_path):
    """Counting the run's unmapped e-mails costs one batch of memory, however many batches there are."""

    def peak(batches: int) -> int:
        folder = tmp_path / str(batches)
        folder.mkdir()
        refs = refs_for(folder, contacts(500 * batches), batch_size=500)
        loader = CustomerLoader(Shift4ShopHook(), state, MAPPING, "r")
        loader.resolver = EmailResolver(loader.hook, state, "contacts")
        tracemalloc.start()
        try:
            loader._prescan(refs, [])
            top = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            loader.resolver.close()
        assert state.resolver_count(loader.resolver.token) == 0  # closed
        return top

    two, eight = peak(2), peak(8)
    assert eight < 1.5 * two, (two, eight)
