"""OAuth 2.0 in the GHL simulator (ghl-api.md §1.2, §1.3, §9.3), over real HTTP.

``POST /oauth/token`` is form-encoded and needs no bearer token or Version header. Each refresh
rotates the refresh token; identical refreshes within the reuse window (30 s, shortened here through
``refresh_reuse_window_s``) get the same pair; access tokens expire after ``access_token_ttl_s``
and then answer 401 "Invalid JWT" like any unknown token; PITs never expire.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from sandbox.common import ServerThread
from sandbox.ghl import ALL_SCOPES, GhlState, create_app

LOC = "ve9EPM428h8vShlRW1KT"
OTHER_LOC = "otherLoc000000000001"
PIT = "pit-oauth-1111-2222-3333-444444444444"
CLIENT, SECRET = "app-client-1", "app-secret-1"
VERSION = "2021-07-28"


class Sim:
    def __init__(self, state: GhlState, url: str):
        self.state = state
        self.url = url

    def token(self, **form: str) -> requests.Response:
        return requests.post(f"{self.url}/oauth/token", data=form, timeout=5)

    def refresh(self, refresh_token: str, *, client_id: str = CLIENT, secret: str = SECRET) -> requests.Response:
        return self.token(
            client_id=client_id, client_secret=secret, grant_type="refresh_token", refresh_token=refresh_token
        )

    def api(self, access_token: str, method: str = "GET", path: str = f"/contacts/?locationId={LOC}", **kw: Any):
        headers = {"Authorization": f"Bearer {access_token}", "Version": VERSION}
        return requests.request(method, self.url + path, headers=headers, timeout=5, **kw)


@pytest.fixture(scope="module")
def server() -> Iterator[Sim]:
    state = GhlState(LOC, {PIT: {}}, rate_limit=False)
    thread = ServerThread(create_app(state)).start()
    yield Sim(state, thread.url)
    thread.stop()


@pytest.fixture
def sim(server: Sim) -> Sim:
    server.state.reset()
    server.state.configure(rate_limit=False, access_token_ttl_s=86_399, refresh_reuse_window_s=30)
    server.state.request_log.clear()
    return server


def test_refresh_issues_a_working_access_token_and_the_documented_body(sim: Sim) -> None:
    refresh = sim.state.add_oauth_client(CLIENT, SECRET, location_id=LOC)
    r = sim.refresh(refresh)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
        "userType",
        "locationId",
        "companyId",
        "userId",
    }
    assert (body["token_type"], body["expires_in"], body["userType"], body["locationId"]) == (
        "Bearer",
        86399,
        "Location",
        LOC,
    )
    assert set(body["scope"].split()) == ALL_SCOPES
    assert body["refresh_token"] != refresh
    assert r.headers["x-trace-id"]
    assert sim.api(body["access_token"]).status_code == 200


def test_refresh_rotates_and_the_old_refresh_token_dies_after_the_reuse_window(sim: Sim) -> None:
    sim.state.configure(refresh_reuse_window_s=0.3)
    r0 = sim.state.add_oauth_client(CLIENT, SECRET, location_id=LOC)
    first = sim.refresh(r0).json()
    again = sim.refresh(r0).json()  # identical refresh inside the window: the same pair
    assert (again["access_token"], again["refresh_token"]) == (first["access_token"], first["refresh_token"])
    time.sleep(0.35)
    stale = sim.refresh(r0)
    assert stale.status_code == 400
    assert stale.json() == {
        "statusCode": 400,
        "message": "Invalid refresh token",
        "error": "invalid_grant",
        "error_description": "Invalid refresh token",
    }
    second = sim.refresh(first["refresh_token"])  # the rotated one works, once more rotating
    assert second.status_code == 200
    assert second.json()["refresh_token"] not in (r0, first["refresh_token"])
    # Both access tokens stay valid until they expire: rotation revokes refresh tokens only.
    assert sim.api(first["access_token"]).status_code == 200
    assert sim.api(second.json()["access_token"]).status_code == 200


def test_concurrent_identical_refreshes_within_30_s_all_get_the_same_pair(sim: Sim) -> None:
    r0 = sim.state.add_oauth_client(CLIENT, SECRET, location_id=LOC)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: sim.refresh(r0), range(6)))
    assert {r.status_code for r in answers} == {200}
    pairs = {(r.json()["access_token"], r.json()["refresh_token"]) for r in answers}
    assert len(pairs) == 1
    assert all(0 < r.json()["expires_in"] <= 86399 for r in answers)


def test_reuse_needs_the_identical_triple(sim: Sim) -> None:
    r0 = sim.state.add_oauth_client(CLIENT, SECRET, location_id=LOC)
    assert sim.refresh(r0).status_code == 200
    assert sim.refresh(r0, secret="wrong").status_code == 401  # client auth comes first
    sim.state.add_oauth_client("app-client-2", "secret-2", location_id=LOC)
    other = sim.refresh(r0, client_id="app-client-2", secret="secret-2")
    assert other.status_code == 400 and other.json()["error"] == "invalid_grant"  # issued to another client


def test_expired_access_token_is_invalid_jwt_until_refreshed(sim: Sim) -> None:
    sim.state.configure(access_token_ttl_s=0.3)
    r0 = sim.state.add_oauth_client(CLIENT, SECRET, location_id=LOC)
    body = sim.refresh(r0).json()
    assert body["expires_in"] == 1  # whole seconds, rounded up
    assert sim.api(body["access_token"]).status_code == 200
    time.sleep(0.35)
    expired = sim.api(body["access_token"])
    assert (expired.status_code, expired.json()) == (401, {"statusCode": 401, "message": "Invalid JWT"})
    sim.state.configure(access_token_ttl_s=86_399)
    fresh = sim.refresh(body["refresh_token"]).json()
    assert sim.api(fresh["access_token"]).status_code == 200


def test_expire_access_tokens_ends_every_oauth_token_but_no_pit(sim: Sim) -> None:
    r0 = sim.state.add_oauth_client(CLIENT, SECRET, location_id=LOC)
    access = sim.refresh(r0).json()["access_token"]
    assert sim.state.expire_access_tokens() >= 1
    assert sim.api(access).json() == {"statusCode": 401, "message": "Invalid JWT"}
    assert sim.api(PIT).status_code == 200  # PITs never expire
    assert requests.post(f"{sim.url}/_sim/oauth/expire", timeout=5).json() == {"expired": 0}
    assert sim.api(PIT).status_code == 200


def test_bad_client_credentials_are_401_invalid_client(sim: Sim) -> None:
    r0 = sim.state.add_oauth_client(CLIENT, SECRET, location_id=LOC)
    for client_id, secret in ((CLIENT, "not-the-secret"), ("no-such-app", SECRET)):
        r = sim.refresh(r0, client_id=client_id, secret=secret)
        assert r.status_code == 401
        assert r.json() == {
            "statusCode": 401,
            "message": "Invalid client credentials",
            "error": "invalid_client",
            "error_description": "Invalid client credentials",
        }
    assert sim.refresh(r0).status_code == 200  # a refused call does not spend the refresh token


def test_unknown_refresh_token_and_malformed_requests(sim: Sim) -> None:
    sim.state.add_oauth_client(CLIENT, SECRET, location_id=LOC)
    assert sim.refresh("not-a-refresh-token").json()["error"] == "invalid_grant"
    missing = sim.token(grant_type="refresh_token")
    assert missing.status_code == 422
    assert missing.json()["message"] == [
        "client_id should not be empty",
        "client_secret should not be empty",
        "refresh_token should not be empty",
    ]
    # JSON is not the endpoint's media type: every field is missing.
    as_json = requests.post(
        f"{sim.url}/oauth/token",
        json={"client_id": CLIENT, "client_secret": SECRET, "grant_type": "refresh_token", "refresh_token": "x"},
        timeout=5,
    )
    assert as_json.status_code == 422
    unsupported = sim.token(client_id=CLIENT, client_secret=SECRET, grant_type="client_credentials")
    assert (unsupported.status_code, unsupported.json()["error"]) == (400, "unsupported_grant_type")
    bad_type = sim.token(client_id=CLIENT, client_secret=SECRET, grant_type="password")
    assert bad_type.status_code == 422


def test_authorization_code_is_exchanged_once(sim: Sim) -> None:
    sim.state.add_oauth_client(CLIENT, SECRET, location_id=LOC)
    code = sim.state.issue_auth_code(CLIENT, redirect_uri="https://app.example/cb")
    form = {"client_id": CLIENT, "client_secret": SECRET, "grant_type": "authorization_code", "code": code}
    assert sim.token(**form).status_code == 400  # redirect_uri must match the authorization request
    ok = sim.token(**form, redirect_uri="https://app.example/cb")
    assert ok.status_code == 200
    assert sim.api(ok.json()["access_token"]).status_code == 200
    assert sim.refresh(ok.json()["refresh_token"]).status_code == 200
    reused = sim.token(**form, redirect_uri="https://app.example/cb")
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
    http_code = requests.post(f"{sim.url}/_sim/oauth/codes", json={"client_id": CLIENT}, timeout=5).json()["code"]
    assert sim.token(**{**form, "code": http_code}).status_code == 200


def test_issued_tokens_carry_the_clients_scopes_and_location(sim: Sim) -> None:
    r0 = sim.state.add_oauth_client(CLIENT, SECRET, location_id=LOC, scopes=["contacts.readonly"])
    body = sim.refresh(r0).json()
    assert body["scope"] == "contacts.readonly"
    access = body["access_token"]
    assert sim.api(access).status_code == 200
    write = sim.api(access, "POST", "/contacts/", json={"locationId": LOC, "firstName": "A"})
    assert write.json() == {"statusCode": 401, "message": "The token is not authorized for this scope."}
    other = sim.api(access, path=f"/contacts/?locationId={OTHER_LOC}")
    assert other.json() == {"statusCode": 403, "message": "The token does not have access to this location."}
    # The same app installed in another location gets that location's token.
    r_other = sim.state.add_oauth_client(CLIENT, SECRET, location_id=OTHER_LOC, scopes=["contacts.readonly"])
    other_body = sim.refresh(r_other).json()
    assert other_body["locationId"] == OTHER_LOC and other_body["companyId"] == body["companyId"]
    assert sim.api(other_body["access_token"], path=f"/contacts/?locationId={OTHER_LOC}").status_code == 200


def test_oauth_tokens_of_one_app_share_its_rate_limit_bucket(sim: Sim) -> None:
    sim.state.configure(rate_limit=True)
    r0 = sim.state.add_oauth_client(CLIENT, SECRET, location_id=LOC)
    first = sim.refresh(r0).json()
    second = sim.refresh(first["refresh_token"]).json()
    assert "X-RateLimit-Remaining" not in sim.refresh(second["refresh_token"]).headers  # not an API call
    remaining = [
        sim.api(tok).headers["X-RateLimit-Remaining"] for tok in (first["access_token"], second["access_token"])
    ]
    assert remaining == ["99", "98"]


def test_token_calls_are_logged_without_secrets_and_reset_keeps_clients(sim: Sim) -> None:
    r0 = sim.state.add_oauth_client(CLIENT, SECRET, location_id=LOC)
    body = sim.refresh(r0).json()
    entry = sim.state.request_log.snapshot()[-1]
    assert (entry["method"], entry["path"], entry["status"], entry["query"]) == ("POST", "/oauth/token", 200, "")
    assert SECRET not in str(entry) and r0 not in str(entry)
    sim.state.reset()
    assert sim.refresh(body["refresh_token"]).status_code == 200
    assert sim.api(body["access_token"]).status_code == 200


def test_admin_endpoint_registers_a_client(sim: Sim) -> None:
    r = requests.post(
        f"{sim.url}/_sim/oauth/clients",
        json={"client_id": "app-http", "client_secret": "s", "location_id": LOC, "scopes": "contacts.readonly"},
        timeout=5,
    )
    assert r.status_code == 201 and r.json()["client_id"] == "app-http"
    body = sim.refresh(r.json()["refresh_token"], client_id="app-http", secret="s").json()
    assert body["scope"] == "contacts.readonly"
    bad = requests.post(f"{sim.url}/_sim/oauth/clients", json={"client_id": "x"}, timeout=5)
    assert bad.status_code == 400
