"""Two tenants, each a GHL location feeding its own store: real ``dag.test()`` runs of both tenants' DAGs
against two separate simulator pairs over HTTP, through each tenant's own Airflow connections."""

from __future__ import annotations

import json

import pytest

from sandbox.common import ServerThread
from sandbox.ghl import GhlState
from sandbox.ghl import create_app as create_ghl_app
from sandbox.profiles import apply_profile
from sandbox.seed import generate_contacts
from sandbox.shift4shop import Shift4ShopState
from sandbox.shift4shop import create_app as create_s4s_app
from tests.conftest import LOCATION_ID, ROOT

# The harsher reading of the APIs' unconfirmed behaviours (sandbox/profiles.py), on both tenants'
# simulators: tenancy does not depend on the reading, and each run of the pair costs about a minute.
pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.profiles("strict")]

# Tenant acme: another location, another store, other credentials.
ACME_LOCATION = "acmeLoc0000000000001"
ACME_TOKEN = "pit-acme-11112222-3333-4444-5555-666677778888"
ACME_STORE = "https://acme-store.3dcartstores.com"
ACME_KEY, ACME_STORE_TOKEN = "pk-acme-0a0b0c0d0e0f", "tk-acme-0f0e0d0c0b0a"


@pytest.fixture(scope="module")
def acme_servers():
    ghl = GhlState(location_id=ACME_LOCATION, tokens={ACME_TOKEN: {"location_id": ACME_LOCATION}})
    s4s = Shift4ShopState(stores={ACME_STORE: {"private_key": ACME_KEY, "token": ACME_STORE_TOKEN}})
    servers = ServerThread(create_ghl_app(ghl)).start(), ServerThread(create_s4s_app(s4s)).start()
    yield ghl, s4s, servers
    for server in servers:
        server.stop()


