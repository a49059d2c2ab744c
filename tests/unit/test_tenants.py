"""The tenants file (tenants.py) and what each tenant's settings, state and budgets are."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from ghl_shift4shop.settings import load_settings
from ghl_shift4shop.tenants import Tenant, TenantsFileError, load_tenants

from tests.builders import count_reads

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tenants.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def tenants_env(tmp_path, monkeypatch):
    """A tenants file of ``default`` and ``acme`` in the environment; state and data under tmp_path."""
    path = write(tmp_path, "tenants:\n  - name: default\n  - name: acme\n    schedule: '5 * * * *'\n")
    monkeypatch.setenv("GHL_S4S_TENANTS_FILE", str(path))
    monkeypatch.setenv("GHL_S4S_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GHL_S4S_STATE_URL", f"sqlite:///{tmp_path / 'data' / 'state.db'}")
    monkeypatch.delenv("GHL_S4S_RATE_BACKEND", raising=False)
    return path


def test_no_file_means_one_default_tenant_with_the_contract_ids(tmp_path):
    [t] = load_tenants(tmp_path / "missing.yaml")
    assert (t.name, t.sync_dag_id, t.reconcile_dag_id) == ("default", "ghl_shift4shop_sync", "ghl_shift4shop_reconcile")
    assert (t.ghl_conn_id, t.shift4shop_conn_id, t.ghl_pool, t.shift4shop_pool) == (
        "ghl_default",
        "shift4shop_default",
        "ghl_api",
        "shift4shop_api",
    )
    assert (t.schedule, t.reconcile_schedule) == ("*/30 * * * *", "0 2 * * *")


def test_the_committed_file_holds_only_the_default_tenant():
    assert [t.name for t in load_tenants(ROOT / "include" / "tenants.yaml")] == ["default"]
    assert load_tenants(ROOT / "include" / "tenants.yaml") == [Tenant.make("default")]


def test_another_tenant_gets_suffixed_ids_connections_and_pools(tmp_path):
    _, acme = load_tenants(write(tmp_path, "tenants:\n  - name: default\n  - name: acme\n    ghl_pool: shared\n"))
    assert (acme.sync_dag_id, acme.reconcile_dag_id) == ("ghl_shift4shop_sync__acme", "ghl_shift4shop_reconcile__acme")
    assert (acme.ghl_conn_id, acme.shift4shop_conn_id) == ("ghl_acme", "shift4shop_acme")
    assert (acme.ghl_pool, acme.shift4shop_pool) == ("shared", "shift4shop_api__acme")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "tenants:\n  - name: acme\n    shedule: '* * * * *'\n",
            r"tenant 'acme' \(entry 1\): unknown key\(s\) shedule",
        ),
        ("tenants:\n  - name: acme\n  - name: acme\n", r"tenant 'acme' \(entry 2\): the name 'acme' is used twice"),
        ("tenants:\n  - name: Acme-Corp\n", r"tenant entry 1: name 'Acme-Corp' must match"),
        ("tenants:\n  - name: default\n  - ghl_conn_id: x\n", r"tenant entry 2: name None must match"),
        ("tenants:\n  - name: acme\n    mappings_dir: nowhere\n", r"tenant 'acme' \(entry 1\): mappings_dir 'nowhere'"),
        ("tenants:\n  - name: acme\n    schedule: 5\n", r"tenant 'acme' \(entry 1\): schedule must be a string"),
        ("tenant:\n  - name: acme\n", r"one key, `tenants:`"),
        ("tenants: []\n", r"non-empty list"),
    ],
)
def test_a_wrong_file_fails_naming_the_file_and_the_entry(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(TenantsFileError, match=message) as caught:
        load_tenants(path)
    assert str(caught.value).startswith(str(path))


def test_mapping_overrides_must_replace_an_existing_mapping_file(tmp_path, monkeypatch):
    include = tmp_path / "include"
    (include / "mappings").mkdir(parents=True)
    (include / "mappings" / "contacts_to_customers.yaml").write_text("stream: contacts\n")
    (include / "acme").mkdir()
    (include / "acme" / "contact_to_customers.yaml").write_text("stream: contacts\n")  # a typo
    monkeypatch.setenv("GHL_S4S_INCLUDE_DIR", str(include))
    path = write(tmp_path, "tenants:\n  - name: acme\n    mappings_dir: acme\n")
    with pytest.raises(TenantsFileError, match=r"mappings_dir file 'contact_to_customers.yaml' replaces no file"):
        load_tenants(path)
    (include / "acme" / "contact_to_customers.yaml").rename(include / "acme" / "contacts_to_customers.yaml")
    [acme] = load_tenants(path)
    assert acme.mappings_dir == (include / "acme").resolve()
    monkeypatch.setenv("GHL_S4S_TENANTS_FILE", str(path))
    settings = load_settings("acme")
    assert settings.mapping_file("contacts_to_customers.yaml") == include / "acme" / "contacts_to_customers.yaml"
    assert settings.mapping_file("reconcile.yaml") == include / "mappings" / "reconcile.yaml"
    assert (
        load_settings().mapping_file("contacts_to_customers.yaml")
        == include / "mappings" / "contacts_to_customers.yaml"
    )


def test_default_settings_are_unchanged_and_another_tenant_gets_its_own_state_and_files(tenants_env, tmp_path):
    data = tmp_path / "data"
    default, also_default = load_settings(), load_settings("default")
    assert default == also_default
    assert (default.state_url, default.state_schema, default.data_dir) == (f"sqlite:///{data / 'state.db'}", None, data)
    acme = load_settings("acme")
    assert (acme.tenant, acme.ghl_conn_id, acme.shift4shop_conn_id) == ("acme", "ghl_acme", "shift4shop_acme")
    assert acme.state_url == f"sqlite:///{data / 'state__acme.db'}" and acme.state_schema is None
    assert acme.data_dir == data / "tenants" / "acme"
    # A GHL location's or a store's budget is not a tenant's: every tenant spends the same one.
    assert acme.rate_backend == default.rate_backend == f"sqlite:///{data / 'rate_budget.db'}"
    with pytest.raises(KeyError, match="no tenant 'nobody'"):
        load_settings("nobody")


def test_a_postgres_state_url_gives_another_tenant_its_own_schema(tenants_env, monkeypatch):
    url = "postgresql+psycopg2://postgres@db.example:5432/sync"
    monkeypatch.setenv("GHL_S4S_STATE_URL", url)
    assert (load_settings().state_url, load_settings().state_schema) == (url, None)
    assert (load_settings("acme").state_url, load_settings("acme").state_schema) == (url, "ghl_s4s__acme")


def test_tenants_state_is_separate_on_postgres_and_the_default_keeps_its_tables():
    """Same database, a schema per tenant (made if missing); the default tenant's tables stay where they were."""
    import sqlalchemy as sa
    from ghl_shift4shop.state import StateStore

    from tests.builders import postgres_url

    url = postgres_url()
    if url is None:
        pytest.skip("Postgres is not answering")
    base = f"t_{uuid.uuid4().hex[:10]}"
    schema = f"ghl_s4s__{base}"
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA {base}"))
    default_url = f"{url}?options=-csearch_path%3D{base}"
    try:
        default, acme = StateStore(default_url), StateStore(default_url, schema)
        default.set_watermark("contacts", "2026-01-01T00:00:00.000Z", "r1")
        assert acme.get_watermark("contacts") is None
        acme.set_watermark("contacts", "2026-02-02T00:00:00.000Z", "r2")
        assert default.get_watermark("contacts") == "2026-01-01T00:00:00.000Z"
        with eng.begin() as c:
            assert c.execute(sa.text(f"SELECT value FROM {base}.watermarks")).scalar_one() == "2026-01-01T00:00:00.000Z"
            assert (
                c.execute(sa.text(f"SELECT value FROM {schema}.watermarks")).scalar_one() == "2026-02-02T00:00:00.000Z"
            )
        StateStore(default_url, schema)  # a second start finds its schema there
        for store in (default, acme):
            store.engine.dispose()
    finally:
        with eng.begin() as c:
            c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            c.execute(sa.text(f"DROP SCHEMA IF EXISTS {base} CASCADE"))
        eng.dispose()


