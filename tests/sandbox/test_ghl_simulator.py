"""The GHL (HighLevel API v2) simulator reproduces the documented API rules over real HTTP.

One simulator runs for the module; every test starts from an emptied state (fixture ``sim``) with
the rate limiter off and no index lag (tests of those switch them on), so each test reads like the
behaviour it pins. See ``sandbox/ghl/BEHAVIOR.md`` and ``/work/shared/specs/ghl-api.md`` §9.
"""

from __future__ import annotations

import json
import re
import string
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers
import pytest
import requests

from sandbox.common import ServerThread
from sandbox.ghl import ALL_SCOPES, GhlState, create_app
from sandbox.ghl.state import CONFIG_KEYS, ApiError, iso_ms, parse_ms
from sandbox.profiles import PROFILES, apply_profile
from sandbox.seed import CUSTOM_FIELD_IDS, DIRTY_KINDS, TAG_VOCABULARY, generate_contacts

LOC = "ve9EPM428h8vShlRW1KT"
OTHER_LOC = "otherLoc000000000001"
TOKEN = "pit-11111111-2222-3333-4444-555555555555"
TOKEN_B = "pit-bbbbbbbb-2222-3333-4444-555555555555"  # same location, another client
READONLY = "pit-readonly-2222-3333-4444-555555555555"
WRITEONLY = "pit-writeonly-222-3333-4444-555555555555"
OTHER_TOKEN = "pit-otherloc-2222-3333-4444-555555555555"
VERSION = "2021-07-28"
RATE_HEADERS = (
    "X-RateLimit-Limit-Daily",
    "X-RateLimit-Daily-Remaining",
    "X-RateLimit-Interval-Milliseconds",
    "X-RateLimit-Max",
    "X-RateLimit-Remaining",
)
BASE_CONFIG = {
    "rate_limit": False,
    "burst_max": 100,
    "burst_window_ms": 10_000,
    "daily_limit": 200_000,
    "send_retry_after": True,
    "index_lag_s": 0.0,
    "latency_s": 0.0,
    "allow_duplicates": False,
    "search_hide_share": 0.0,
    "search_hide_keeps_total": False,
}
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
T0 = 1_735_689_600_000  # 2025-01-01T00:00:00.000Z


def contact(i: int, *, added: int | None = None, updated: int | None = None, **extra: Any) -> dict:
    """A cheap read-shape contact (Faker is too slow for 100k rows in a test)."""
    added = T0 + i * 1000 if added is None else added
    doc = {
        "id": f"c{i:019d}",
        "locationId": LOC,
        "firstName": f"First{i % 97}",
        "lastName": f"Last{i % 13}",
        "email": f"user{i}@example.com",
        "phone": f"+1415555{i % 10_000:04d}",
        "country": "US",
        "type": "lead",
        "source": "public api",
        "tags": [],
        "customFields": [],
        "dnd": False,
        "dateAdded": iso_ms(added),
        "dateUpdated": iso_ms(updated if updated is not None else added),
    }
    doc.update(extra)
    return doc


class Sim:
    """The running simulator plus a thin client, so tests read as API calls."""

    def __init__(self, state: GhlState, url: str):
        self.state = state
        self.url = url
        self.http = requests.Session()

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = TOKEN,
        version: str | None = VERSION,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> requests.Response:
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if version is not None:
            h["Version"] = version
        return self.http.request(method, self.url + path, headers=h, timeout=30, **kw)

    def search(self, token: str = TOKEN, **body: Any) -> requests.Response:
        body.setdefault("locationId", LOC)
        body.setdefault("pageLimit", 20)
        return self.call("POST", "/contacts/search", token=token, json=body)

    def create(self, **body: Any) -> requests.Response:
        body.setdefault("locationId", LOC)
        return self.call("POST", "/contacts/", json=body)

    def search_all(self, page_limit: int, **body: Any) -> list[dict]:
        """Page through a search with searchAfter; returns every contact seen, in order."""
        seen: list[dict] = []
        cursor = None
        while True:
            extra = {"searchAfter": cursor} if cursor is not None else {}
            r = self.search(pageLimit=page_limit, **body, **extra)
            assert r.status_code == 200, r.text
            page = r.json()["contacts"]
            seen.extend(page)
            if len(page) < page_limit:
                return seen
            cursor = page[-1]["searchAfter"]


@pytest.fixture(scope="module")
def server():
    state = GhlState(
        location_id=LOC,
        tokens={
            TOKEN: {"location_id": LOC, "scopes": ALL_SCOPES},
            TOKEN_B: {"location_id": LOC},
            READONLY: {"location_id": LOC, "scopes": ["contacts.readonly"]},
            WRITEONLY: {"location_id": LOC, "scopes": ["contacts.write"]},
            OTHER_TOKEN: {"location_id": OTHER_LOC},
        },
        rate_limit=False,
    )
    srv = ServerThread(create_app(state)).start()
    yield state, srv
    srv.stop()


@pytest.fixture
def sim(server) -> Sim:
    state, srv = server
    state.reset()
    apply_profile("lenient", ghl=state)  # tests of the strict readings switch them on
    state.configure(**BASE_CONFIG)
    state.request_log.clear()
    return Sim(state, srv.url)


def assert_no_fastapi_shape(body: Any) -> None:
    assert not (isinstance(body, dict) and "detail" in body), body


# --------------------------------------------------------------------------------------------------
# auth, version, scope, location


def test_missing_or_unknown_token_is_invalid_jwt(sim: Sim):
    for token in (None, "pit-not-a-real-token"):
        r = sim.call("GET", f"/contacts/?locationId={LOC}", token=token)
        assert r.status_code == 401
        assert r.json() == {"statusCode": 401, "message": "Invalid JWT"}
    r = sim.call("GET", f"/contacts/?locationId={LOC}", token=None, headers={"Authorization": f"Basic {TOKEN}"})
    assert r.status_code == 401


def test_expired_oauth_token_is_invalid_jwt_and_live_one_works(sim: Sim):
    sim.state.add_token("oauth-expired", location_id=LOC, expires_at=time.time() - 1, subject="app-1")
    sim.state.add_token("oauth-live", location_id=LOC, expires_at=time.time() + 86_399, subject="app-1")
    assert sim.call("GET", f"/contacts/?locationId={LOC}", token="oauth-expired").json()["message"] == "Invalid JWT"
    assert sim.call("GET", f"/contacts/?locationId={LOC}", token="oauth-live").status_code == 200


def test_version_header_missing_or_invalid(sim: Sim):
    r = sim.call("GET", f"/contacts/?locationId={LOC}", version=None)
    assert (r.status_code, r.json()) == (401, {"statusCode": 401, "message": "version header was not found."})
    for bad in ("legacy-ish", "2021-07-29", ""):
        r = sim.call("GET", f"/contacts/?locationId={LOC}", version=bad)
        assert (r.status_code, r.json()["message"]) == (401, "version header is invalid")


@pytest.mark.parametrize("version", ["v3", "2023-02-21", "2021-07-28", "2021-04-15"])
def test_every_published_version_is_accepted(sim: Sim, version: str):
    assert sim.call("GET", f"/contacts/?locationId={LOC}", version=version).status_code == 200


