"""Fault injection (``sandbox/faults.py``) on both simulators, over real HTTP.

Each simulator runs once for the module; every test starts with an empty state, no rate limit and no
fault plan. ``Sim`` hides the two APIs' differences (headers, paths, error envelopes) so the actions
both simulators share are tested once, parametrised over both. Sleeps are kept to fractions of a
second: the client times out at ``CLIENT_TIMEOUT_S`` while the server sleeps ``SERVER_SLEEP_S``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from sandbox.common import ServerThread
from sandbox.faults import MALFORMED_BODY, FaultPlan
from sandbox.ghl import GhlState
from sandbox.ghl import create_app as ghl_app
from sandbox.shift4shop import Shift4ShopState
from sandbox.shift4shop import create_app as s4s_app

LOC = "ve9EPM428h8vShlRW1KT"
GHL_TOKEN = "pit-faults-1111-2222-3333-444444444444"
STORE = "https://faults-store.3dcartstores.com"
CREDS = {"private_key": "pk-faults", "token": "tok-faults"}
CLIENT_TIMEOUT_S = 0.15
SERVER_SLEEP_S = 0.6
T0 = 1_735_689_600_000


class Sim:
    """One running simulator plus what a test needs to drive it without caring which one it is."""

    def __init__(self, name: str, state: Any, url: str):
        self.name = name
        self.state = state
        self.url = url
        self.session = requests.Session()

    # --- service specifics ---
    @property
    def list_path(self) -> str:
        return "/contacts/" if self.name == "ghl" else "/3dCartWebAPI/v1/Customers"

    @property
    def create_path(self) -> str:
        return self.list_path

    def headers(self) -> dict[str, str]:
        if self.name == "ghl":
            return {"Authorization": f"Bearer {GHL_TOKEN}", "Version": "2021-07-28"}
        return {"SecureURL": STORE, "PrivateKey": CREDS["private_key"], "Token": CREDS["token"]}

    def error_body(self, status: int, message: str) -> Any:
        if self.name == "ghl":
            return {"statusCode": status, "message": message}
        return [{"Key": "Error", "Value": "", "Status": str(status), "Message": message}]

    def new_record(self, i: int) -> dict[str, Any]:
        if self.name == "ghl":
            return {"locationId": LOC, "firstName": f"Ann{i}", "email": f"ann{i}@example.com"}
        return {"Email": f"ann{i}@example.com", "Password": "pw", "BillingFirstName": f"Ann{i}"}

    def count(self) -> int:
        return self.state.count() if self.name == "ghl" else len(self.state.all_customers(STORE))

    def seed(self, n: int) -> None:
        if self.name == "ghl":
            self.state.load_contacts(
                [
                    {
                        "id": f"c{i:019d}",
                        "locationId": LOC,
                        "firstName": f"Seed{i}",
                        "email": f"seed{i}@example.com",
                        "dateAdded": f"2025-01-01T00:00:{i:02d}.000Z",
                        "dateUpdated": f"2025-01-01T00:00:{i:02d}.000Z",
                    }
                    for i in range(n)
                ]
            )
        else:
            self.state.load_customers(STORE, [{"Email": f"seed{i}@example.com", "Password": "pw"} for i in range(n)])

    # --- HTTP ---
    def call(self, method: str, path: str, *, timeout: float = 10, **kw: Any) -> requests.Response:
        return self.session.request(method, self.url + path, headers=self.headers(), timeout=timeout, **kw)

    def create(self, i: int, *, timeout: float = 10) -> requests.Response:
        return self.call("POST", self.create_path, json=self.new_record(i), timeout=timeout)

    def list(self, **params: Any) -> requests.Response:
        if self.name == "ghl":
            params.setdefault("locationId", LOC)
        return self.call("GET", self.list_path, params=params)

    def faults(self, *rules: dict, seed: int = 0) -> requests.Response:
        r = requests.post(f"{self.url}/_sim/faults", json={"rules": list(rules), "seed": seed}, timeout=5)
        assert r.status_code == 200, r.text
        return r

    def log(self) -> list[dict]:
        return self.state.request_log.snapshot()


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Sim]]:
    ghl_state = GhlState(LOC, {GHL_TOKEN: {}}, rate_limit=False)
    s4s_state = Shift4ShopState(stores={STORE: CREDS}, rate_limit=False)
    threads = {"ghl": ServerThread(ghl_app(ghl_state)).start(), "s4s": ServerThread(s4s_app(s4s_state)).start()}
    yield {
        "ghl": Sim("ghl", ghl_state, threads["ghl"].url),
        "s4s": Sim("s4s", s4s_state, threads["s4s"].url),
    }
    for thread in threads.values():
        thread.stop()


def _fresh(sim: Sim) -> Sim:
    assert sim.state.request_log.wait_idle(), "a request an earlier test left held is still running"
    sim.state.reset()
    if sim.name == "ghl":
        sim.state.configure(rate_limit=False, latency_s=0.0, burst_max=100)
    else:
        sim.state.configure(rate_limit=False, latency_s=0.0, bucket_size=50, leak_per_s=2.0, error_bodies="json")
    sim.state.request_log.clear()
    return sim


@pytest.fixture(params=["ghl", "s4s"])
def sim(request: pytest.FixtureRequest, servers: dict[str, Sim]) -> Sim:
    return _fresh(servers[request.param])


@pytest.fixture
def ghl(servers: dict[str, Sim]) -> Sim:
    return _fresh(servers["ghl"])


@pytest.fixture
def s4s(servers: dict[str, Sim]) -> Sim:
    return _fresh(servers["s4s"])


def wait_for(check: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


# ----- status / storm ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 500])
def test_status_fault_answers_the_service_envelope_with_retry_after_and_processes_nothing(
    sim: Sim, status: int
) -> None:
    sim.faults({"method": "POST", "action": "status", "status": status, "retry_after": 7})
    r = sim.create(1)
    crash = "Internal server error" if sim.name == "ghl" else "An error has occurred."  # each API's own 500 text
    expected = crash if status == 500 else "Service Unavailable"
    assert r.status_code == status
    assert r.headers["Retry-After"] == "7"
    assert r.json() == sim.error_body(status, expected)
    assert sim.count() == 0  # not processed
    entry = sim.log()[-1]
    assert (entry["status"], entry["fault"], entry["method"]) == (status, "status", "POST")
    assert sim.list().status_code in (200, 404)  # GET is not matched by the rule
    assert "fault" not in sim.log()[-1]


def test_status_fault_message_override_and_ghl_trace_id(ghl: Sim) -> None:
    ghl.faults({"action": "status", "status": 502, "message": "upstream connect error"})
    r = ghl.list()
    assert r.json() == {"statusCode": 502, "message": "upstream connect error"}
    assert r.headers["x-trace-id"]
    assert "Retry-After" not in r.headers


def test_status_fault_answers_before_auth_and_is_not_charged_to_the_rate_limit(sim: Sim) -> None:
    sim.seed(1)
    if sim.name == "ghl":
        sim.state.configure(rate_limit=True, burst_max=3)
    else:
        sim.state.configure(rate_limit=True, bucket_size=3, leak_per_s=0.001)
    sim.faults({"action": "status", "status": 503, "count": 5})
    for _ in range(5):
        assert sim.list().status_code == 503
    # No credentials at all: the fault still answers (it stands in front of the API).
    sim.faults({"action": "status", "status": 503, "count": 1})
    assert requests.get(sim.url + sim.list_path, timeout=5).status_code == 503
    # Had the 6 faulted requests been charged, the bucket of 3 would now refuse.
    assert [sim.list().status_code for _ in range(3)] == [200, 200, 200]
    assert sim.list().status_code == 429


def test_storm_gives_n_429s_then_success(sim: Sim) -> None:
    sim.seed(2)
    sim.faults({"action": "storm", "count": 3, "retry_after": 1})
    answers = [sim.list() for _ in range(5)]
    assert [r.status_code for r in answers] == [429, 429, 429, 200, 200]
    message = "Too Many Requests" if sim.name == "ghl" else "Too many requests"
    assert answers[0].json() == sim.error_body(429, message)
    assert answers[0].headers["Retry-After"] == "1"
    assert [f["action"] for f in sim.state.faults.fired()] == ["status"] * 3
    assert [e.get("fault") for e in sim.log()] == ["status"] * 3 + [None, None]


# ----- timeout / drop / commit_then_timeout / latency -------------------------------------------


def test_timeout_fault_processes_the_write_late_after_the_client_gave_up(sim: Sim) -> None:
    sim.faults({"method": "POST", "action": "timeout", "seconds": SERVER_SLEEP_S})
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        sim.create(1, timeout=CLIENT_TIMEOUT_S)
    assert sim.count() == 0  # the server is still sleeping: nothing written yet
    assert wait_for(lambda: sim.count() == 1)  # ... and then the write happens anyway
    assert time.monotonic() - started >= SERVER_SLEEP_S
    assert wait_for(lambda: any(e.get("fault") == "timeout" for e in sim.log()))
    entry = next(e for e in sim.log() if e.get("fault") == "timeout")
    assert entry["status"] == 201  # what the server sent (to nobody)


def test_wait_idle_returns_once_a_held_write_has_landed_and_been_logged(sim: Sim) -> None:
    """What the shared ``sims`` fixture waits on before it resets: the write an earlier test left held."""
    sim.faults({"method": "POST", "action": "timeout", "seconds": SERVER_SLEEP_S})
    with pytest.raises(requests.Timeout):
        sim.create(1, timeout=CLIENT_TIMEOUT_S)
    assert sim.state.request_log.in_flight == 1 and sim.count() == 0
    assert sim.state.request_log.wait_idle(timeout=10)
    assert sim.count() == 1 and [e.get("fault") for e in sim.log()] == ["timeout"]


def test_drop_fault_answers_504_late_and_commits_nothing(sim: Sim) -> None:
    sim.faults({"method": "POST", "action": "drop", "seconds": 0.3})
    started = time.monotonic()
    r = sim.create(1)
    assert time.monotonic() - started >= 0.3
    assert r.status_code == 504
    assert r.json() == sim.error_body(504, "Gateway Timeout")
    assert sim.count() == 0
    assert sim.log()[-1]["status"] == 504 and sim.log()[-1]["fault"] == "drop"


def test_drop_with_a_short_client_timeout_still_commits_nothing(sim: Sim) -> None:
    sim.faults({"method": "POST", "action": "drop", "seconds": 0.3})
    with pytest.raises(requests.Timeout):
        sim.create(1, timeout=CLIENT_TIMEOUT_S)
    assert wait_for(lambda: bool(sim.log()))
    assert sim.count() == 0


def test_commit_then_timeout_commits_before_the_client_times_out(sim: Sim) -> None:
    sim.faults({"method": "POST", "action": "commit_then_timeout", "seconds": SERVER_SLEEP_S})
    with pytest.raises(requests.Timeout):
        sim.create(1, timeout=CLIENT_TIMEOUT_S)
    assert sim.count() == 1  # visible at once, although the client saw only a timeout
    # A retry without a fault is a second create: GHL refuses the duplicate, Shift4Shop too.
    sim.state.faults.clear()
    assert sim.create(1).status_code == 400
    assert sim.count() == 1


def test_latency_delays_one_request_while_the_server_keeps_serving_others(sim: Sim) -> None:
    sim.seed(1)
    sim.faults({"method": "POST", "action": "latency", "seconds": 0.5})
    done: dict[str, float] = {}

    def slow() -> None:
        started = time.monotonic()
        assert sim.create(1).status_code == 201
        done["slow"] = time.monotonic() - started

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert requests.get(sim.url + sim.list_path, headers=sim.headers(), params=_loc(sim), timeout=5).ok
    fast = time.monotonic() - started
    thread.join(5)
    assert done["slow"] >= 0.5
    assert fast < 0.3  # asyncio.sleep: the event loop was free
    assert sim.count() == 2


def _loc(sim: Sim) -> dict[str, str]:
    return {"locationId": LOC} if sim.name == "ghl" else {}


def test_shift4shop_varied_error_bodies_reach_injected_500s_but_not_the_admin_api(s4s: Sim) -> None:
    s4s.state.configure(error_bodies="varied")
    s4s.faults({"method": "POST", "action": "status", "status": 500, "retry_after": 3})
    answers = [s4s.create(i) for i in range(3)]
    assert [r.status_code for r in answers] == [500] * 3
    assert all(r.headers["Retry-After"] == "3" for r in answers)  # the fault's headers survive
    assert answers[0].json() == s4s.error_body(500, "An error has occurred.")
    assert (answers[1].content, answers[1].headers["Content-Length"]) == (b"", "0")
    assert answers[2].headers["Content-Type"].startswith("text/html") and "<html>" in answers[2].text
    assert s4s.count() == 0
    refused = requests.post(f"{s4s.url}/_sim/faults", json={"rules": [{"action": "explode"}]}, timeout=5)
    assert refused.status_code == 400 and refused.json()[0]["Key"] == "Error"  # admin answers stay JSON


# ----- malformed / truncated / empty_page / repeat_page ------------------------------------------


def test_malformed_answers_200_html_after_processing(sim: Sim) -> None:
    sim.faults({"method": "POST", "action": "malformed"})
    r = sim.create(1)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.content == MALFORMED_BODY
    with pytest.raises(ValueError):
        r.json()
    assert sim.count() == 1  # processed
    assert sim.log()[-1]["status"] == 200 and sim.log()[-1]["fault"] == "malformed"


def test_truncated_answers_the_first_half_of_the_real_body(sim: Sim) -> None:
    sim.seed(3)
    real = sim.list()
    sim.faults({"method": "GET", "action": "truncated"})
    r = sim.list()
    assert r.status_code == real.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.content == real.content[: len(real.content) // 2]
    assert int(r.headers["content-length"]) == len(r.content)
    with pytest.raises(ValueError):
        r.json()


def test_empty_page_on_ghl_search_keeps_total_and_on_the_list_keeps_meta(ghl: Sim) -> None:
    ghl.seed(5)
    body = {"locationId": LOC, "pageLimit": 2}
    real_search = ghl.call("POST", "/contacts/search", json=body).json()
    real_list = ghl.list(limit=2).json()
    ghl.faults({"path": "^/contacts/", "action": "empty_page"})
    search = ghl.call("POST", "/contacts/search", json=body)
    listed = ghl.list(limit=2)
    assert search.status_code == listed.status_code == 200
    assert search.json() == {"contacts": [], "total": 5} == {**real_search, "contacts": []}
    assert listed.json() == {**real_list, "contacts": []}
    assert listed.json()["meta"]["nextPageUrl"]  # a page that claims there is more


def test_empty_page_on_shift4shop_list_is_an_empty_200_array(s4s: Sim) -> None:
    s4s.seed(3)
    s4s.faults({"method": "GET", "path": "(?i)/customers$", "action": "empty_page"})
    r = s4s.list()
    assert (r.status_code, r.json()) == (200, [])
    # countonly is an object without a list: unchanged.
    assert s4s.list(countonly=1).json() == {"TotalCount": 3}
    # Errors are not pages: a 404 stays a 404.
    assert s4s.call("GET", "/3dCartWebAPI/v1/Customers/999").status_code == 404


def test_repeat_page_answers_the_first_search_page_again(ghl: Sim) -> None:
    ghl.seed(6)
    first = ghl.call("POST", "/contacts/search", json={"locationId": LOC, "pageLimit": 2}).json()["contacts"]
    cursor = {"locationId": LOC, "pageLimit": 2, "searchAfter": first[-1]["searchAfter"]}
    second = ghl.call("POST", "/contacts/search", json=cursor).json()["contacts"]
    assert [c["id"] for c in second] != [c["id"] for c in first]
    ghl.faults({"method": "POST", "path": "^/contacts/search$", "action": "repeat_page", "count": 1})
    repeated = ghl.call("POST", "/contacts/search", json=cursor).json()["contacts"]
    assert [c["id"] for c in repeated] == [c["id"] for c in first]
    assert ghl.call("POST", "/contacts/search", json=cursor).json()["contacts"] == second  # count spent


def test_repeat_page_on_cursor_lists_of_both_simulators(sim: Sim) -> None:
    sim.seed(6)
    if sim.name == "ghl":
        page1 = sim.list(limit=2).json()
        params = {"limit": 2, "startAfter": page1["meta"]["startAfter"], "startAfterId": page1["meta"]["startAfterId"]}
        first = page1["contacts"]
    else:
        params = {"limit": 2, "offset": 3}
        first = sim.list(limit=2).json()
    assert sim.list(**params).json() != first
    sim.faults({"method": "GET", "action": "repeat_page"})
    repeated = sim.list(**params).json()
    assert (repeated["contacts"] if sim.name == "ghl" else repeated) == first
    assert sim.log()[-1]["fault"] == "repeat_page"


# ----- firing: order, after, count, rate and seed ------------------------------------------------


def test_after_and_count_choose_which_matching_requests_fail(sim: Sim) -> None:
    sim.seed(1)
    sim.faults({"method": "GET", "action": "status", "status": 500, "after": 2, "count": 2})
    assert [sim.list().status_code for _ in range(6)] == [200, 200, 500, 500, 200, 200]
    rule = sim.state.faults.rules()[0]
    assert (rule["matched"], rule["fires"]) == (6, 2)


def test_first_rule_that_fires_wins_and_a_spent_rule_falls_through(sim: Sim) -> None:
    sim.seed(1)
    sim.faults(
        {"method": "POST", "action": "status", "status": 500},  # never matches a GET
        {"method": "GET", "action": "status", "status": 502, "count": 1},
        {"action": "status", "status": 503, "count": 1},
    )
    assert [sim.list().status_code for _ in range(3)] == [502, 503, 200]
    assert [f["rule"] for f in sim.state.faults.fired()] == [1, 2]


def _pattern(sim: Sim, seed: int, n: int = 30) -> list[int]:
    sim.faults({"method": "GET", "action": "status", "status": 503, "rate": 0.5}, seed=seed)
    return [sim.list().status_code for _ in range(n)]


def test_rate_is_repeatable_for_a_seed(sim: Sim) -> None:
    sim.seed(1)
    first = _pattern(sim, seed=7)
    assert first == _pattern(sim, seed=7)
    assert first != _pattern(sim, seed=8)
    assert 5 < first.count(503) < 25
    sim.faults({"action": "status", "rate": 0.0})
    assert sim.list().status_code == 200


def test_fault_plan_alone_is_deterministic() -> None:
    def run(seed: int) -> list[bool]:
        plan = FaultPlan()
        plan.set([{"path": "/x", "action": "status", "rate": 0.3}], seed=seed)
        return [plan.decide("GET", "/x") is not None for _ in range(200)]

    assert run(1) == run(1) != run(2)
    assert 30 < sum(run(1)) < 90


# ----- admin endpoints, validation, reset ---------------------------------------------------------


def test_admin_endpoints_set_read_and_clear_the_plan(sim: Sim) -> None:
    sim.seed(1)
    r = sim.faults({"method": "get", "path": "^/nowhere$", "action": "storm", "count": 2}, seed=3)
    storm = {"action": "status", "method": "GET", "path": "^/nowhere$", "rate": 1.0, "after": 0, "count": 2}
    assert r.json() == {"rules": [{**storm, "status": 429, "matched": 0, "fires": 0}], "seed": 3}
    # A catch-all rule never touches /_sim: the admin API stays reachable.
    sim.faults({"action": "status", "status": 500})
    assert sim.list().status_code == 500
    got = requests.get(f"{sim.url}/_sim/faults", timeout=5).json()
    assert got["seed"] == 0 and got["rules"][0]["fires"] == 1
    assert [(f["rule"], f["action"], f["method"], f["path"]) for f in got["fired"]] == [
        (0, "status", "GET", sim.list_path)
    ]
    assert requests.delete(f"{sim.url}/_sim/faults", timeout=5).json() == {"cleared": True}
    assert requests.get(f"{sim.url}/_sim/faults", timeout=5).json() == {"rules": [], "seed": 0, "fired": []}
    assert sim.list().status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"rules": [{"action": "explode"}]},
        {"rules": [{"action": "status", "status": 99}]},
        {"rules": [{"action": "status", "rate": 1.5}]},
        {"rules": [{"action": "status", "count": -1}]},
        {"rules": [{"action": "status", "path": "("}]},
        {"rules": [{"action": "status", "bogus": 1}]},
        {"rules": [{"action": "malformed", "seconds": 1}]},
        {"rules": [{"action": "timeout", "status": 500}]},
        {"rules": [], "seed": "x"},
        {"rules": [], "extra": 1},
        {"rules": {"action": "status"}},
    ],
)
def test_invalid_plans_are_refused_with_400_and_leave_the_old_plan(sim: Sim, body: dict) -> None:
    sim.faults({"action": "status", "status": 500, "path": "^/nowhere$"})
    r = requests.post(f"{sim.url}/_sim/faults", json=body, timeout=5)
    assert r.status_code == 400
    message = r.json()["message"] if sim.name == "ghl" else r.json()[0]["Message"]
    assert message
    assert sim.state.faults.rules()[0]["path"] == "^/nowhere$"


def test_reset_clears_the_plan_over_http_and_in_python(sim: Sim) -> None:
    sim.faults({"action": "status"})
    assert requests.post(f"{sim.url}/_sim/reset", timeout=5).ok
    assert sim.state.faults.rules() == [] and sim.state.faults.fired() == []
    sim.state.faults.set([{"action": "status"}])
    sim.state.reset()
    assert sim.state.faults.rules() == []


def test_faults_reach_the_ghl_token_endpoint(ghl: Sim) -> None:
    refresh = ghl.state.add_oauth_client("app-faults", "secret", location_id=LOC)
    ghl.faults({"path": "^/oauth/token$", "action": "status", "status": 503, "count": 1})
    form = {"client_id": "app-faults", "client_secret": "secret", "grant_type": "refresh_token"}
    r = requests.post(f"{ghl.url}/oauth/token", data={**form, "refresh_token": refresh}, timeout=5)
    assert r.status_code == 503
    r = requests.post(f"{ghl.url}/oauth/token", data={**form, "refresh_token": refresh}, timeout=5)
    assert r.status_code == 200  # the faulted call did not spend the refresh token
    assert json.loads(r.content)["token_type"] == "Bearer"