def _ghl_conn(location_id: str) -> str:
    return json.dumps(
        {"conn_type": "http", "host": "http://127.0.0.1:9", "password": "pit-x", "extra": {"location_id": location_id}}
    )


def test_tenants_on_one_location_share_its_budget_and_on_two_locations_do_not(tenants_env, tmp_path, monkeypatch):
    """Two hooks of two tenants, through their own connections: spending one's budget leaves the other none
    exactly when both connections name the same location."""
    from ghl_shift4shop.ghl.hook import GhlHook

    for name in ("GHL_BURST", "GHL_RATE_PER_S", "GHL_WINDOW_SECONDS"):
        monkeypatch.setenv(f"GHL_S4S_{name}", {"GHL_BURST": "2", "GHL_RATE_PER_S": "0.01"}.get(name, "600"))
    shared, other = f"loc-{uuid.uuid4().hex[:8]}", f"loc-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW_CONN_GHL_DEFAULT", _ghl_conn(shared))
    monkeypatch.setenv("AIRFLOW_CONN_GHL_ACME", _ghl_conn(shared))
    default_hook, acme_hook = GhlHook(settings=load_settings()), GhlHook(settings=load_settings("acme"))
    assert (default_hook.http_conn_id, acme_hook.http_conn_id) == ("ghl_default", "ghl_acme")
    assert default_hook.budget._try_once() == 0.0 and default_hook.budget._try_once() == 0.0  # the burst of 2
    assert acme_hook.budget._try_once() > 0, "the second tenant on the same location got a request the location had not"

    monkeypatch.setenv("AIRFLOW_CONN_GHL_ACME", _ghl_conn(other))
    acme_elsewhere = GhlHook(settings=load_settings("acme"))
    assert acme_elsewhere.budget._try_once() == 0.0, "another location's budget was spent by this one"