@pytest.fixture
def tenants(sims, acme_servers, tmp_path, monkeypatch):
    """default (the ``sims`` pair) and acme (its own pair, connections, pools and a mapping override)."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.pool import Pool

    ghl, s4s, (ghl_server, s4s_server) = acme_servers
    ghl.reset()
    s4s.reset()
    apply_profile(sims.profile, ghl=ghl, shift4shop=s4s)  # acme's pair takes the same reading as default's
    ghl.configure(rate_limit=False, index_lag_s=0.0, latency_s=0.0)
    s4s.configure(rate_limit=False, latency_s=0.0)
    monkeypatch.setenv(
        "AIRFLOW_CONN_GHL_ACME",
        json.dumps(
            {
                "conn_type": "http",
                "host": ghl_server.url,
                "password": ACME_TOKEN,
                "extra": {"location_id": ACME_LOCATION, "version": "2021-07-28"},
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_SHIFT4SHOP_ACME",
        json.dumps(
            {
                "conn_type": "http",
                "host": s4s_server.url,
                "extra": {"secure_url": ACME_STORE, "private_key": ACME_KEY, "token": ACME_STORE_TOKEN},
            }
        ),
    )
    # acme's customers get their city in capitals; the default tenant keeps the shared mapping.
    overrides = tmp_path / "acme_mappings"
    overrides.mkdir()
    mapping = (ROOT / "include" / "mappings" / "contacts_to_customers.yaml").read_text()
    line = "  BillingCity:       {from: city, normalize: [text]}"
    assert line in mapping
    (overrides / "contacts_to_customers.yaml").write_text(
        mapping.replace(line, line.replace("[text]", "[text, upper]"))
    )
    path = tmp_path / "tenants.yaml"
    path.write_text(f"tenants:\n  - name: default\n  - name: acme\n    mappings_dir: {overrides}\n")
    monkeypatch.setenv("GHL_S4S_TENANTS_FILE", str(path))
    for pool in ("ghl_api__acme", "shift4shop_api__acme"):
        Pool.create_or_update_pool(pool, slots=2, description="acme", include_deferred=False)
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag, ghl, s4s


def _state(tenant: str):
    from ghl_shift4shop.settings import load_settings
    from ghl_shift4shop.sync import state_store

    return state_store(load_settings(tenant))


def test_two_tenants_sync_their_own_location_into_their_own_store_with_separate_state(tenants, sims):
    bag, acme_ghl, acme_s4s = tenants
    default_contacts = generate_contacts(20, seed=31, dirty_share=0.0, location_id=LOCATION_ID)
    acme_contacts = generate_contacts(20, seed=32, dirty_share=0.0, location_id=ACME_LOCATION)
    acme_contacts[0]["email"] = "not an address"  # quarantined, in acme's state only
    sims.ghl_state.load_contacts(default_contacts)
    acme_ghl.load_contacts(acme_contacts)
    default_ids, acme_ids = {c["id"] for c in default_contacts}, {c["id"] for c in acme_contacts}

    assert bag.dags["ghl_shift4shop_sync"].test().state == "success"
    default_mark = _state("default").get_watermark("contacts")
    assert default_mark is not None
    assert _state("acme").get_watermark("contacts") is None  # acme has not run: nothing of default's is its
    assert acme_s4s.all_customers(ACME_STORE) == []

    assert bag.dags["ghl_shift4shop_sync__acme"].test().state == "success"
    default_customers, acme_customers = sims.customers(), acme_s4s.all_customers(ACME_STORE)
    assert {c["AdditionalField1"] for c in default_customers} == default_ids
    assert {c["AdditionalField1"] for c in acme_customers} == acme_ids - {acme_contacts[0]["id"]}
    # The mapping override applies to acme only.
    cities = {c["id"]: c["city"] for c in [*default_contacts, *acme_contacts] if c.get("city")}
    assert any(city != city.upper() for city in cities.values())
    for c in acme_customers:
        assert c["BillingCity"] == (cities[c["AdditionalField1"]].upper() if c["AdditionalField1"] in cities else None)
    for c in default_customers:
        assert c["BillingCity"] == cities.get(c["AdditionalField1"])

    default_state, acme_state = _state("default"), _state("acme")
    assert default_state.get_watermark("contacts") == default_mark  # acme's run moved only its own
    assert acme_state.get_watermark("contacts") is not None
    assert {m.source_id for m in default_state.all_mapped("contacts")} == default_ids
    assert {m.source_id for m in acme_state.all_mapped("contacts")} == acme_ids - {acme_contacts[0]["id"]}
    assert {m.target_id for m in acme_state.all_mapped("contacts")} == {str(c["CustomerID"]) for c in acme_customers}
    assert [q["source_id"] for q in acme_state.open_quarantine("contacts")] == [acme_contacts[0]["id"]]
    assert default_state.open_quarantine("contacts") == []

    # Each tenant's second run finds its own watermark and id map: nothing new, nothing written,
    # whatever the other tenant did meanwhile.
    sims.clear_logs()
    acme_s4s.request_log.clear()
    assert bag.dags["ghl_shift4shop_sync"].test().state == "success"
    assert bag.dags["ghl_shift4shop_sync__acme"].test().state == "success"
    for log in (sims.s4s_requests(), acme_s4s.request_log.snapshot()):
        assert [r for r in log if r["method"] in ("POST", "PUT", "DELETE")] == []
    assert len(sims.customers()) == 20 and len(acme_s4s.all_customers(ACME_STORE)) == 19

    # acme's reconciliation compares acme's location with acme's store, in acme's state and files.
    assert bag.dags["ghl_shift4shop_reconcile__acme"].test(run_conf={"dry_run": True}).state == "success"
    [run] = acme_state.recent_reconciles()
    assert default_state.recent_reconciles() == []
    findings = [(f["kind"], f["source_id"]) for f in acme_state.reconcile_findings(run["run_id"])]
    assert findings == [("missing_in_store", acme_contacts[0]["id"])]  # the quarantined one, nothing of default's
    assert "/tenants/acme/reconcile/" in run["report_dir"]


def test_two_tenants_whose_connections_name_one_store_stop_before_writing_it(sims, acme_servers, tmp_path, monkeypatch):
    """acme's own connection id, but the default tenant's store (SecureURL spelled otherwise): the load
    adopts customers by e-mail, so the two would take over each other's customers. Each tenant's first
    task (the sync's plan_window, the reconciliation's compare) fails naming both tenants, before any call."""
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import PRIVATE_KEY, S4S_TOKEN, SECURE_URL

    ghl, _, (ghl_server, _) = acme_servers
    ghl.reset()
    ghl.configure(rate_limit=False, index_lag_s=0.0, latency_s=0.0)
    monkeypatch.setenv(
        "AIRFLOW_CONN_GHL_ACME",
        json.dumps({"conn_type": "http", "host": ghl_server.url, "password": ACME_TOKEN,
                    "extra": {"location_id": ACME_LOCATION, "version": "2021-07-28"}}),
    )  # fmt: skip
    same_store = {"secure_url": f" {SECURE_URL.upper()}/ ", "private_key": PRIVATE_KEY, "token": S4S_TOKEN}
    monkeypatch.setenv(
        "AIRFLOW_CONN_SHIFT4SHOP_ACME", json.dumps({"conn_type": "http", "host": sims.s4s.url, "extra": same_store})
    )
    path = tmp_path / "tenants.yaml"
    path.write_text("tenants:\n  - name: default\n  - name: acme\n")
    monkeypatch.setenv("GHL_S4S_TENANTS_FILE", str(path))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    contacts = generate_contacts(5, seed=41, dirty_share=0.0, location_id=ACME_LOCATION)
    ghl.load_contacts(contacts)
    sims.ghl_state.load_contacts(generate_contacts(5, seed=42, dirty_share=0.0, location_id=LOCATION_ID))
    sims.clear_logs()
    ghl.request_log.clear()

    for dag_id, first in (
        ("ghl_shift4shop_sync__acme", "plan_window"),
        ("ghl_shift4shop_sync", "plan_window"),
        ("ghl_shift4shop_reconcile__acme", "compare"),
    ):
        run = bag.dags[dag_id].test()
        assert run.state == "failed", dag_id
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        assert states[first] == "failed" and "success" not in states.values(), (dag_id, states)
    assert sims.s4s_requests() == [] and sims.ghl_requests() == [] and ghl.request_log.snapshot() == []
    assert sims.customers() == []
    from ghl_shift4shop.preflight import SharedStoreError, check_own_store

    message = r"tenants 'acme' \(connection 'shift4shop_acme'\) and 'default' \(connection 'shift4shop_default'\) feed"
    with pytest.raises(SharedStoreError, match=message + r" the same store 'test-store.3dcartstores.com'"):
        check_own_store("acme")  # what those first tasks raised

    # With acme on a store of its own, the default tenant runs again.
    monkeypatch.delenv("AIRFLOW_CONN_SHIFT4SHOP_ACME")  # a tenant whose connection is missing is skipped
    assert bag.dags["ghl_shift4shop_sync"].test().state == "success"
    assert len(sims.customers()) == 5