def test_scope_is_checked_before_location(sim: Sim):
    # Read-only token creating in another location: the scope error wins.
    r = sim.call("POST", "/contacts/", token=READONLY, json={"locationId": OTHER_LOC, "email": "a@b.co"})
    assert (r.status_code, r.json()) == (
        401,
        {"statusCode": 401, "message": "The token is not authorized for this scope."},
    )
    r = sim.call("POST", "/contacts/", token=TOKEN, json={"locationId": OTHER_LOC, "email": "a@b.co"})
    assert (r.status_code, r.json()) == (
        403,
        {"statusCode": 403, "message": "The token does not have access to this location."},
    )
    # Write-only token cannot read.
    r = sim.search(token=WRITEONLY)
    assert r.status_code == 401 and r.json()["message"] == "The token is not authorized for this scope."


def test_location_checked_in_query_and_body_and_by_contact_owner(sim: Sim):
    sim.state.load_contacts([contact(1)])
    assert sim.call("GET", f"/contacts/?locationId={OTHER_LOC}").status_code == 403
    assert sim.search(locationId=OTHER_LOC).status_code == 403
    assert sim.call("GET", f"/contacts/business/b1?locationId={OTHER_LOC}").status_code == 403
    # A token of another location cannot read this location's contact by id either.
    assert sim.call("GET", f"/contacts/{contact(1)['id']}", token=OTHER_TOKEN).status_code == 403
    # ...and its own location's search is empty rather than leaking.
    r = sim.search(token=OTHER_TOKEN, locationId=OTHER_LOC)
    assert r.status_code == 200 and r.json() == {"contacts": [], "total": 0}


# --------------------------------------------------------------------------------------------------
# headers and error envelopes


def test_rate_limit_and_trace_headers_on_every_response(sim: Sim):
    sim.state.configure(rate_limit=True, burst_max=4)
    responses = [
        sim.search(),  # 200
        sim.call("GET", "/contacts/nope-not-there"),  # 400
        sim.search(pageLimit=0),  # 422
        sim.call("GET", "/definitely/not/a/route"),  # 404 (4th counted request)
        sim.search(),  # 429
        sim.call("GET", "/contacts/", token="bad"),  # 401
        sim.call("GET", "/contacts/", version=None),  # 429 still (counted before version)
    ]
    assert [r.status_code for r in responses] == [200, 400, 422, 404, 429, 401, 429]
    trace_ids = set()
    for r in responses:
        for h in RATE_HEADERS:
            assert r.headers.get(h, "").isdigit(), (r.status_code, h, dict(r.headers))
        assert r.headers["X-RateLimit-Max"] == "4"
        assert r.headers["X-RateLimit-Interval-Milliseconds"] == "10000"
        assert r.headers["X-RateLimit-Limit-Daily"] == "200000"
        trace_ids.add(r.headers["x-trace-id"])
        assert r.headers["content-type"].startswith("application/json")
        assert_no_fastapi_shape(r.json())
    assert len(trace_ids) == len(responses)


def test_unknown_route_and_method_are_nest_style_404(sim: Sim):
    r = sim.call("GET", "/x")
    assert (r.status_code, r.json()) == (404, {"statusCode": 404, "message": "Cannot GET /x"})
    r = sim.call("POST", "/contacts/abc")
    assert (r.status_code, r.json()) == (404, {"statusCode": 404, "message": "Cannot POST /contacts/abc"})
    assert sim.call("GET", "/docs").status_code == 404  # no FastAPI docs on the API host