def test_operator_commands_act_on_the_tenant_named(tenants_env, capsys):
    from ghl_shift4shop.__main__ import main

    assert main(["--tenant", "acme", "watermark", "set", "--to", "2026-04-04T00:00:00Z"]) == 0
    assert main(["watermark", "show"]) == 0
    assert "no watermarks stored" in capsys.readouterr().out
    assert main(["--tenant", "acme", "watermark", "show"]) == 0
    assert "contacts      2026-04-04T00:00:00.000Z" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--tenant", "nobody", "watermark", "show"])
    assert "no tenant 'nobody'" in capsys.readouterr().err


# -- what the file may not say (review of the tenants change) -------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "tenants:\n  - name: default\n  - name: acme\n    shift4shop_conn_id: shift4shop_default\n",
        "tenants:\n  - name: default\n  - name: acme\n    ghl_conn_id: ghl_default\n"
        "    shift4shop_conn_id: shift4shop_default\n",
    ],
)
def test_two_tenants_on_one_store_connection_are_refused_naming_both(tmp_path, text):
    """The load adopts store customers by e-mail: two tenants on one store would take each other's over."""
    message = r"tenant 'acme' \(entry 2\): shift4shop_conn_id 'shift4shop_default'"
    with pytest.raises(TenantsFileError, match=message) as e:
        load_tenants(write(tmp_path, text))
    assert "tenant 'default' (entry 1)" in str(e.value)


def test_one_location_may_feed_several_stores(tmp_path):
    text = "tenants:\n  - name: default\n  - name: acme\n    ghl_conn_id: ghl_default\n"
    assert [t.ghl_conn_id for t in load_tenants(write(tmp_path, text))] == ["ghl_default", "ghl_default"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('schedule: "every 30 minutes"', r"schedule 'every 30 minutes' is not a cron expression"),
        ('reconcile_schedule: "0 2 * *"', r"reconcile_schedule '0 2 \* \*' is not a cron expression"),
        ('reconcile_schedule: "0 2 * * 0"', r"reconcile_schedule: '0 2 \* \* 0' is not a once-a-day"),
        ('reconcile_schedule: "0 2,14 * * *"', r"reconcile_schedule: '0 2,14 \* \* \*' is not a once-a-day"),
        ('reconcile_schedule: "0 2 * * 1-5"', r"reconcile_schedule: '0 2 \* \* 1-5' is not a once-a-day"),
        ('reconcile_schedule: "@hourly"', r"reconcile_schedule: '@hourly' is not a once-a-day"),
    ],
)
def test_a_bad_schedule_fails_loading_naming_the_file_and_the_entry(tmp_path, entry, message):
    path = write(tmp_path, f"tenants:\n  - name: default\n  - name: acme\n    {entry}\n")
    with pytest.raises(TenantsFileError, match=rf"tenant 'acme' \(entry 2\): {message}") as caught:
        load_tenants(path)
    assert str(caught.value).startswith(str(path))


