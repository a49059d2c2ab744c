"""OAuth mode: refresh on "Invalid JWT", rotated refresh tokens stored at once (encrypted), and
scope errors reported, not retried."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sandbox.seed import generate_contacts
from tests.conftest import LOCATION_ID
from tests.e2e.test_sync_dag import run, summary_of

pytestmark = pytest.mark.usefixtures("airflow_db")
CLIENT_ID = "64f0c0ffee0123456789abcd-lmno1234"
CLIENT_SECRET = "cs-9d7e2b41-5a6c-4f0e-8b3d-2c1a0f9e8d7c"


@pytest.fixture
def oauth(sims, monkeypatch):
    refresh = sims.ghl_state.add_oauth_client(CLIENT_ID, CLIENT_SECRET, location_id=LOCATION_ID)
    conn = {
        "conn_type": "http",
        "host": sims.ghl.url,
        "extra": {
            "location_id": LOCATION_ID,
            "version": "2021-07-28",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": refresh,
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_GHL_DEFAULT", json.dumps(conn))
    return refresh


def token_calls(sims) -> list[dict]:
    return [r for r in sims.ghl_requests("/oauth/token")]


def test_refresh_on_expiry_rotates_and_survives_a_failed_run(sims, sync_dag, oauth, monkeypatch, tmp_path):
    from ghl_shift4shop.sync import state_store

    contacts = generate_contacts(50, seed=61, dirty_share=0.0, location_id=LOCATION_ID)
    sims.ghl_state.load_contacts(contacts)
    dr = run(sync_dag)
    assert dr.state == "success" and summary_of(dr)["created"] == 50
    assert len(token_calls(sims)) == 1  # no access token yet: one refresh at first use

    # The day passes: every access token expires. The next call gets 401 "Invalid JWT",
    # refreshes once and retries once.
    sims.ghl_state.expire_access_tokens()
    sims.clear_logs()
    sims.ghl_state.load_contacts([{**contacts[0], "city": "Oslo", "dateUpdated": "2099-01-01T00:00:00.000Z"}])
    # The store fails this run after GHL has been read: the rotated token must already be saved.
    good_s4s = sims.connections_env()["AIRFLOW_CONN_SHIFT4SHOP_DEFAULT"]
    monkeypatch.setenv("AIRFLOW_CONN_SHIFT4SHOP_DEFAULT", good_s4s.replace("pk-test", "pk-nope"))
    dr = run(sync_dag)
    assert dr.state == "failed"
    assert len(token_calls(sims)) == 1
    assert [r["status"] for r in sims.ghl_requests("/contacts/search")][:2] == [401, 200]

    # The connection still holds the first refresh token, which GHL has invalidated. The stored,
    # rotated one is used: no lock-out.
    monkeypatch.setenv("AIRFLOW_CONN_SHIFT4SHOP_DEFAULT", good_s4s)
    sims.ghl_state.expire_access_tokens()
    sims.clear_logs()
    dr = run(sync_dag)
    assert dr.state == "success" and summary_of(dr)["updated"] == 1
    assert [r["status"] for r in token_calls(sims)] == [200]

    # Stored encrypted: neither the secret nor any token appears in the state database file.
    db = state_store().engine.url.database
    raw = Path(db).read_bytes()
    assert oauth.encode() not in raw and CLIENT_SECRET.encode() not in raw


def test_scope_error_is_reported_not_retried(sims, sync_dag, monkeypatch):
    from tests.conftest import GHL_TOKEN

    sims.ghl_state.load_contacts(generate_contacts(5, seed=62, dirty_share=0.0, location_id=LOCATION_ID))
    sims.ghl_state.add_token(GHL_TOKEN + "-narrow", location_id=LOCATION_ID, scopes=["calendars.readonly"])
    conn = json.loads(sims.connections_env()["AIRFLOW_CONN_GHL_DEFAULT"])
    conn["password"] = GHL_TOKEN + "-narrow"
    monkeypatch.setenv("AIRFLOW_CONN_GHL_DEFAULT", json.dumps(conn))
    dr = run(sync_dag)
    assert dr.state == "failed"
    searches = sims.ghl_requests("/contacts/search")
    assert [r["status"] for r in searches] == [401]  # once: no retry, no refresh


def test_a_reauthorised_refresh_token_in_the_connection_wins_over_the_revoked_stored_one(
    sims, sync_dag, oauth, monkeypatch
):
    sims.ghl_state.load_contacts(generate_contacts(5, seed=63, dirty_share=0.0, location_id=LOCATION_ID))
    assert run(sync_dag).state == "success"  # the rotated refresh token is now stored

    # The install's refresh tokens are revoked (app uninstalled, or a password reset). The run
    # fails with a message saying to re-authorise.
    sims.ghl_state.revoke_refresh_tokens(CLIENT_ID)
    sims.ghl_state.expire_access_tokens()
    dr = run(sync_dag)
    assert dr.state == "failed"

    # The operator re-authorises and puts the new refresh token in the connection: it wins over the
    # stored (revoked) one, with no command to run.
    fresh = sims.ghl_state.add_oauth_client(CLIENT_ID, CLIENT_SECRET, location_id=LOCATION_ID)
    conn = json.loads(os.environ["AIRFLOW_CONN_GHL_DEFAULT"])
    conn["extra"]["refresh_token"] = fresh
    monkeypatch.setenv("AIRFLOW_CONN_GHL_DEFAULT", json.dumps(conn))
    sims.clear_logs()
    dr = run(sync_dag)
    assert dr.state == "success"
    assert [r["status"] for r in token_calls(sims)] == [200]

    # Later runs use the chain that grew from the new token (stored again, rotated).
    sims.ghl_state.expire_access_tokens()
    sims.clear_logs()
    assert run(sync_dag).state == "success"
    assert [r["status"] for r in token_calls(sims)] == [200]


def test_oauth_forget_clears_the_stored_tokens(sims, sync_dag, oauth, capsys):
    from ghl_shift4shop.__main__ import main
    from ghl_shift4shop.ghl.oauth import oauth_tokens
    from ghl_shift4shop.sync import state_store

    sims.ghl_state.load_contacts(generate_contacts(2, seed=64, dirty_share=0.0, location_id=LOCATION_ID))
    assert run(sync_dag).state == "success"
    with state_store().begin() as conn:
        assert conn.execute(oauth_tokens.select()).all()
    assert main(["oauth", "forget", "--client", CLIENT_ID]) == 0
    assert "forgot 1 stored token pair" in capsys.readouterr().out
    with state_store().begin() as conn:
        assert conn.execute(oauth_tokens.select()).all() == []


@pytest.mark.profiles("lenient")
def test_a_tenants_oauth_tokens_are_kept_in_that_tenants_state(sims, tmp_path, monkeypatch):
    """Tenant acme signs in through its own connection; the pair it is given lands in acme's state only."""
    from ghl_shift4shop.ghl.oauth import oauth_tokens
    from ghl_shift4shop.settings import load_settings
    from ghl_shift4shop.sync import ghl_hook, state_store

    refresh = sims.ghl_state.add_oauth_client(CLIENT_ID, CLIENT_SECRET, location_id=LOCATION_ID)
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text("tenants:\n  - name: default\n  - name: acme\n")
    monkeypatch.setenv("GHL_S4S_TENANTS_FILE", str(tenants))
    extra = {"location_id": LOCATION_ID, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    extra["refresh_token"] = refresh
    monkeypatch.setenv("AIRFLOW_CONN_GHL_ACME", json.dumps({"conn_type": "http", "host": sims.ghl.url, "extra": extra}))
    acme = load_settings("acme")
    assert ghl_hook(acme).location_timezone()  # a real call: the first one refreshes
    assert len(token_calls(sims)) == 1
    with state_store(acme).begin() as conn:
        assert [r.account for r in conn.execute(oauth_tokens.select())] == [f"{CLIENT_ID}:{LOCATION_ID}"]
    default = state_store(load_settings())
    with default.begin() as conn:
        oauth_tokens.create(conn, checkfirst=True)
        assert conn.execute(oauth_tokens.select()).all() == []


@pytest.fixture
def pg_schemas():
    """A throw-away Postgres schema as the state URL's own (the default tenant's) and the tenant's schema name."""
    from tests.builders import postgres_schema

    for eng, url, base in postgres_schema(also_drop=("ghl_s4s__{schema}",)):
        yield eng, url, base, f"ghl_s4s__{base}"


LEGACY_TOKENS = (
    "CREATE TABLE {}.oauth_tokens (account varchar(255) primary key, access_token text, "
    "refresh_token text not null, expires_at timestamptz, updated_at timestamptz not null)"
)


def _origin_schemas(eng, *schemas) -> set[str]:
    import sqlalchemy as sa

    q = sa.text(
        "SELECT table_schema FROM information_schema.columns WHERE table_name = 'oauth_tokens' "
        "AND column_name = 'origin' AND table_schema = ANY(:s)"
    )
    with eng.connect() as c:
        return set(c.execute(q, {"s": list(schemas)}).scalars())


@pytest.mark.parametrize("legacy", ["none", "default", "tenant"])
def test_a_tenants_token_store_on_postgres_lives_in_its_own_schema(pg_schemas, legacy):
    """The default tenant's schema with no oauth_tokens (it never used OAuth), or with a table from before
    ``origin``; or the tenant's own table from before ``origin``: the tenant's token store looks up and
    alters only its own table, and the default tenant's is left as it was."""
    import sqlalchemy as sa
    from ghl_shift4shop.ghl.oauth import TokenStore
    from ghl_shift4shop.state import StateStore

    eng, url, base, schema = pg_schemas
    if legacy != "none":
        target = base if legacy == "default" else schema
        with eng.begin() as c:
            c.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {target}"))
            c.execute(sa.text(LEGACY_TOKENS.format(target)))
    acme = StateStore(url, schema)
    store = TokenStore(acme, {"client_id": "c", "client_secret": "s", "refresh_token": "r", "location_id": "L"})
    store.save("access-1", "refresh-2", 3600)  # written with its origin, in the tenant's schema
    assert (store.refresh_token(), store.access_token()) == ("refresh-2", "access-1")
    assert _origin_schemas(eng, base, schema) == {schema}
    acme.engine.dispose()