def test_search_422_shapes(sim: Sim):
    r = sim.call("POST", "/contacts/search", json={})
    body = r.json()
    assert r.status_code == 422 and body["statusCode"] == 422 and body["error"] == "Unprocessable Entity"
    assert isinstance(body["message"], list) and all(isinstance(m, str) for m in body["message"])
    assert any("locationId" in m for m in body["message"]) and any("pageLimit" in m for m in body["message"])

    for bad in ({"pageLimit": 0}, {"pageLimit": 501}, {"pageLimit": "20"}, {"pageLimit": 2.5}, {"page": 0}):
        r = sim.search(**bad)
        assert r.status_code == 422 and isinstance(r.json()["message"], list), (bad, r.text)
    assert sim.search(pageLimit=500).status_code == 200
    assert sim.search(pageLimit=1).status_code == 200
    assert sim.search(pageLimit=20.0, page=2.0).status_code == 200  # same JSON numbers as 20 and 2

    r = sim.search(page=1, searchAfter=[T0, "c0000000000000000001"])
    assert r.status_code == 422 and any("searchAfter" in m for m in r.json()["message"])
    r = sim.search(limit=20)
    assert r.status_code == 422 and "property limit should not exist" in r.json()["message"]
    r = sim.search(sort=[{"field": "firstName", "direction": "asc"}])
    assert r.status_code == 422
    r = sim.search(sort=[{"field": "dateAdded", "direction": "up"}])
    assert r.status_code == 422
    three = [{"field": f, "direction": "asc"} for f in ("dateAdded", "email", "source")]
    assert sim.search(sort=three).status_code == 422
    r = sim.search(searchAfter=[T0])  # default sort has one field: cursor needs [value, id]
    assert r.status_code == 422
    r = sim.search(filters=[{"field": "email", "operator": "contains", "value": "x"}])
    assert r.status_code == 422  # email takes no contains (S6)
    r = sim.search(filters=[{"field": "firstName", "operator": "eq", "value": "x"}])
    assert r.status_code == 422  # plain firstName is "coming soon"
    r = sim.search(filters=[{"field": "dateUpdated", "operator": "range", "value": {"after": 1}}])
    assert r.status_code == 422
    r = sim.search(query="x" * 76)
    assert r.status_code == 422
    r = sim.call("POST", "/contacts/search", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and isinstance(r.json()["message"], str)


def test_list_and_business_422(sim: Sim):
    for path in ("/contacts/", f"/contacts/?locationId={LOC}&limit=101", f"/contacts/?locationId={LOC}&limit=abc"):
        r = sim.call("GET", path)
        assert r.status_code == 422 and isinstance(r.json()["message"], list), path
    r = sim.call("GET", "/contacts/business/b1")
    assert r.status_code == 422


# --------------------------------------------------------------------------------------------------
# search: paging, cursors, filters, sort


def test_page_paging_covers_everything_once_in_default_order(sim: Sim):
    # 1,200 contacts in 300 distinct milliseconds: ties everywhere, broken by id.
    docs = [contact(i, added=T0 + (i % 300) * 1000) for i in range(1200)]
    sim.state.load_contacts(docs)
    ids: list[str] = []
    for page in (1, 2, 3):
        r = sim.search(page=page, pageLimit=500)
        assert r.status_code == 200 and r.json()["total"] == 1200
        ids += [c["id"] for c in r.json()["contacts"]]
    assert len(ids) == len(set(ids)) == 1200
    expected = [d["id"] for d in sorted(docs, key=lambda d: (parse_ms(d["dateAdded"]), d["id"]))]
    assert ids == expected  # default sort: dateAdded asc, id asc
    assert sim.search(page=4, pageLimit=500).json()["contacts"] == []


def test_page_paging_is_refused_past_10000_and_search_after_reaches_everything(sim: Sim):
    # 10,001 contacts; 200 share each dateUpdated millisecond, so page boundaries cut through ties.
    docs = [contact(i, added=T0 - 10**9, updated=T0 + (i // 200) * 1000) for i in range(10_001)]
    sim.state.load_contacts(docs)
    assert sim.search(page=20, pageLimit=500).status_code == 200  # records 9,501..10,000
    r = sim.search(page=21, pageLimit=500)
    assert r.status_code == 422 and any("searchAfter" in m for m in r.json()["message"])
    assert sim.search(page=101, pageLimit=100).status_code == 422

    body = {
        "sort": [{"field": "dateUpdated", "direction": "asc"}],
        "filters": [{"field": "dateUpdated", "operator": "range", "value": {"gte": iso_ms(T0)}}],
    }
    seen = sim.search_all(500, **body)
    ids = [c["id"] for c in seen]
    assert len(ids) == len(set(ids)) == 10_001
    keys = [(parse_ms(c["dateUpdated"]), c["id"]) for c in seen]
    assert keys == sorted(keys)
    first = seen[0]
    assert first["searchAfter"] == [parse_ms(first["dateUpdated"]), first["id"]]
    assert isinstance(first["searchAfter"][0], int)
    assert sim.search(pageLimit=500, **body).json()["total"] == 10_001


@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("field", ["dateUpdated", "dateAdded"])
def test_many_contacts_sharing_one_timestamp_across_page_boundaries(sim: Sim, direction: str, field: str):
    # 10 distinct timestamps, 1 + 30 + ... contacts at the middle one; pageLimit 7 cuts through it.
    docs = [contact(i, added=T0 + 5000, updated=T0 + 5000) for i in range(30)]
    docs += [contact(100 + i, added=T0 + i * 1000, updated=T0 + i * 1000) for i in range(10)]
    sim.state.load_contacts(docs)
    seen = sim.search_all(7, sort=[{"field": field, "direction": direction}])
    ids = [c["id"] for c in seen]
    assert len(ids) == len(set(ids)) == 40
    expected = sorted(docs, key=lambda d: d["id"])  # ties: id ascending in both directions
    expected.sort(key=lambda d: parse_ms(d[field]), reverse=direction == "desc")
    assert ids == [d["id"] for d in expected]


def test_general_sort_with_missing_values_and_cursor(sim: Sim):
    docs = [contact(i, firstName=f"N{i % 4}") for i in range(25)]
    for d in docs[:5]:
        d.pop("firstName")  # missing values sort last in both directions
    sim.state.load_contacts(docs)
    for direction in ("asc", "desc"):
        sort = [{"field": "firstNameLowerCase", "direction": direction}, {"field": "dateAdded", "direction": "desc"}]
        seen = sim.search_all(4, sort=sort)
        assert len({c["id"] for c in seen}) == len(seen) == 25
        names = [c.get("firstNameLowerCase") for c in seen]
        assert names[-5:] == [None] * 5
        present = names[:-5]
        assert present == sorted(present, reverse=direction == "desc")
        assert len(seen[0]["searchAfter"]) == 3 and seen[-1]["searchAfter"][0] is None


def test_range_filters_accept_iso_and_epoch_ms_and_respect_bounds(sim: Sim):
    docs = [contact(i, updated=T0 + i * 1000) for i in range(10)]
    sim.state.load_contacts(docs)

    def ids(rng: dict, field: str = "dateUpdated") -> list[str]:
        r = sim.search(pageLimit=100, filters=[{"field": field, "operator": "range", "value": rng}])
        assert r.status_code == 200, r.text
        return sorted(c["id"] for c in r.json()["contacts"])

    want = sorted(d["id"] for d in docs[3:7])
    assert ids({"gte": T0 + 3000, "lt": T0 + 7000}) == want
    assert ids({"gte": iso_ms(T0 + 3000), "lt": iso_ms(T0 + 7000)}) == want
    assert ids({"gt": T0 + 2000, "lte": T0 + 6000}) == want
    assert ids({"gt": "2025-01-01T00:00:02.000Z", "lte": "2025-01-01T00:00:06.000+00:00"}) == want
    assert ids({"gte": T0 + 9000}) == [docs[9]["id"]]
    assert ids({"gt": T0 + 9000}) == []
    assert ids({"lt": T0 + 1}, field="dateAdded") == [docs[0]["id"]]
    # two top-level ranges on the same field intersect
    r = sim.search(
        pageLimit=100,
        filters=[
            {"field": "dateUpdated", "operator": "range", "value": {"gte": T0 + 2000}},
            {"field": "dateUpdated", "operator": "range", "value": {"lte": T0 + 4000}},
        ],
    )
    assert r.json()["total"] == 3


def test_filters_operators_and_groups(sim: Sim):
    docs = [
        contact(1, email="Alice.Smith@Example.com", tags=["vip", "newsletter"], country="US", firstName="Alice"),
        contact(2, tags=["wholesale"], country="GB", firstName="Bob", source="csv import"),
        contact(3, tags=[], country="DE", firstName="Carla", type="customer"),
        contact(4, country="US", firstName="Alicia"),
    ]
    docs[3].pop("phone")
    sim.state.load_contacts(docs)

    def ids(*filters: dict) -> list[str]:
        r = sim.search(pageLimit=100, filters=list(filters))
        assert r.status_code == 200, r.text
        return sorted(c["id"][-1] for c in r.json()["contacts"])

    assert ids({"field": "email", "operator": "eq", "value": "alice.smith@example.COM"}) == ["1"]
    assert ids({"field": "email", "operator": "not_eq", "value": "ALICE.SMITH@example.com"}) == ["2", "3", "4"]
    assert ids({"field": "tags", "operator": "eq", "value": "vip"}) == ["1"]
    assert ids({"field": "tags", "operator": "eq", "value": ["vip", "wholesale"]}) == ["1", "2"]
    assert ids({"field": "tags", "operator": "not_eq", "value": "vip"}) == ["2", "3", "4"]
    assert ids({"field": "tags", "operator": "contains", "value": "SALE"}) == ["2"]
    assert ids({"field": "tags", "operator": "exists"}) == ["1", "2"]
    assert ids({"field": "phone", "operator": "not_exists"}) == ["4"]
    assert ids({"field": "country", "operator": "eq", "value": "US"}) == ["1", "4"]
    assert ids({"field": "firstNameLowerCase", "operator": "contains", "value": "ali"}) == ["1", "4"]
    assert ids({"field": "firstNameLowerCase", "operator": "not_contains", "value": "ali"}) == ["2", "3"]
    assert ids({"field": "id", "operator": "not_eq", "value": docs[0]["id"]}) == ["2", "3", "4"]
    assert ids({"field": "type", "operator": "eq", "value": "customer"}) == ["3"]
    assert ids({"field": "source", "operator": "eq", "value": "csv import"}) == ["2"]
    assert ids({"field": "lastNameLowerCase", "operator": "eq", "value": "last1"}) == ["1"]
    # AND of top-level items; OR group; nested group
    assert ids({"field": "country", "operator": "eq", "value": "US"}, {"field": "tags", "operator": "exists"}) == ["1"]
    or_group = {
        "group": "OR",
        "filters": [
            {"field": "country", "operator": "eq", "value": "GB"},
            {"field": "country", "operator": "eq", "value": "DE"},
        ],
    }
    assert ids(or_group) == ["2", "3"]
    nested = {
        "group": "AND",
        "filters": [or_group, {"field": "tags", "operator": "not_exists"}],
    }
    assert ids(nested) == ["3"]
    assert ids({"field": "phone", "operator": "eq", "value": docs[1]["phone"]}) == ["2"]
    # free-text query over name/email/phone
    r = sim.search(pageLimit=100, query="alic")
    assert sorted(c["id"][-1] for c in r.json()["contacts"]) == ["1", "4"]


def test_search_omits_dnd_settings_but_get_returns_them(sim: Sim):
    dnd = {"Email": {"status": "active", "message": "opted out", "code": "103"}}
    sim.state.load_contacts([contact(1, dnd=True, dndSettings=dnd)])
    found = sim.search().json()["contacts"][0]
    assert "dndSettings" not in found and found["dnd"] is True
    got = sim.call("GET", f"/contacts/{contact(1)['id']}").json()["contact"]
    assert got["dndSettings"] == dnd and "searchAfter" not in got


def test_index_lag_search_sees_old_state_get_is_fresh(sim: Sim):
    sim.state.load_contacts([contact(1, city="Old Town")])
    cid = contact(1)["id"]
    sim.state.configure(index_lag_s=0.4)
    new_id = sim.create(email="fresh@example.com").json()["contact"]["id"]
    assert sim.call("PUT", f"/contacts/{cid}", json={"city": "New Town"}).status_code == 200

    found = {c["id"]: c for c in sim.search().json()["contacts"]}
    assert new_id not in found and found[cid]["city"] == "Old Town"  # search lags
    assert sim.call("GET", f"/contacts/{new_id}").status_code == 200  # GET is fresh
    assert sim.call("GET", f"/contacts/{cid}").json()["contact"]["city"] == "New Town"
    assert sim.call("DELETE", f"/contacts/{cid}").status_code == 200
    assert cid in {c["id"] for c in sim.search().json()["contacts"]}  # delete not indexed yet

    time.sleep(0.5)
    found = {c["id"]: c for c in sim.search().json()["contacts"]}
    assert new_id in found and cid not in found


# --------------------------------------------------------------------------------------------------
# rate limits


def test_burst_limit_429_with_retry_after_then_recovers(sim: Sim):
    sim.state.configure(rate_limit=True, burst_max=5, burst_window_ms=1000)
    remaining = []
    for _ in range(5):
        r = sim.search()
        assert r.status_code == 200
        remaining.append(int(r.headers["X-RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    r = sim.search()
    assert (r.status_code, r.json()) == (429, {"statusCode": 429, "message": "Too Many Requests"})
    retry_after = r.headers["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    assert r.headers["X-RateLimit-Remaining"] == "0"
    # Another client of the same location has its own bucket; invalid tokens are not counted.
    assert sim.search(token=TOKEN_B).status_code == 200
    assert sim.call("GET", "/contacts/", token="nope").status_code == 401
    # Admin endpoints are never limited.
    assert requests.get(sim.url + "/_sim/config", timeout=5).status_code == 200
    time.sleep(1.05)
    r = sim.search()
    assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "4"


@pytest.mark.parametrize("window", ["fixed", "sliding"])
def test_burst_window_fixed_or_sliding(window, monkeypatch):
    """The window's kind is a reading (ghl-api.md §6 leaves it open). 4 per 1 s: one request at 0,
    three at 0.6 s, then four at 1.05 s. A fixed window restarted at 1.0 s takes all four; a
    sliding one still holds the three from 0.6 s, so it takes one and says wait until 1.6 s."""
    from sandbox.ghl.ratelimit import __name__ as ratelimit_module
    from sandbox.ghl.state import GhlState
    from sandbox.ghl.tokens import Token

    clock = [100.0]
    monkeypatch.setattr(f"{ratelimit_module}.time.monotonic", lambda: clock[0])
    state = GhlState(LOC, rate_limit=True, burst_max=4, burst_window_ms=1000, rate_window=window)
    token = Token(TOKEN, LOC)

    def burst(at: float, n: int) -> list[tuple[bool, str, int | None]]:
        clock[0] = 100.0 + at
        out = [state.hit(token) for _ in range(n)]
        return [(d.allowed, d.headers["X-RateLimit-Remaining"], d.retry_after) for d in out]

    assert burst(0.0, 1) == [(True, "3", None)]
    assert burst(0.6, 4) == [(True, "2", None), (True, "1", None), (True, "0", None), (False, "0", 1)]
    if window == "fixed":
        assert burst(1.05, 5) == [(True, "3", None), (True, "2", None), (True, "1", None), (True, "0", None),
                                  (False, "0", 1)]  # fmt: skip
    else:
        assert burst(1.05, 2) == [(True, "0", None), (False, "0", 1)]
        assert burst(1.59, 1) == [(False, "0", 1)]
        assert burst(1.6, 4) == [(True, "2", None), (True, "1", None), (True, "0", None), (False, "0", 1)]
    assert GhlState(LOC).rate_window == "fixed"  # the lenient reading is the default


def test_retry_after_can_be_switched_off_and_daily_limit(sim: Sim):
    sim.state.configure(rate_limit=True, daily_limit=3, send_retry_after=False)
    daily = [sim.search().headers["X-RateLimit-Daily-Remaining"] for _ in range(3)]
    assert daily == ["2", "1", "0"]
    r = sim.search()
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert r.headers["X-RateLimit-Daily-Remaining"] == "0"


def test_rate_limit_off_never_429s(sim: Sim):
    sim.state.configure(rate_limit=False, burst_max=2)
    assert all(sim.search().status_code == 200 for _ in range(5))


# --------------------------------------------------------------------------------------------------
# writes


def test_create_201_with_derived_fields_and_normalised_phone(sim: Sim):
    r = sim.create(
        firstName="Rosan",
        lastName="Deo",
        email="Rosan@Deos.com",
        phone="+1 888-888-8888",
        tags=["vip"],
        dateOfBirth="09/25/1990",
        customFields=[{"id": "MgobCB14YMVKuE4Ka8p1", "field_value": "gold"}, {"key": "my_field", "field_value": "x"}],
    )
    assert r.status_code == 201, r.text
    c = r.json()["contact"]
    assert re.fullmatch(r"[A-Za-z0-9]{20}", c["id"])
    assert (c["firstNameLowerCase"], c["lastNameLowerCase"], c["emailLowerCase"]) == ("rosan", "deo", "rosan@deos.com")
    assert c["name"] == "Rosan Deo" and c["fullNameLowerCase"] == "rosan deo"
    assert c["phone"] == "+18888888888"
    assert c["dateOfBirth"] == "1990-09-25T00:00:00.000Z"  # create response form
    assert ISO_MS.match(c["dateAdded"]) and c["dateAdded"] == c["dateUpdated"]
    assert {"id": "MgobCB14YMVKuE4Ka8p1", "value": "gold"} in c["customFields"]
    assert all(set(cf) == {"id", "value"} for cf in c["customFields"])
    got = sim.call("GET", f"/contacts/{c['id']}").json()["contact"]
    assert got["dateOfBirth"] == "1990-09-25"  # read form


def test_create_validation_422(sim: Sim):
    r = sim.call("POST", "/contacts/", json={"email": "a@b.co"})
    assert r.status_code == 422 and "locationId should not be empty" in r.json()["message"]
    for body, needle in (
        ({"email": "john at example"}, "email must be an email"),
        ({"companyNam": "typo"}, "property companyNam should not exist"),
        ({"dnd": "yes"}, "dnd must be a boolean value"),
        ({"tags": "vip"}, "tags"),
    ):
        r = sim.create(**body)
        assert r.status_code == 422, (body, r.text)
        assert any(needle in m for m in r.json()["message"]), (needle, r.json())
    assert sim.state.count() == 0


def test_duplicate_create_is_400_with_meta_unless_allowed(sim: Sim):
    first = sim.create(firstName="Ann", lastName="Lee", email="ann@example.com", phone="+14155550100").json()["contact"]
    r = sim.create(email="ANN@EXAMPLE.COM")
    assert r.status_code == 400
    assert r.json() == {
        "statusCode": 400,
        "message": "This location does not allow duplicated contacts.",
        "meta": {"contactId": first["id"], "contactName": "Ann Lee", "matchingField": "email"},
    }
    r = sim.create(email="other@example.com", phone="(415) 555-0100")
    assert r.status_code == 400 and r.json()["meta"]["matchingField"] == "phone"
    sim.state.configure(allow_duplicates=True)
    assert sim.create(email="ann@example.com").status_code == 201


def test_get_unknown_contact_is_400(sim: Sim):
    r = sim.call("GET", "/contacts/doesNotExist00000000")
    assert (r.status_code, r.json()) == (
        400,
        {"statusCode": 400, "message": "Contact with id doesNotExist00000000 not found"},
    )
    assert sim.call("PUT", "/contacts/doesNotExist00000000", json={"city": "x"}).status_code == 400
    assert sim.call("DELETE", "/contacts/doesNotExist00000000").status_code == 400


def test_put_replaces_tags_updates_date_and_keeps_index_sorted(sim: Sim):
    docs = [contact(i, tags=["vip", "newsletter"]) for i in range(20)]
    sim.state.load_contacts(docs)
    target = docs[3]["id"]
    before_ms = int(time.time() * 1000) - 1
    r = sim.call("PUT", f"/contacts/{target}", json={"tags": ["wholesale"], "firstName": "Zed", "country": "GB"})
    assert r.status_code == 200
    body = r.json()
    assert body["succeded"] is True
    c = body["contact"]
    assert c["tags"] == ["wholesale"] and c["firstNameLowerCase"] == "zed" and c["name"].startswith("Zed ")
    assert ISO_MS.match(c["dateUpdated"]) and parse_ms(c["dateUpdated"]) >= before_ms
    assert c["dateAdded"] == docs[3]["dateAdded"]
    # Incremental sync: "updated since" finds exactly it, and it is last in dateUpdated order.
    r = sim.search(filters=[{"field": "dateUpdated", "operator": "range", "value": {"gte": before_ms}}])
    assert [x["id"] for x in r.json()["contacts"]] == [target]
    r = sim.search(pageLimit=100, sort=[{"field": "dateUpdated", "direction": "asc"}])
    assert r.json()["contacts"][-1]["id"] == target
    # UpdateContactDto has no companyName / locationId / gender: 422, nothing written.
    r = sim.call("PUT", f"/contacts/{target}", json={"companyName": "ACME"})
    assert r.status_code == 422 and r.json()["message"] == ["property companyName should not exist"]
    # null clears a field
    r = sim.call("PUT", f"/contacts/{target}", json={"email": None})
    assert "email" not in r.json()["contact"] and "emailLowerCase" not in r.json()["contact"]


def test_delete_contact(sim: Sim):
    sim.state.load_contacts([contact(1)])
    cid = contact(1)["id"]
    r = sim.call("DELETE", f"/contacts/{cid}")
    assert (r.status_code, r.json()) == (200, {"succeded": True})
    assert sim.call("GET", f"/contacts/{cid}").status_code == 400
    assert sim.call("DELETE", f"/contacts/{cid}").status_code == 400
    assert sim.search().json()["total"] == 0


def test_upsert_matches_email_then_phone_and_replaces_tags(sim: Sim):
    r = sim.call("POST", "/contacts/upsert", json={"locationId": LOC, "email": "up@example.com", "tags": ["a"]})
    assert r.status_code == 200
    body = r.json()
    assert body["new"] is True and body["traceId"] == r.headers["x-trace-id"]
    cid = body["contact"]["id"]
    r = sim.call("POST", "/contacts/upsert", json={"locationId": LOC, "email": "UP@example.com", "tags": ["b"]})
    assert (r.json()["new"], r.json()["contact"]["id"], r.json()["contact"]["tags"]) == (False, cid, ["b"])
    sim.call("PUT", f"/contacts/{cid}", json={"phone": "+14155550123"})
    r = sim.call("POST", "/contacts/upsert", json={"locationId": LOC, "phone": "+1 415-555-0123", "city": "Oslo"})
    assert (r.json()["new"], r.json()["contact"]["id"], r.json()["contact"]["city"]) == (False, cid, "Oslo")
    r = sim.call(
        "POST",
        "/contacts/upsert",
        json={"locationId": LOC, "email": "up@example.com", "createNewIfDuplicateAllowed": True},
    )
    assert r.json()["new"] is False  # location disallows duplicates: the flag is ignored
    sim.state.configure(allow_duplicates=True)
    r = sim.call(
        "POST",
        "/contacts/upsert",
        json={"locationId": LOC, "email": "up@example.com", "createNewIfDuplicateAllowed": True},
    )
    assert r.json()["new"] is True and r.json()["contact"]["id"] != cid
    assert sim.call("POST", "/contacts/upsert", json={"email": "x@y.co"}).status_code == 422


def test_tags_add_201_and_remove_200(sim: Sim):
    sim.state.load_contacts([contact(1, tags=["vip"])])
    cid = contact(1)["id"]
    r = sim.call("POST", f"/contacts/{cid}/tags", json={"tags": ["newsletter", "vip"]})
    assert (r.status_code, r.json()) == (201, {"tags": ["vip", "newsletter"]})
    r = sim.call("DELETE", f"/contacts/{cid}/tags", json={"tags": ["vip"]})
    assert (r.status_code, r.json()) == (200, {"tags": ["newsletter"]})
    assert sim.call("GET", f"/contacts/{cid}").json()["contact"]["tags"] == ["newsletter"]
    assert sim.call("POST", f"/contacts/{cid}/tags", json={}).status_code == 422
    assert sim.call("POST", f"/contacts/{cid}/tags", json={"tags": [1]}).status_code == 422
    assert sim.call("POST", "/contacts/missing0000000000000/tags", json={"tags": ["x"]}).status_code == 400


def test_custom_fields_write_id_or_key_read_id_value_and_merge(sim: Sim):
    cid = sim.create(email="cf@example.com", customFields=[{"id": "F1", "field_value": "one"}]).json()["contact"]["id"]
    r = sim.call(
        "PUT",
        f"/contacts/{cid}",
        json={"customFields": [{"key": "loyalty", "field_value": ["a", "b"]}, {"id": "F2", "field_value": 7}]},
    )
    fields = {cf["id"]: cf["value"] for cf in r.json()["contact"]["customFields"]}
    assert fields["F1"] == "one" and fields["F2"] == 7 and ["a", "b"] in fields.values()
    r = sim.call("PUT", f"/contacts/{cid}", json={"customFields": [{"id": "F1", "field_value": ""}]})
    assert "F1" not in {cf["id"] for cf in r.json()["contact"]["customFields"]}
    r = sim.call("PUT", f"/contacts/{cid}", json={"customFields": [{"id": "F1", "value": "x"}]})
    assert r.status_code == 422


# --------------------------------------------------------------------------------------------------
# deprecated list, business


def test_list_paging_with_meta_cursor(sim: Sim):
    docs = [contact(i, added=T0 + (i // 3) * 1000) for i in range(45)]  # ties of three
    sim.state.load_contacts(docs)
    r = sim.call("GET", f"/contacts/?locationId={LOC}")
    assert r.status_code == 200 and len(r.json()["contacts"]) == 20  # default limit
    seen, pages, path = [], [], f"/contacts/?locationId={LOC}&limit=20"
    while True:
        body = sim.call("GET", path).json()
        pages.append(body["meta"])
        seen += [c["id"] for c in body["contacts"]]
        assert body["count"] == body["meta"]["total"] == 45
        if not body["meta"]["nextPageUrl"]:
            break
        meta = body["meta"]
        assert meta["nextPageUrl"].startswith(sim.url + "/contacts/?")
        assert f"startAfter={meta['startAfter']}" in meta["nextPageUrl"]
        assert f"startAfterId={meta['startAfterId']}" in meta["nextPageUrl"]
        path = (
            f"/contacts/?locationId={LOC}&limit=20&startAfter={meta['startAfter']}&startAfterId={meta['startAfterId']}"
        )
    assert seen == [d["id"] for d in sorted(docs, key=lambda d: (parse_ms(d["dateAdded"]), d["id"]))]
    assert [(m["currentPage"], m["nextPage"], m["prevPage"]) for m in pages] == [(1, 2, None), (2, 3, 1), (3, None, 2)]
    assert pages[0]["startAfterId"] == seen[19] and pages[0]["startAfter"] == parse_ms(docs[19]["dateAdded"])
    # the advertised nextPageUrl itself works
    nxt = sim.http.get(pages[0]["nextPageUrl"], headers={"Authorization": f"Bearer {TOKEN}", "Version": VERSION})
    assert [c["id"] for c in nxt.json()["contacts"]] == seen[20:40]
    # free-text query
    r = sim.call("GET", f"/contacts/?locationId={LOC}&query=user44%40")
    assert [c["id"] for c in r.json()["contacts"]] == [docs[44]["id"]] and r.json()["meta"]["total"] == 1


def test_business_contacts_skip_limit(sim: Sim):
    docs = [
        contact(i, businessId="641c094001436dbc2081e642" if i % 2 else "aaaaaaaaaaaaaaaaaaaaaaaa") for i in range(30)
    ]
    sim.state.load_contacts(docs)
    r = sim.call("GET", f"/contacts/business/641c094001436dbc2081e642?locationId={LOC}")
    assert r.status_code == 200 and r.json()["count"] == 15 and len(r.json()["contacts"]) == 15
    r = sim.call("GET", f"/contacts/business/641c094001436dbc2081e642?locationId={LOC}&limit=4&skip=12")
    assert [c["id"] for c in r.json()["contacts"]] == [docs[i]["id"] for i in (25, 27, 29)]


# --------------------------------------------------------------------------------------------------
# admin, concurrency, seed files, performance


def test_admin_endpoints(sim: Sim):
    base = sim.url + "/_sim"
    r = requests.post(base + "/contacts", json=[contact(1), contact(2)], timeout=5)
    assert r.status_code == 200 and r.json()["loaded"] == 2
    assert (
        requests.get(base + f"/contacts/{contact(1)['id']}", timeout=5).json()["dateAdded"] == contact(1)["dateAdded"]
    )
    assert requests.get(base + "/contacts/nope", timeout=5).status_code == 404
    page = requests.get(base + "/contacts?offset=1&limit=1", timeout=5).json()
    assert page["total"] == 2 and [c["id"] for c in page["contacts"]] == [contact(2)["id"]]
    r = requests.post(base + "/config", json={"index_lag_s": 0.25, "allow_duplicates": True}, timeout=5)
    assert r.json()["index_lag_s"] == 0.25 and sim.state.allow_duplicates is True
    assert requests.post(base + "/config", json={"bogus": 1}, timeout=5).status_code == 400
    r = requests.post(
        base + "/tokens", json={"token": "t-new", "location_id": LOC, "scopes": "contacts.readonly"}, timeout=5
    )
    assert r.status_code == 201
    assert sim.search(token="t-new").status_code == 200
    assert sim.create(email="z@z.co").status_code == 201  # the main token still writes
    assert sim.call("POST", "/contacts/", token="t-new", json={"locationId": LOC}).status_code == 401
    # Only API calls are in the request log.
    assert {e["path"] for e in requests.get(base + "/requests", timeout=5).json()} == {"/contacts/search", "/contacts/"}
    assert requests.post(base + "/reset", timeout=5).json() == {"reset": True}
    assert sim.state.count() == 0


def test_concurrent_writes_keep_index_consistent(sim: Sim):
    def worker(k: int) -> None:
        s = requests.Session()
        for j in range(15):
            body = {"locationId": LOC, "email": f"w{k}-{j}@example.com"}
            r = s.post(
                sim.url + "/contacts/", json=body, headers={"Authorization": f"Bearer {TOKEN}", "Version": VERSION}
            )
            assert r.status_code == 201

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = sim.search_all(25, sort=[{"field": "dateUpdated", "direction": "desc"}])
    assert len({c["id"] for c in seen}) == len(seen) == 90 == sim.state.count()


def test_seed_file_roundtrip(tmp_path, sim: Sim):
    docs = [contact(i) for i in range(5)]
    sim.state.load_contacts(docs)
    path = tmp_path / "seed.json"
    sim.state.dump_seed(path)
    data = json.loads(path.read_text())
    assert data["locationId"] == LOC and len(data["contacts"]) == 5
    again = GhlState.from_seed_file(path, rate_limit=False)
    assert again.location_id == LOC and again.get_contact(docs[2]["id"])["dateUpdated"] == docs[2]["dateUpdated"]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(docs))
    assert GhlState.from_seed_file(bare).count() == 5


def test_search_hot_path_pages_correctly_at_100k_contacts():
    # Speed is measured by benchmarks/simulators.py, which prints figures; this pins correctness.
    state = GhlState(LOC, rate_limit=False)
    state.load_contacts(contact(i, added=T0 + i, updated=T0 + (i * 7919) % 10**8) for i in range(100_000))
    body = {
        "locationId": LOC,
        "pageLimit": 500,
        "sort": [{"field": "dateUpdated", "direction": "asc"}],
        "filters": [{"field": "dateUpdated", "operator": "range", "value": {"gte": iso_ms(T0 + 10**7)}}],
    }
    expected_total = sum(1 for i in range(100_000) if (i * 7919) % 10**8 >= 10**7)
    cursor, seen = None, set()
    for _ in range(5):
        out = state.search({**body, **({"searchAfter": cursor} if cursor else {})})
        cursor = out["contacts"][-1]["searchAfter"]
        assert len(out["contacts"]) == 500 and out["total"] == expected_total
        seen.update(c["id"] for c in out["contacts"])
    assert len(seen) == 2500
    srv = ServerThread(create_app(state)).start()
    try:
        state.add_token(TOKEN, location_id=LOC)
        r = requests.post(
            srv.url + "/contacts/search",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}", "Version": VERSION},
            timeout=10,
        )
        assert r.status_code == 200 and len(r.json()["contacts"]) == 500
    finally:
        srv.stop()


# --------------------------------------------------------------------------------------------------
# the seed generator

NOW = datetime(2026, 6, 1, tzinfo=UTC)
_EMOJI_OR_RTL = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf\u0590-\u05ff\u200e\u200f\u202a-\u202e]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
ALLOWED_KEYS = {
    "id", "locationId", "firstName", "lastName", "name", "contactName", "firstNameLowerCase", "lastNameLowerCase",
    "fullNameLowerCase", "email", "emailLowerCase", "phone", "companyName", "address1", "city", "state", "postalCode",
    "country", "timezone", "website", "type", "source", "assignedTo", "businessId", "tags", "customFields", "dnd",
    "dndSettings", "dateOfBirth", "dateAdded", "dateUpdated",
}  # fmt: skip


def dirty_reasons(c: dict, seen_emails: set[str]) -> list[str]:
    """Why a generated contact is dirty (empty for clean ones)."""
    reasons = []
    email = c.get("email")
    if not email:
        reasons.append("missing_email")
    elif not _EMAIL.match(email):
        reasons.append("invalid_email")
    elif email.lower() in seen_emails:
        reasons.append("duplicate_email_case")
    if email:
        seen_emails.add(email.lower())
    names = (c.get("firstName") or "") + (c.get("lastName") or "")
    if len(c.get("firstName") or "") > 50 or len(c.get("lastName") or "") > 50:
        reasons.append("long_name")
    if len(c.get("address1") or "") > 255 or len(c.get("city") or "") > 100:
        reasons.append("long_address")
    phone = c.get("phone")
    if phone and not (re.fullmatch(r"\+\d{8,15}", phone) and phonenumbers.is_valid_number(phonenumbers.parse(phone))):
        reasons.append("odd_phone")
    if _EMOJI_OR_RTL.search(names):
        reasons.append("emoji_rtl_name")
    if _CONTROL.search(names):
        reasons.append("control_chars")
    return reasons


def test_generator_is_deterministic_and_seed_sensitive():
    a = generate_contacts(300, seed=7, location_id=LOC, now=NOW)
    b = generate_contacts(300, seed=7, location_id=LOC, now=NOW)
    c = generate_contacts(300, seed=8, location_id=LOC, now=NOW)
    assert a == b
    assert [x["id"] for x in a] != [x["id"] for x in c]


def test_generator_dirty_share_and_kinds():
    n = 2000
    contacts = generate_contacts(n, seed=3, dirty_share=0.04, location_id=LOC, now=NOW)
    seen: set[str] = set()
    reasons = [dirty_reasons(c, seen) for c in contacts]
    dirty = [r for r in reasons if r]
    assert len(dirty) == round(n * 0.04)
    assert all(len(r) == 1 for r in dirty), [r for r in dirty if len(r) > 1]
    assert {r[0] for r in dirty} == set(DIRTY_KINDS)
    clean = generate_contacts(500, seed=3, dirty_share=0.0, location_id=LOC, now=NOW)
    seen = set()
    assert not any(dirty_reasons(c, seen) for c in clean)


def test_generator_shape_is_realistic():
    contacts = generate_contacts(3000, seed=11, dirty_share=0.02, location_id=LOC, now=NOW, days=90)
    ids = [c["id"] for c in contacts]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[A-Za-z0-9]{20}", i) for i in ids)
    start = NOW - timedelta(days=90)
    countries = set()
    for c in contacts:
        assert set(c) <= ALLOWED_KEYS, set(c) - ALLOWED_KEYS
        assert c["locationId"] == LOC and c["type"] in ("lead", "customer")
        assert ISO_MS.match(c["dateAdded"]) and ISO_MS.match(c["dateUpdated"])
        added, updated = parse_ms(c["dateAdded"]), parse_ms(c["dateUpdated"])
        assert start.timestamp() * 1000 <= added <= updated <= NOW.timestamp() * 1000
        assert 0 <= len(c["tags"]) <= 4 and set(c["tags"]) <= set(TAG_VOCABULARY)
        assert all(cf["id"] in CUSTOM_FIELD_IDS.values() and isinstance(cf["value"], str) for cf in c["customFields"])
        assert re.fullmatch(r"[A-Z]{2}", c["country"])
        if "dateOfBirth" in c:
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", c["dateOfBirth"])
        if c.get("firstName") and c.get("lastName"):
            assert (
                c["firstNameLowerCase"] == c["firstName"].lower()
                and c["name"] == f"{c['firstName']} {c['lastName']}".strip()
            )
        countries.add(c["country"])
    assert countries == {"US", "GB", "DE", "FR", "MX", "JP", "AE"}
    assert [c["dateAdded"] for c in contacts] == sorted(c["dateAdded"] for c in contacts)
    # bulk imports: some contacts share one dateUpdated millisecond
    counts: dict[str, int] = {}
    for c in contacts:
        counts[c["dateUpdated"]] = counts.get(c["dateUpdated"], 0) + 1
    assert max(counts.values()) >= 3
    assert any(set(c["firstName"]) - set(string.printable) for c in contacts if c.get("firstName"))  # non-ASCII names


def test_generator_makes_large_sets_with_unique_ids():
    contacts = generate_contacts(20_000, seed=1, location_id=LOC, now=NOW)
    assert len(contacts) == 20_000 and len({c["id"] for c in contacts}) == 20_000


# --------------------------------------------------------------------------------------------------
# lenient and strict readings of unconfirmed behaviours (sandbox/profiles.py, BEHAVIOR.md)


def test_search_items_full_or_in_the_doc_example_shape(sim: Sim):
    docs = [
        contact(
            i,
            address1=f"{i} Main St",
            city="Springfield",
            state="IL",
            postalCode="62701",
            companyName="Acme",
            businessName="Acme Inc",
            website="https://acme.example",
            dateOfBirth="1990-01-01",
            followers=["user0000000000000001"],
            assignedTo="user0000000000000001",
            customFields=[{"id": "cf000000000000000001", "value": "gold"}],
            tags=["vip"],
            dndSettings={"SMS": {"status": "active"}},
        )
        for i in range(5)
    ]
    sim.state.load_contacts(docs)
    cid = docs[0]["id"]
    # lenient ("full"): the stored contact (less dndSettings) plus its cursor
    full = sim.search(pageLimit=5).json()["contacts"]
    assert full[0]["firstName"] == "First0" and full[0]["address1"] == "0 Main St" and "address" not in full[0]
    assert {"lastName", "name", "contactName", "fullNameLowerCase"} <= set(full[0])

    sim.state.configure(search_item_shape="doc_example")
    items = sim.search(pageLimit=5).json()["contacts"]
    assert [c["id"] for c in items] == [c["id"] for c in full]
    item = items[0]
    assert item["address"] == "0 Main St"
    assert (item["firstNameLowerCase"], item["lastNameLowerCase"]) == ("first0", "last0")
    for gone in ("firstName", "lastName", "name", "contactName", "fullNameLowerCase", "address1", "dndSettings"):
        assert gone not in item, gone
    stored = sim.state.raw_contact(cid)
    for kept in (
        "id", "email", "phone", "companyName", "businessName", "city", "state", "postalCode", "country", "tags",
        "dateAdded", "dateUpdated", "dnd", "customFields", "source", "type", "website", "locationId",
        "followers", "assignedTo", "dateOfBirth",
    ):  # fmt: skip
        assert item[kept] == stored[kept], kept
    assert [c["searchAfter"] for c in items] == [c["searchAfter"] for c in full]
    assert [c["id"] for c in sim.search_all(2)] == [d["id"] for d in docs]  # cursors still page
    # GET /contacts/{id} always has the full contact: how a client gets the names back
    got = sim.call("GET", f"/contacts/{cid}").json()["contact"]
    assert (got["firstName"], got["lastName"], got["name"]) == ("First0", "Last0", "First0 Last0")
    assert got["address1"] == "0 Main St" and "address" not in got
    # only the search is affected: the deprecated list keeps the read shape
    listed = sim.call("GET", f"/contacts/?locationId={LOC}").json()["contacts"][0]
    assert listed["firstName"] == "First0" and listed["address1"] == "0 Main St"
    r = requests.post(sim.url + "/_sim/config", json={"search_item_shape": "short"}, timeout=5)
    assert r.status_code == 400 and sim.state.search_item_shape == "doc_example"  # checked, unchanged


def _error_text(body: dict) -> str:
    """The error's words, whichever shape carries them."""
    return body["message"] if "message" in body else body["error"]


def test_error_bodies_documented_or_varied_in_rotation(sim: Sim):
    def invalid_jwt() -> requests.Response:
        return sim.call("GET", f"/contacts/?locationId={LOC}", token=None)

    dto = {"statusCode": 401, "message": "Invalid JWT"}
    assert [invalid_jwt().json() for _ in range(4)] == [dto] * 4  # lenient: always the documented DTO

    sim.state.configure(error_body_style="varied")
    assert [invalid_jwt().json() for _ in range(4)] == [
        dto,
        {"error": "Invalid JWT", "status": 401},
        {"status": 401, "message": "Invalid JWT", "name": "HttpException"},
        dto,
    ]
    sim.state.reset()  # the rotation starts again at the DTO
    # One rotation over every kind of error answer; the words stay, so a client can still tell them apart.
    sim.state.faults.set([{"action": "status", "status": 503, "path": "^/contacts/search/duplicate$"}])
    answers = [
        invalid_jwt(),
        sim.call("POST", "/contacts/", token=READONLY, json={"locationId": LOC}),  # scope
        sim.call("GET", f"/contacts/?locationId={OTHER_LOC}"),  # another location
        sim.call("GET", "/nowhere"),  # unknown route
    ]
    sim.state.configure(rate_limit=True, burst_max=1)
    assert sim.call("GET", f"/contacts/?locationId={LOC}", token=TOKEN_B).status_code == 200
    answers.append(sim.call("GET", f"/contacts/?locationId={LOC}", token=TOKEN_B))  # rate limited
    sim.state.configure(rate_limit=False)
    answers.append(sim.search(pageLimit=0))  # 422
    answers.append(sim.call("GET", "/contacts/search/duplicate"))  # injected 503
    assert [(r.status_code, _error_text(r.json())) for r in answers] == [
        (401, "Invalid JWT"),
        (401, "The token is not authorized for this scope."),
        (403, "The token does not have access to this location."),
        (404, "Cannot GET /nowhere"),
        (429, "Too Many Requests"),
        (422, "pageLimit must not be less than 1"),
        (503, "Service Unavailable"),
    ]
    shapes = [sorted(r.json()) for r in answers]
    documented, error_status, named = ["message", "statusCode"], ["error", "status"], ["message", "name", "status"]
    assert shapes == [documented, error_status, named, documented, error_status, named, documented]
    assert answers[2].json()["status"] == 403 and answers[5].json()["status"] == 422
    assert answers[3].json()["statusCode"] == 404
    assert answers[2].headers["content-type"] == "application/json"
    assert int(answers[2].headers["content-length"]) == len(answers[2].content)
    # successes are untouched, and so are the admin endpoints (which do not turn the rotation)
    assert sim.call("GET", f"/contacts/?locationId={LOC}").status_code == 200
    bad = requests.post(sim.url + "/_sim/config", json={"bogus": 1}, timeout=5)
    assert bad.status_code == 400 and set(bad.json()) == {"statusCode", "message"}
    assert sim.search(pageLimit=0).json() == {
        "error": "pageLimit must not be less than 1",
        "status": 422,
    }  # the next error's turn: message list joined into one string


def test_the_lenient_profile_is_the_constructor_default():
    config = GhlState(LOC).config()
    assert {k: config[k] for k in PROFILES["lenient"].ghl} == PROFILES["lenient"].ghl


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_apply_profile_sets_every_ghl_knob(sim: Sim, name: str):
    profile = PROFILES[name]
    assert set(profile.ghl) <= set(CONFIG_KEYS)
    assert apply_profile(name, ghl=sim.state) is profile
    config = sim.state.config()
    assert {k: config[k] for k in profile.ghl} == profile.ghl
    assert requests.get(sim.url + "/_sim/config", timeout=5).json() == config
    # the other profile's values go through /_sim/config as JSON (null included) and undo these
    other = next(p for p in PROFILES.values() if p.name != name)
    r = requests.post(sim.url + "/_sim/config", json=other.ghl, timeout=5)
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in other.ghl} == other.ghl
    with pytest.raises(ValueError, match="unknown profile"):
        apply_profile("paranoid", ghl=sim.state)


def test_knob_values_are_checked_with_a_clear_400(sim: Sim):
    for body in (
        {"search_item_shape": "short"},
        {"task_search_id_key": "ID"},
        {"task_search_max_limit": 0},
        {"task_search_max_limit": True},
        {"task_search_page_cap": -5},
        {"task_search_page_cap": "25"},
        {"error_body_style": None},
    ):
        (key,) = body
        r = requests.post(sim.url + "/_sim/config", json=body, timeout=5)
        assert r.status_code == 400 and r.json()["message"].startswith(f"config {key}: "), (body, r.text)
    # all or nothing: a bad value leaves the good ones of the same call unapplied
    r = requests.post(
        sim.url + "/_sim/config", json={"search_item_shape": "doc_example", "error_body_style": "loud"}, timeout=5
    )
    assert r.status_code == 400 and sim.state.search_item_shape == "full"
    assert sim.state.configure(task_search_page_cap=25.0, task_search_max_limit=None)["task_search_page_cap"] == 25
    with pytest.raises(ApiError, match="search_item_shape"):
        GhlState(LOC, search_item_shape="tiny")


# --------------------------------------------------------------------------------------------------
# test knob: a truncated search answer (the reconcile brake's test bed)


@pytest.mark.parametrize("keeps_total", [False, True])
def test_search_hide_share_leaves_the_same_contacts_out_of_every_page(sim: Sim, keeps_total: bool):
    docs = [contact(i) for i in range(40)]
    sim.state.load_contacts(docs)
    r = sim.call("POST", "/_sim/config", json={"search_hide_share": 0.3, "search_hide_keeps_total": keeps_total})
    assert r.status_code == 200 and r.json()["search_hide_share"] == 0.3
    by_updated = sim.search_all(7, sort=[{"field": "dateUpdated", "direction": "asc"}])
    by_email = sim.search_all(7, sort=[{"field": "email", "direction": "asc"}])
    assert len(by_updated) == len(by_email) == 40 - 12  # ceil(0.3 * 40) hidden, the same ones either way
    assert {c["id"] for c in by_updated} == {c["id"] for c in by_email}
    total = sim.search(pageLimit=5).json()["total"]
    assert total == (40 if keeps_total else 28)
    # A single read still finds a hidden contact: only search answers leave it out.
    hidden = {d["id"] for d in docs} - {c["id"] for c in by_updated}
    assert sim.call("GET", f"/contacts/{sorted(hidden)[0]}").status_code == 200
    # Off again: every contact is back.
    assert sim.call("POST", "/_sim/config", json={"search_hide_share": 0}).status_code == 200
    assert len(sim.search_all(50)) == 40


def test_search_hide_share_refuses_values_outside_0_to_1(sim: Sim):
    for bad in (1, 1.5, -0.1, "x", True):
        r = sim.call("POST", "/_sim/config", json={"search_hide_share": bad})
        assert r.status_code == 400 and "search_hide_share" in r.text, (bad, r.text)