def test_what_airflow_accepts_as_a_schedule_is_accepted(tmp_path):
    text = (
        "tenants:\n  - name: default\n    schedule: '@hourly'\n    reconcile_schedule: '@daily'\n"
        "  - name: acme\n    schedule: '@quarterly'\n    reconcile_schedule: '30 23 * * *'\n"
    )
    default, acme = load_tenants(write(tmp_path, text))
    assert (default.schedule, default.reconcile_schedule, acme.schedule) == ("@hourly", "@daily", "@quarterly")


def test_another_tenants_bad_schedule_does_not_stop_this_tenants_settings(tenants_env, tmp_path):
    """Only the DAG files and a tenant's settings read the file leniently; load_tenants() stays strict."""
    tenants_env.write_text("tenants:\n  - name: default\n  - name: acme\n    reconcile_schedule: '0 2 * * 0'\n")
    assert load_settings().tenant == "default"
    with pytest.raises(TenantsFileError, match=r"tenant 'acme' \(entry 2\): reconcile_schedule"):
        load_settings("acme")
    with pytest.raises(TenantsFileError, match="once-a-day"):
        load_tenants()


@pytest.mark.parametrize(
    "entries",
    [
        # acme's own URL is the default tenant's state
        "  - name: acme\n    state_url: sqlite:///{tmp}/data/state.db\n",
        # two tenants naming one database
        "  - name: acme\n    state_url: sqlite:///{tmp}/other.db\n  - name: globex\n    state_url: sqlite:///{tmp}/x/../other.db\n",
        # the default tenant moved onto acme's derived file
        None,
    ],
)
def test_two_tenants_on_one_state_are_refused(tenants_env, tmp_path, entries):
    if entries is None:
        text = f"tenants:\n  - name: default\n    state_url: sqlite:///{tmp_path}/data/state__acme.db\n  - name: acme\n"
    else:
        text = "tenants:\n  - name: default\n" + entries.format(tmp=tmp_path)
    tenants_env.write_text(text)
    with pytest.raises(TenantsFileError, match=r"resolve to the same state"):
        load_tenants()


def test_two_tenants_on_one_postgres_schema_are_refused_and_on_their_own_schemas_are_not(tenants_env, monkeypatch):
    url = "postgresql+psycopg2://postgres@db.example:5432/sync"
    monkeypatch.setenv("GHL_S4S_STATE_URL", url)
    tenants_env.write_text("tenants:\n  - name: default\n  - name: acme\n  - name: globex\n")
    assert len(load_tenants()) == 3  # schemas ghl_s4s__acme, ghl_s4s__globex and the URL's own
    # The same database spelled otherwise (another login, host name, the port left out): a URL
    # cannot tell, so a tenant on a server database keeps its own schema with its own URL too.
    for same in (
        url.replace("postgres@", "other:pw@"),
        url.replace(":5432", ""),
        "postgresql://postgres@db.example/sync?options=-csearch_path%3Dpublic",
    ):
        tenants_env.write_text(f"tenants:\n  - name: default\n  - name: acme\n    state_url: {same}\n")
        assert len(load_tenants()) == 2
        assert (load_settings("acme").state_url, load_settings("acme").state_schema) == (same, "ghl_s4s__acme")
        assert load_settings().state_schema is None


def test_a_named_tenants_file_that_is_missing_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GHL_S4S_TENANTS_FILE", str(tmp_path / "tenants.yml"))
    message = r"tenants.yml: GHL_S4S_TENANTS_FILE names this file, and it does not exist"
    with pytest.raises(TenantsFileError, match=message):
        load_tenants()
    monkeypatch.delenv("GHL_S4S_TENANTS_FILE")
    monkeypatch.setenv("GHL_S4S_INCLUDE_DIR", str(tmp_path))  # the default path may be absent
    assert load_tenants() == [Tenant.make("default")]


def test_the_file_is_read_once_per_version(tenants_env, monkeypatch):
    """Each DAG file of a parse (and each task's settings) asks; the file is read only when it changed."""
    import os

    reads = count_reads(monkeypatch, tenants_env)
    for _ in range(5):
        load_tenants()
        load_settings("acme")
    assert len(reads) == 1
    tenants_env.write_text("tenants:\n  - name: default\n  - name: acme\n  - name: globex\n")
    assert [t.name for t in load_tenants()] == ["default", "acme", "globex"]
    stat = tenants_env.stat()
    tenants_env.write_text("tenants:\n  - name: default\n  - name: initech\n")  # same size: mtime tells
    os.utime(tenants_env, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert [t.name for t in load_tenants()] == ["default", "initech"]
    assert len(reads) == 3


def test_a_tenants_customers_event_counts_its_own_run(tenants_env):
    """Both tenants' */30 schedules give one run id: the event of acme's load counts acme's quarantine."""
    from airflow.sdk.execution_time.context import OutletEventAccessors
    from ghl_shift4shop import observability
    from ghl_shift4shop.sync import state_store

    run_id = "scheduled__2026-11-29T19:00:00+00:00"
    state_store(load_settings("acme")).add_stats(run_id, "validate_00001", {"quarantined": 3})
    state_store(load_settings("default")).add_stats(run_id, "validate_00001", {"quarantined": 7})
    events = OutletEventAccessors()  # what the load task's context holds
    extra = observability.record_sync_load(events, {"created": 1}, run_id, "shift4shop_acme", "acme")
    assert (extra["quarantined"], extra["created"], extra["connection"]) == (3, 1, "shift4shop_acme")
    assert events[observability.customers_asset("shift4shop_acme")].extra == extra
    assert observability.sync_load_counts({}, run_id)["quarantined"] == 7  # the default tenant's own


def test_another_tenants_bad_schedule_does_not_stop_this_tenants_store_check(tmp_path, monkeypatch):
    """The first task's store check reads the file leniently, as the DAG files and settings do."""
    from ghl_shift4shop.preflight import SharedStoreError, check_own_store

    path = write(
        tmp_path,
        "tenants:\n  - name: default\n  - name: acme\n    reconcile_schedule: '0 2,14 * * *'\n  - name: globex\n",
    )
    monkeypatch.setenv("GHL_S4S_TENANTS_FILE", str(path))
    store = {"conn_type": "http", "host": "http://127.0.0.1:1", "extra": {"secure_url": "https://a.example"}}
    monkeypatch.setenv("AIRFLOW_CONN_SHIFT4SHOP_DEFAULT", json.dumps(store))
    monkeypatch.setenv("AIRFLOW_CONN_SHIFT4SHOP_ACME", json.dumps({**store, "extra": {"secure_url": "b.example"}}))
    monkeypatch.setenv("AIRFLOW_CONN_SHIFT4SHOP_GLOBEX", json.dumps({**store, "extra": {"secure_url": "A.example/"}}))
    with pytest.raises(SharedStoreError, match="'default'.*'globex'"):
        check_own_store(None)  # acme's bad entry does not hide globex sharing default's store
    with pytest.raises(TenantsFileError, match="once-a-day"):
        check_own_store("acme")  # acme's own entry stops acme


def _open_state(url: str, schema: str, barrier, errors) -> None:
    from ghl_shift4shop.state import StateStore

    barrier.wait()
    try:
        StateStore(url, schema=schema).engine.dispose()
    except Exception as exc:  # what the parent reports
        errors.put(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")


def test_a_new_tenants_first_tasks_make_its_schema_side_by_side_without_failing():
    """Six processes open a tenant's state whose Postgres schema does not exist yet, all at once."""
    import multiprocessing

    import sqlalchemy as sa
    from ghl_shift4shop import state

    from tests.builders import postgres_schema

    for eng, url, base in postgres_schema(also_drop=("{schema}_new",)):
        ctx = multiprocessing.get_context("spawn")
        barrier, errors = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_open_state, args=(url, f"{base}_new", barrier, errors)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        failures = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
        assert failures == [] and [p.exitcode for p in procs] == [0] * 6, failures
        with eng.connect() as conn:
            made = conn.execute(
                sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": f"{base}_new"},
            ).scalars()
        assert set(made) == {t.name for t in vars(state).values() if isinstance(t, sa.Table)}


def test_two_tenants_on_one_oauth_app_and_location_are_stopped_before_any_call(tmp_path, monkeypatch):
    """GHL refresh tokens are single use: two tenants each keeping one chain's pair lock each other out."""
    from ghl_shift4shop import reconcile, sync
    from ghl_shift4shop.preflight import SharedOAuthError, check_tenant_alone

    path = write(tmp_path, "tenants:\n  - name: default\n  - name: acme\n  - name: globex\n  - name: initech\n")
    monkeypatch.setenv("GHL_S4S_TENANTS_FILE", str(path))
    monkeypatch.setenv("GHL_S4S_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GHL_S4S_STATE_URL", f"sqlite:///{tmp_path / 'data' / 'state.db'}")
    oauth = {"location_id": "loc1", "client_id": "app-1", "client_secret": "s3cret", "refresh_token": "r"}
    ghl = {"conn_type": "http", "host": "http://127.0.0.1:1"}
    conns = {
        "GHL_DEFAULT": oauth,
        "GHL_ACME": {**oauth, "refresh_token": "another install's"},  # same app, same location
        "GHL_GLOBEX": {"location_id": "loc1"},  # a Private Integration token on the same location
        "GHL_INITECH": {**oauth, "location_id": "loc2"},  # same app, another location
    }
    for name, extra in conns.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{name}", json.dumps({**ghl, "extra": extra}))
        tenant = name.removeprefix("GHL_").lower()
        store = {"conn_type": "http", "host": "http://127.0.0.1:1", "extra": {"secure_url": f"{tenant}.example"}}
        monkeypatch.setenv(f"AIRFLOW_CONN_SHIFT4SHOP_{tenant.upper()}", json.dumps(store))
    for tenant in ("globex", "initech"):
        check_tenant_alone(tenant)
    # Both first tasks stop (failed for good: a retry would find the same), before the state is
    # opened or a request is made.
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match=r"SharedOAuthError: tenants 'default' .*'acme' .*location 'loc1'"):
        sync.plan_window("manual__1", "manual", None, {}, tenant="default")
    with pytest.raises(AirflowFailException, match=r"SharedOAuthError: tenants 'acme' .*'default' .*location") as exc:
        reconcile.scan("manual__1", dry_run=True, tenant="acme")
    assert "s3cret" not in str(exc.value)
    assert not (tmp_path / "data").exists()
    with pytest.raises(SharedOAuthError):
        check_tenant_alone("default")


def test_an_unquoted_finish_time_is_read_as_the_time_it_says(tmp_path):
    """YAML 1.1 reads ``16:30`` unquoted as the integer 990; that must not fail every tenant's DAGs."""
    path = write(tmp_path, "tenants:\n  - name: default\n  - name: acme\n    reconcile_finish_by: 16:30\n")
    assert [t.reconcile_finish_by for t in load_tenants(path)] == [None, "16:30"]
    path = write(tmp_path, "tenants:\n  - name: default\n  - name: acme\n    reconcile_finish_by: 6:05\n")
    assert load_tenants(path)[1].reconcile_finish_by == "06:05"
    # Other unquoted typos stop that tenant only, as a bad schedule does.
    for typo in ("16.30", "24:00"):
        path = write(tmp_path, f"tenants:\n  - name: default\n  - name: acme\n    reconcile_finish_by: {typo}\n")
        default, acme = load_tenants(path, strict=False)
        assert default.problem is None and "reconcile_finish_by" in acme.problem and "HH:MM" in acme.problem
