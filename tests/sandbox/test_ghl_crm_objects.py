"""The GHL simulator's contact children (tasks, notes, appointments) and calendars, over real HTTP.

One simulator runs for the module; every test starts from an emptied state (fixture ``sim``) with
one contact of the home location, rate limits off and the location time zone ``America/New_York``.
See ``sandbox/ghl/BEHAVIOR.md`` (Tasks, Notes, Calendars and events) and ghl-api.md §3-§5.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from sandbox.common import ServerThread
from sandbox.ghl import ALL_SCOPES, GhlState, create_app
from sandbox.ghl.state import APPOINTMENT_STATUSES, iso_ms, parse_ms
from sandbox.profiles import apply_profile
from sandbox.seed import generate_contacts, generate_crm

LOC = "ve9EPM428h8vShlRW1KT"
OTHER_LOC = "otherLoc000000000001"
TOKEN = "pit-crm-1111-2222-3333-444444444444"
CONTACTS_ONLY = "pit-crm-contacts-only-3333-444444444444"
READONLY = "pit-crm-readonly-2222-3333-444444444444"
OTHER_TOKEN = "pit-crm-otherloc-2222-3333-44444444444"
VERSION = "2021-07-28"
CAL_VERSION = "2021-04-15"
CID = "c0000000000000000001"
OTHER_CID = "c0000000000000000002"
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ISO_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
ZONELESS = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
T0 = 1_750_000_000_000  # 2025-06-15T15:06:40Z (EDT, UTC-4, in America/New_York)
HOUR = 3_600_000
TASK_KEYS = {"id", "title", "body", "assignedTo", "dueDate", "completed", "contactId"}
NOTE_KEYS = {"id", "body", "userId", "dateAdded", "contactId", "title", "color", "pinned"}
RATE_HEADERS = ("X-RateLimit-Limit-Daily", "X-RateLimit-Remaining", "X-RateLimit-Max")
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def contact(cid: str, **extra: Any) -> dict:
    doc = {
        "id": cid,
        "locationId": LOC,
        "firstName": "Ann",
        "lastName": "Lee",
        "email": f"{cid}@example.com",
        "dateAdded": iso_ms(T0 - 100 * HOUR),
        "dateUpdated": iso_ms(T0 - 100 * HOUR),
    }
    doc.update(extra)
    return doc


CALENDAR = {
    "id": "cal00000000000000001",
    "locationId": LOC,
    "groupId": "grp00000000000000001",
    "name": "Sales Consultation",
    "calendarType": "round_robin",
    "slotDuration": 45,
    "slotDurationUnit": "mins",
    "teamMembers": [{"userId": "user0000000000000001"}, {"userId": "user0000000000000002"}],
    "isActive": True,
}


class Sim:
    def __init__(self, state: GhlState, url: str):
        self.state = state
        self.url = url
        self.http = requests.Session()

    def call(
        self, method: str, path: str, *, token: str | None = TOKEN, version: str | None = VERSION, **kw: Any
    ) -> requests.Response:
        h = {}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if version is not None:
            h["Version"] = version
        return self.http.request(method, self.url + path, headers=h, timeout=30, **kw)

    def cal(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("version", CAL_VERSION)
        return self.call(method, path, **kw)

    def task(self, cid: str = CID, **body: Any) -> dict:
        body = {"title": "Call back", "dueDate": "2025-07-01T10:00:00Z", "completed": False, **body}
        r = self.call("POST", f"/contacts/{cid}/tasks", json=body)
        assert r.status_code == 201, r.text
        return r.json()["task"]

    def note(self, cid: str = CID, **body: Any) -> dict:
        r = self.call("POST", f"/contacts/{cid}/notes", json={"body": "hello", **body})
        assert r.status_code == 201, r.text
        return r.json()["note"]

    def search_tasks(self, token: str = TOKEN, location: str = LOC, **body: Any) -> requests.Response:
        return self.call("POST", f"/locations/{location}/tasks/search", token=token, json=body)

    def events(self, **params: Any) -> requests.Response:
        params.setdefault("locationId", LOC)
        return self.cal("GET", "/calendars/events", params=params)

    def book(self, **body: Any) -> requests.Response:
        body = {"calendarId": CALENDAR["id"], "locationId": LOC, "contactId": CID, **body}
        body.setdefault("startTime", "2025-07-01T10:00:00-04:00")
        return self.cal("POST", "/calendars/events/appointments", json=body)


@pytest.fixture(scope="module")
def server():
    state = GhlState(
        location_id=LOC,
        tokens={
            TOKEN: {"location_id": LOC, "scopes": ALL_SCOPES},
            CONTACTS_ONLY: {"location_id": LOC, "scopes": ["contacts.readonly", "contacts.write"]},
            READONLY: {"location_id": LOC, "scopes": ["contacts.readonly"]},
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
    state.configure(
        rate_limit=False, index_lag_s=0.0, latency_s=0.0, touch_contact_on_child_write=False,
        location_timezone="America/New_York",
    )  # fmt: skip
    state.request_log.clear()
    state.load_contacts([contact(CID), contact(OTHER_CID, businessId="641c094001436dbc2081e642")])
    state.load_calendars([CALENDAR])
    return Sim(state, srv.url)


# --------------------------------------------------------------------------------------------------
# tasks


def test_task_crud_status_codes_and_shapes(sim: Sim):
    r = sim.call(
        "POST",
        f"/contacts/{CID}/tasks",
        json={"title": "First Task", "body": "loram ipsum", "dueDate": "2020-10-25T11:00:00Z", "completed": True},
    )
    assert r.status_code == 201
    task = r.json()["task"]
    assert set(r.json()) == {"task"} and set(task) <= TASK_KEYS
    assert re.fullmatch(r"[A-Za-z0-9]{20}", task["id"])
    assert task["dueDate"] == "2020-10-25T11:00:00.000Z" and ISO_MS.match(task["dueDate"])
    assert (task["title"], task["body"], task["completed"], task["contactId"]) == (
        "First Task",
        "loram ipsum",
        True,
        CID,
    )
    tid = task["id"]

    assert sim.call("GET", f"/contacts/{CID}/tasks/{tid}").json() == {"task": task}
    r = sim.call(
        "PUT", f"/contacts/{CID}/tasks/{tid}", json={"title": "Renamed", "assignedTo": "u1", "completed": False}
    )
    assert r.status_code == 200
    assert r.json()["task"] == {**task, "title": "Renamed", "assignedTo": "u1", "completed": False}
    r = sim.call("PUT", f"/contacts/{CID}/tasks/{tid}", json={"dueDate": "2020-10-26T09:30:00+02:00"})
    assert r.json()["task"]["dueDate"] == "2020-10-26T07:30:00.000Z"
    r = sim.call("PUT", f"/contacts/{CID}/tasks/{tid}/completed", json={"completed": True})
    assert (r.status_code, r.json()["task"]["completed"]) == (200, True)
    second = sim.task(dueDate="2020-01-01T00:00:00.000Z")
    listed = sim.call("GET", f"/contacts/{CID}/tasks").json()
    assert [t["id"] for t in listed["tasks"]] == [second["id"], tid]  # dueDate order
    assert sim.call("GET", f"/contacts/{OTHER_CID}/tasks").json() == {"tasks": []}

    r = sim.call("DELETE", f"/contacts/{CID}/tasks/{tid}")
    assert (r.status_code, r.json()) == (200, {"succeded": True})
    assert sim.call("GET", f"/contacts/{CID}/tasks/{tid}").status_code == 400
    assert [t["id"] for t in sim.state.all_tasks()] == [second["id"]]


def test_task_validation_422(sim: Sim):
    r = sim.call("POST", f"/contacts/{CID}/tasks", json={})
    body = r.json()
    assert r.status_code == 422 and body["error"] == "Unprocessable Entity" and isinstance(body["message"], list)
    for field in ("title", "dueDate", "completed"):
        assert f"{field} should not be empty" in body["message"], body
    for bad, needle in (
        ({"completed": "yes"}, "completed must be a boolean value"),
        ({"dueDate": "next tuesday"}, "dueDate must be a valid ISO 8601 date string"),
        ({"dueDate": "1719828000000"}, "dueDate must be a valid ISO 8601 date string"),
        ({"title": 7}, "title must be a string"),
        ({"priority": "high"}, "property priority should not exist"),
    ):
        payload = {"title": "t", "dueDate": "2025-01-01T00:00:00Z", "completed": False, **bad}
        r = sim.call("POST", f"/contacts/{CID}/tasks", json=payload)
        assert r.status_code == 422 and needle in r.json()["message"], (bad, r.text)
    assert sim.state.all_tasks() == []
    tid = sim.task()["id"]
    for path, payload in (
        (f"/contacts/{CID}/tasks/{tid}", {"status": "done"}),
        (f"/contacts/{CID}/tasks/{tid}", {"completed": "true"}),
        (f"/contacts/{CID}/tasks/{tid}/completed", {}),
        (f"/contacts/{CID}/tasks/{tid}/completed", {"completed": True, "title": "x"}),
    ):
        r = sim.call("PUT", path, json=payload)
        assert r.status_code == 422 and isinstance(r.json()["message"], list), (path, payload, r.text)


def test_task_unknown_contact_or_task_is_400(sim: Sim):
    r = sim.call("GET", "/contacts/nope0000000000000000/tasks")
    assert (r.status_code, r.json()) == (
        400,
        {"statusCode": 400, "message": "Contact with id nope0000000000000000 not found"},
    )
    r = sim.call("POST", "/contacts/nope0000000000000000/tasks", json={"title": "t"})
    assert r.status_code == 400  # the contact is looked up before the body is validated
    r = sim.call("GET", f"/contacts/{CID}/tasks/task0000000000000000")
    assert (r.status_code, r.json()["message"]) == (400, "Task with id task0000000000000000 not found")
    tid = sim.task()["id"]
    for method, suffix, payload in (
        ("GET", "", None),
        ("PUT", "", {"title": "x"}),
        ("PUT", "/completed", {"completed": True}),
        ("DELETE", "", None),
    ):  # another contact's path does not reach the task
        r = sim.call(method, f"/contacts/{OTHER_CID}/tasks/{tid}{suffix}", json=payload)
        assert r.status_code == 400, (method, suffix)


def test_task_search_filters_order_and_paging(sim: Sim):
    c3 = "c0000000000000000003"
    sim.state.load_contacts([contact(c3)])
    made = [
        sim.task(CID, title="Send quote", dueDate="2025-03-01T00:00:00Z", assignedTo="userA"),
        sim.task(CID, title="Call back", body="about the QUOTE", dueDate="2025-01-01T00:00:00Z", completed=True),
        sim.task(OTHER_CID, title="Ship", dueDate="2025-02-01T00:00:00Z", assignedTo="userB"),
        sim.task(c3, title="Visit", dueDate="2024-12-01T00:00:00Z", assignedTo="userA", completed=True),
    ]

    def ids(**body: Any) -> list[str]:
        r = sim.search_tasks(**body)
        assert r.status_code == 200, r.text
        assert set(r.json()) == {"tasks"}
        for t in r.json()["tasks"]:
            assert set(t) <= TASK_KEYS
        return [t["id"] for t in r.json()["tasks"]]

    # stable order: contactId, then dueDate, then id
    expected = [t["id"] for t in sorted(made, key=lambda t: (t["contactId"], t["dueDate"], t["id"]))]
    assert ids() == expected
    assert ids(contactId=[OTHER_CID, CID]) == [made[1]["id"], made[0]["id"], made[2]["id"]]
    assert ids(completed=True) == [made[1]["id"], made[3]["id"]]
    assert ids(completed=False, assignedTo=["userA", "userB"]) == [made[0]["id"], made[2]["id"]]
    assert ids(query="quote") == [made[1]["id"], made[0]["id"]]  # title or body, case-insensitive
    assert ids(businessId="641c094001436dbc2081e642") == [made[2]["id"]]
    assert ids(contactId=[]) == expected  # an empty list does not filter
    # skip/limit paging
    assert ids(limit=2) == expected[:2]
    assert ids(limit=2, skip=2) == expected[2:]
    assert ids(skip=4) == []
    # default limit is 25
    sim.state.load_tasks(
        [{"id": f"t{i:019d}", "title": "bulk", "dueDate": iso_ms(T0 + i), "contactId": c3} for i in range(30)]
    )
    assert len(ids()) == 25 and len(ids(skip=25)) == 9
    # the location's tasks only
    r = sim.search_tasks(token=OTHER_TOKEN, location=OTHER_LOC)
    assert r.status_code == 200 and r.json() == {"tasks": []}


def test_task_search_caps_and_validation(sim: Sim):
    assert sim.search_tasks(limit=100).status_code == 200
    assert sim.search_tasks(contactId=[f"id{i}" for i in range(100)]).status_code == 200
    for body, needle in (
        ({"limit": 101}, "limit must not be greater than 100"),
        ({"limit": 0}, "limit must not be less than 1"),
        ({"skip": -1}, "skip must not be less than 0"),
        ({"limit": "10"}, "limit must be a number conforming to the specified constraints"),
        ({"contactId": [f"id{i}" for i in range(101)]}, "contactId must contain no more than 100 elements"),
        ({"contactId": CID}, "contactId must be an array"),
        ({"assignedTo": [1]}, "each value in assignedTo must be a string"),
        ({"completed": "true"}, "completed must be a boolean value"),
        ({"locationId": LOC}, "property locationId should not exist"),
    ):
        r = sim.search_tasks(**body)
        assert r.status_code == 422, (body, r.text)
        assert isinstance(r.json()["message"], list) and needle in r.json()["message"], (body, r.json())


def test_task_search_scope_and_location(sim: Sim):
    # scope first: a token without locations/tasks.readonly gets 401 even for another location
    r = sim.search_tasks(token=CONTACTS_ONLY, location=OTHER_LOC)
    assert (r.status_code, r.json()["message"]) == (401, "The token is not authorized for this scope.")
    r = sim.search_tasks(location=OTHER_LOC)
    assert (r.status_code, r.json()) == (
        403,
        {"statusCode": 403, "message": "The token does not have access to this location."},
    )
    r = sim.search_tasks(location=OTHER_LOC, limit=1000)  # location before body checks
    assert r.status_code == 403


def test_child_routes_scope_and_location(sim: Sim):
    tid, nid = sim.task()["id"], sim.note()["id"]
    # read-only token: reads pass, writes are 401
    assert sim.call("GET", f"/contacts/{CID}/tasks", token=READONLY).status_code == 200
    assert sim.call("GET", f"/contacts/{CID}/notes/{nid}", token=READONLY).status_code == 200
    assert sim.call("GET", f"/contacts/{CID}/appointments", token=READONLY).status_code == 200
    for method, path, payload in (
        ("POST", f"/contacts/{CID}/tasks", {"title": "t", "dueDate": "2025-01-01T00:00:00Z", "completed": False}),
        ("PUT", f"/contacts/{CID}/tasks/{tid}/completed", {"completed": True}),
        ("DELETE", f"/contacts/{CID}/tasks/{tid}", None),
        ("POST", f"/contacts/{CID}/notes", {"body": "x"}),
        ("DELETE", f"/contacts/{CID}/notes/{nid}", None),
    ):
        r = sim.call(method, path, token=READONLY, json=payload)
        assert (r.status_code, r.json()["message"]) == (401, "The token is not authorized for this scope."), path
    # another location's token: 403 by the contact's owner
    for path in (f"/contacts/{CID}/tasks", f"/contacts/{CID}/notes", f"/contacts/{CID}/appointments"):
        assert sim.call("GET", path, token=OTHER_TOKEN).status_code == 403, path
    assert sim.call("GET", f"/contacts/{CID}/tasks/{tid}", token=OTHER_TOKEN).status_code == 403
    # gateway rules hold on the new routes
    r = sim.call("GET", f"/contacts/{CID}/tasks", version=None)
    assert (r.status_code, r.json()["message"]) == (401, "version header was not found.")
    r = sim.call("PATCH", f"/contacts/{CID}/tasks/{tid}")
    assert (r.status_code, r.json()["message"]) == (404, f"Cannot PATCH /contacts/{CID}/tasks/{tid}")
    r = sim.call("GET", f"/contacts/{CID}/notes")
    assert all(r.headers.get(h, "").isdigit() for h in RATE_HEADERS) and r.headers["x-trace-id"]


# --------------------------------------------------------------------------------------------------
# notes


def test_note_crud_keeps_long_html_verbatim(sim: Sim):
    html = "<p>Called <b>back</b></p>" + "<p>" + "x &amp; y " * 7_000 + "</p>"
    html = html[:70_000]
    assert len(html) == 70_000
    r = sim.call(
        "POST",
        f"/contacts/{CID}/notes",
        json={"body": html, "userId": "GCs5KuzPqTls7vWclkEV", "title": "Call", "color": "#FFAA00"},
    )
    assert r.status_code == 201
    note = r.json()["note"]
    assert set(note) == NOTE_KEYS and note["body"] == html
    assert (note["contactId"], note["pinned"], note["color"]) == (CID, False, "#FFAA00")
    assert ISO_MS.match(note["dateAdded"])
    nid = note["id"]
    assert sim.call("GET", f"/contacts/{CID}/notes/{nid}").json() == {"note": note}

    r = sim.call("PUT", f"/contacts/{CID}/notes/{nid}", json={"pinned": True, "title": None})
    assert r.status_code == 200
    updated = r.json()["note"]
    assert updated["pinned"] is True and "title" not in updated and updated["dateAdded"] == note["dateAdded"]

    time.sleep(0.002)
    newer = sim.note(body="<ul><li>second</li></ul>")
    listed = sim.call("GET", f"/contacts/{CID}/notes").json()
    assert set(listed) == {"notes"} and [n["id"] for n in listed["notes"]] == [newer["id"], nid]  # newest first

    r = sim.call("DELETE", f"/contacts/{CID}/notes/{nid}")
    assert (r.status_code, r.json()) == (200, {"succeded": True})
    r = sim.call("GET", f"/contacts/{CID}/notes/{nid}")
    assert (r.status_code, r.json()["message"]) == (400, f"Note with id {nid} not found")
    assert sim.call("GET", f"/contacts/{OTHER_CID}/notes/{newer['id']}").status_code == 400


def test_note_validation_422_and_unknown_contact_400(sim: Sim):
    for payload, needle in (
        ({}, "body should not be empty"),
        ({"body": ""}, "body should not be empty"),
        ({"body": 5}, "body must be a string"),
        ({"body": "x", "pinned": "yes"}, "pinned must be a boolean value"),
        ({"body": "x", "tags": ["a"]}, "property tags should not exist"),
    ):
        r = sim.call("POST", f"/contacts/{CID}/notes", json=payload)
        assert r.status_code == 422 and needle in r.json()["message"], (payload, r.text)
    nid = sim.note()["id"]
    r = sim.call("PUT", f"/contacts/{CID}/notes/{nid}", json={"bogus": 1})
    assert r.status_code == 422 and r.json()["message"] == ["property bogus should not exist"]
    r = sim.call("POST", "/contacts/nope0000000000000000/notes", json={"body": "x"})
    assert (r.status_code, r.json()["message"]) == (400, "Contact with id nope0000000000000000 not found")


def test_deleting_a_contact_drops_its_tasks_and_notes(sim: Sim):
    sim.task(), sim.note(), sim.task(OTHER_CID)
    assert sim.call("DELETE", f"/contacts/{CID}").status_code == 200
    assert [t["contactId"] for t in sim.state.all_tasks()] == [OTHER_CID] and sim.state.all_notes() == []


# --------------------------------------------------------------------------------------------------
# calendars, events, appointments


def load_events(sim: Sim) -> list[dict]:
    """Three events on CALENDAR around T0, one on a second calendar of another group."""
    other_cal = {**CALENDAR, "id": "cal00000000000000002", "groupId": "grp00000000000000002", "name": "Demo"}
    sim.state.load_calendars([other_cal])
    events = [
        {"id": "ev01", "calendarId": CALENDAR["id"], "contactId": CID, "startTime": T0 - 2 * HOUR, "endTime": T0},
        {
            "id": "ev02",
            "calendarId": CALENDAR["id"],
            "contactId": CID,
            "startTime": iso_ms(T0 - HOUR),
            "endTime": iso_ms(T0 + HOUR),
            "appointmentStatus": "showed",
            "assignedUserId": "user0000000000000002",
            "users": ["user0000000000000009"],
            "notes": "brought samples",
        },
        {
            "id": "ev03",
            "calendarId": CALENDAR["id"],
            "contactId": OTHER_CID,
            "startTime": T0 + 3 * HOUR,
            "appointmentStatus": "cancelled",
        },
        {"id": "ev04", "calendarId": other_cal["id"], "contactId": CID, "startTime": T0 + HOUR, "title": "Demo"},
    ]
    sim.state.load_events(events)
    return events


def test_calendars_list(sim: Sim):
    draft = {**CALENDAR, "id": "cal00000000000000003", "name": "Draft", "isActive": False, "groupId": "g9"}
    elsewhere = {**CALENDAR, "id": "cal00000000000000004", "locationId": OTHER_LOC}
    sim.state.load_calendars([draft, elsewhere])
    r = sim.cal("GET", f"/calendars/?locationId={LOC}")
    assert r.status_code == 200 and set(r.json()) == {"calendars"}
    cals = r.json()["calendars"]
    assert [c["id"] for c in cals] == [draft["id"], CALENDAR["id"]]  # by name; other locations excluded
    assert all({"id", "name", "locationId"} <= set(c) for c in cals)
    assert [c["id"] for c in sim.cal("GET", f"/calendars?locationId={LOC}&showDrafted=false").json()["calendars"]] == [
        CALENDAR["id"]
    ]
    assert [c["id"] for c in sim.cal("GET", f"/calendars/?locationId={LOC}&groupId=g9").json()["calendars"]] == [
        draft["id"]
    ]
    assert sim.cal("GET", "/calendars/").status_code == 422
    assert sim.cal("GET", f"/calendars/?locationId={LOC}&showDrafted=maybe").status_code == 422
    assert sim.cal("GET", f"/calendars/?locationId={OTHER_LOC}").status_code == 403
    r = sim.cal("GET", f"/calendars/?locationId={OTHER_LOC}", token=CONTACTS_ONLY)
    assert (r.status_code, r.json()["message"]) == (401, "The token is not authorized for this scope.")


@pytest.mark.parametrize("version", ["v3", "2023-02-21", "2021-07-28", "2021-04-15"])
def test_calendar_routes_accept_every_published_version(sim: Sim, version: str):
    assert sim.cal("GET", f"/calendars/?locationId={LOC}", version=version).status_code == 200
    params = {"locationId": LOC, "calendarId": CALENDAR["id"], "startTime": 0, "endTime": T0}
    assert sim.cal("GET", "/calendars/events", params=params, version=version).status_code == 200
    r = sim.cal("GET", f"/calendars/?locationId={LOC}", version=None)
    assert (r.status_code, r.json()["message"]) == (401, "version header was not found.")
    assert sim.cal("GET", f"/calendars/?locationId={LOC}", version="legacy").status_code == 401


def test_calendar_events_window_overlap_and_offsets(sim: Sim):
    load_events(sim)

    def ids(**params: Any) -> list[str]:
        r = sim.events(**params)
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()["events"]]

    cal = CALENDAR["id"]
    # ev01 ends exactly at T0: not in a window starting at T0; ev02 spans T0: in it
    assert ids(calendarId=cal, startTime=T0, endTime=T0 + 10 * HOUR) == ["ev02", "ev03"]
    assert ids(calendarId=cal, startTime=T0 - 1, endTime=T0 + 10 * HOUR) == ["ev01", "ev02", "ev03"]
    assert ids(calendarId=cal, startTime=0, endTime=T0 + 3 * HOUR) == ["ev01", "ev02", "ev03"]  # end inclusive
    assert ids(calendarId=cal, startTime=0, endTime=T0 + 3 * HOUR - 1) == ["ev01", "ev02"]
    assert ids(groupId="grp00000000000000002", startTime=0, endTime=T0 * 2) == ["ev04"]
    # userId: the assigned user or one of the secondary users
    assert ids(userId="user0000000000000009", startTime=0, endTime=T0 * 2) == ["ev02"]
    assert ids(userId="user0000000000000001", startTime=0, endTime=T0 * 2) == ["ev01", "ev04", "ev03"]
    assert ids(calendarId="unknownCalendar00000", startTime=0, endTime=T0 * 2) == []

    ev = sim.events(calendarId=cal, startTime=T0, endTime=T0 + 1).json()["events"][0]
    required = {"id", "title", "calendarId", "locationId", "contactId", "groupId", "appointmentStatus"}
    required |= {"assignedUserId", "users", "startTime", "endTime", "dateAdded", "dateUpdated"}
    assert required <= set(ev)
    assert ev["startTime"] == "2025-06-15T10:06:40-04:00" and ev["endTime"] == "2025-06-15T12:06:40-04:00"
    assert all(ISO_OFFSET.match(ev[k]) for k in ("startTime", "endTime", "dateAdded", "dateUpdated"))
    assert ev["groupId"] == CALENDAR["groupId"] and ev["users"] == ["user0000000000000009"]
    assert parse_ms(ev["startTime"]) == T0 - HOUR
    sim.state.configure(location_timezone="Asia/Kolkata")
    ev = sim.events(calendarId=cal, startTime=T0, endTime=T0 + 1).json()["events"][0]
    assert ev["startTime"] == "2025-06-15T19:36:40+05:30"


def test_calendar_events_query_validation(sim: Sim):
    for params, needle in (
        ({"startTime": 0, "endTime": T0}, "Either of calendarId, userId or groupId is required"),
        ({"calendarId": "x", "endTime": T0}, "startTime should not be empty"),
        ({"calendarId": "x", "startTime": "2025-01-01", "endTime": T0}, "startTime must be a number string"),
        ({"calendarId": "x", "startTime": T0, "endTime": T0 - 1}, "endTime must not be less than startTime"),
    ):
        r = sim.events(**params)
        assert r.status_code == 422 and isinstance(r.json()["message"], list), (params, r.text)
        assert any(m.startswith(needle) for m in r.json()["message"]), (params, r.json())
    assert sim.events(locationId="", calendarId="x", startTime=0, endTime=1).status_code == 422
    r = sim.events(locationId=OTHER_LOC, calendarId="x", startTime=0, endTime=1)
    assert r.status_code == 403
    r = sim.cal("GET", "/calendars/events", token=CONTACTS_ONLY, params={"locationId": OTHER_LOC})
    assert (r.status_code, r.json()["message"]) == (401, "The token is not authorized for this scope.")


def test_contact_appointments_use_zoneless_times(sim: Sim):
    load_events(sim)
    r = sim.call("GET", f"/contacts/{CID}/appointments")
    assert r.status_code == 200 and set(r.json()) == {"events"}
    events = r.json()["events"]
    assert [e["id"] for e in events] == ["ev01", "ev02", "ev04"]  # by startTime
    ev = events[1]
    assert ev["startTime"] == "2025-06-15 10:06:40" and ev["endTime"] == "2025-06-15 12:06:40"
    assert all(ZONELESS.match(e[k]) for e in events for k in ("startTime", "endTime", "dateAdded", "dateUpdated"))
    assert (ev["status"], ev["appointmentStatus"], ev["notes"]) == ("showed", "showed", "brought samples")
    assert events[0]["status"] == "booked" and events[0]["appointmentStatus"] == "confirmed"
    assert events[0]["endTime"] == "2025-06-15 11:06:40"  # loaded endTime kept (epoch ms)
    assert events[2]["calendarId"] == "cal00000000000000002" and events[2]["assignedResources"] == []
    assert sim.call("GET", "/contacts/nope0000000000000000/appointments").status_code == 400


def test_appointment_create_update_get_delete(sim: Sim):
    r = sim.book(startTime="2025-07-01T10:00:00-04:00", address="Zoom", assignedUserId="user0000000000000002")
    assert r.status_code == 200, r.text  # the spec declares 200 for this create
    appt = r.json()
    assert {"id", "calendarId", "locationId", "contactId"} <= set(appt)
    assert appt["startTime"] == "2025-07-01T10:00:00-04:00" and appt["endTime"] == "2025-07-01T10:45:00-04:00"
    assert (appt["appointmentStatus"], appt["title"], appt["meetingLocationType"]) == ("confirmed", "Ann Lee", "custom")
    assert appt["assignedUserId"] == "user0000000000000002" and appt["isRecurring"] is False
    eid = appt["id"]

    r = sim.cal("GET", f"/calendars/events/appointments/{eid}")
    assert r.status_code == 200 and set(r.json()) == {"event"}
    event = r.json()["event"]
    assert (event["groupId"], event["contactId"], event["users"]) == (CALENDAR["groupId"], CID, [])
    assert ISO_OFFSET.match(event["dateAdded"])

    # moving keeps the length; status, title change; times with Z are rendered in the location zone
    r = sim.cal(
        "PUT",
        f"/calendars/events/appointments/{eid}",
        json={"startTime": "2025-07-02T18:00:00Z", "appointmentStatus": "showed", "title": "Fitting"},
    )
    assert r.status_code == 200
    moved = r.json()
    assert (moved["startTime"], moved["endTime"]) == ("2025-07-02T14:00:00-04:00", "2025-07-02T14:45:00-04:00")
    assert (moved["appointmentStatus"], moved["title"], moved["id"]) == ("showed", "Fitting", eid)
    r = sim.cal("PUT", f"/calendars/events/appointments/{eid}", json={"endTime": "2025-07-02T13:00:00-04:00"})
    assert r.status_code == 422

    r = sim.cal("DELETE", f"/calendars/events/{eid}", json={"reason": "x"})
    assert r.status_code == 422 and r.json()["message"] == ["property reason should not exist"]
    r = sim.cal("DELETE", f"/calendars/events/{eid}")
    assert (r.status_code, r.json()) == (201, {"succeeded": True})  # correct spelling here, and 201
    r = sim.cal("DELETE", f"/calendars/events/{eid}")
    assert (r.status_code, r.json()["message"]) == (400, f"Event with id {eid} not found")
    assert sim.cal("GET", f"/calendars/events/appointments/{eid}").status_code == 400
    assert sim.state.all_events() == []


def test_appointment_defaults_and_validation(sim: Sim):
    sim.state.load_calendars([{**CALENDAR, "id": "calManual00000000001", "autoConfirm": False, "slotDuration": 1,
                               "slotDurationUnit": "hours"}])  # fmt: skip
    r = sim.book(calendarId="calManual00000000001", startTime="2025-07-01 09:00:00")  # zone-less: location time
    appt = r.json()
    assert r.status_code == 200 and appt["appointmentStatus"] == "new"
    assert (appt["startTime"], appt["endTime"]) == ("2025-07-01T09:00:00-04:00", "2025-07-01T10:00:00-04:00")
    assert appt["assignedUserId"] == "user0000000000000001"  # the calendar's first team member

    r = sim.book(calendarId=None, contactId=None, startTime=None)
    msgs = r.json()["message"]
    assert r.status_code == 422 and {"calendarId should not be empty", "contactId should not be empty"} <= set(msgs)
    for body, needle in (
        ({"appointmentStatus": "booked"}, "appointmentStatus must be one of the following values: "),
        ({"startTime": "soon"}, "startTime must be a valid ISO 8601 date string"),
        ({"endTime": "2025-07-01T09:00:00-04:00"}, "endTime must be later than startTime"),
        ({"meetingLocationType": "skype"}, "meetingLocationType must be one of the following values: "),
        ({"colour": "red"}, "property colour should not exist"),
    ):
        r = sim.book(**body)
        assert r.status_code == 422, (body, r.text)
        assert any(m.startswith(needle) for m in r.json()["message"]), (body, r.json())
    assert sim.book(calendarId="unknownCalendar00000").json() == {
        "statusCode": 400,
        "message": "Calendar with id unknownCalendar00000 not found",
    }
    assert sim.book(contactId="nope0000000000000000").status_code == 400
    r = sim.book(locationId=OTHER_LOC, appointmentStatus="nope")  # location (403) before body checks (422)
    assert r.status_code == 403
    r = sim.cal("POST", "/calendars/events/appointments", token=CONTACTS_ONLY, json={"locationId": OTHER_LOC})
    assert (r.status_code, r.json()["message"]) == (401, "The token is not authorized for this scope.")
    r = sim.cal("PUT", "/calendars/events/appointments/missing0000000000000", json={})
    assert r.status_code == 400
    eid = sim.book().json()["id"]
    assert sim.cal("GET", f"/calendars/events/appointments/{eid}", token=OTHER_TOKEN).status_code == 403
    assert sim.cal("DELETE", f"/calendars/events/{eid}", token=CONTACTS_ONLY).status_code == 401


# --------------------------------------------------------------------------------------------------
# touch_contact_on_child_write


def _date_updated(sim: Sim) -> str:
    return sim.call("GET", f"/contacts/{CID}").json()["contact"]["dateUpdated"]


def test_child_writes_leave_contact_date_updated_alone_by_default(sim: Sim):
    before = _date_updated(sim)
    tid = sim.task()["id"]
    sim.call("PUT", f"/contacts/{CID}/tasks/{tid}/completed", json={"completed": True})
    sim.call("DELETE", f"/contacts/{CID}/tasks/{tid}")
    nid = sim.note()["id"]
    sim.call("PUT", f"/contacts/{CID}/notes/{nid}", json={"body": "changed"})
    eid = sim.book().json()["id"]
    sim.cal("DELETE", f"/calendars/events/{eid}")
    assert _date_updated(sim) == before
    assert sim.state.config()["touch_contact_on_child_write"] is False


def test_child_writes_touch_the_contact_when_switched_on(sim: Sim):
    r = requests.post(sim.url + "/_sim/config", json={"touch_contact_on_child_write": True}, timeout=5)
    assert r.json()["touch_contact_on_child_write"] is True
    stamps = [_date_updated(sim)]

    def write_then_stamp(method: str, path: str, payload: dict | None = None, version: str = VERSION) -> None:
        time.sleep(0.002)
        started = int(time.time() * 1000)
        r = sim.call(method, path, json=payload, version=version)
        assert r.status_code in (200, 201), r.text
        stamp = _date_updated(sim)
        assert parse_ms(stamp) >= started, (method, path)
        stamps.append(stamp)

    tid = sim.task()["id"]
    stamps.append(_date_updated(sim))
    write_then_stamp("PUT", f"/contacts/{CID}/tasks/{tid}", {"title": "x"})
    write_then_stamp("PUT", f"/contacts/{CID}/tasks/{tid}/completed", {"completed": True})
    write_then_stamp("DELETE", f"/contacts/{CID}/tasks/{tid}")
    write_then_stamp("POST", f"/contacts/{CID}/notes", {"body": "n"})
    nid = sim.state.all_notes()[0]["id"]
    write_then_stamp("PUT", f"/contacts/{CID}/notes/{nid}", {"pinned": True})
    write_then_stamp("DELETE", f"/contacts/{CID}/notes/{nid}")
    body = {"calendarId": CALENDAR["id"], "locationId": LOC, "contactId": CID, "startTime": "2025-07-01T10:00:00Z"}
    write_then_stamp("POST", "/calendars/events/appointments", body, CAL_VERSION)
    eid = sim.state.all_events()[0]["id"]
    write_then_stamp("PUT", f"/calendars/events/appointments/{eid}", {"title": "t"}, CAL_VERSION)
    write_then_stamp("DELETE", f"/calendars/events/{eid}", None, CAL_VERSION)
    ms = [parse_ms(s) for s in stamps]
    assert ms == sorted(ms) and ms[0] < ms[1]
    # reads do not touch
    before = _date_updated(sim)
    sim.call("GET", f"/contacts/{CID}/tasks")
    sim.call("GET", f"/contacts/{CID}/appointments")
    assert _date_updated(sim) == before
    # the other contact was never touched
    assert sim.state.raw_contact(OTHER_CID)["dateUpdated"] == contact(OTHER_CID)["dateUpdated"]


# --------------------------------------------------------------------------------------------------
# admin, seed files


def test_admin_bulk_load_and_read_back(sim: Sim):
    base = sim.url + "/_sim"
    task = {"id": "taskKeep000000000001", "title": "t", "dueDate": "2024-05-01T08:00:00.000Z", "completed": True,
            "contactId": CID}  # fmt: skip
    note = {"id": "noteKeep000000000001", "body": "<p>x</p>", "dateAdded": "2024-05-02T08:00:00.000Z", "contactId": CID}
    event = {"id": "evKeep00000000000001", "calendarId": CALENDAR["id"], "contactId": CID,
             "startTime": "2024-05-03T10:00:00+05:30", "dateAdded": "2024-05-01T00:00:00Z"}  # fmt: skip
    assert requests.post(base + "/tasks", json=[task], timeout=5).json() == {"loaded": 1, "total": 1}
    assert requests.post(base + "/notes", json={"notes": [note]}, timeout=5).json() == {"loaded": 1, "total": 1}
    assert requests.post(base + "/calendars", json=[{"id": "calX", "name": "X"}], timeout=5).json()["total"] == 2
    assert requests.post(base + "/events", json=[event], timeout=5).json() == {"loaded": 1, "total": 1}
    assert requests.post(base + "/tasks", json=[{"title": "no contact"}], timeout=5).status_code == 400
    assert requests.post(base + "/events", json=[{"id": "e"}], timeout=5).status_code == 400

    assert requests.get(base + "/tasks", timeout=5).json()["tasks"] == [task]
    assert requests.get(base + "/notes", timeout=5).json()["notes"] == [{**note, "pinned": False}]
    got = requests.get(base + "/events", timeout=5).json()["events"][0]
    assert got["id"] == event["id"] and parse_ms(got["startTime"]) == parse_ms(event["startTime"])
    assert got["dateAdded"] == "2024-04-30T20:00:00-04:00" and got["dateUpdated"] == got["dateAdded"]
    assert got["endTime"] == "2024-05-03T01:15:00-04:00"  # start + the calendar's 45-minute slot
    cals = requests.get(base + "/calendars?limit=1&offset=1", timeout=5).json()
    assert cals["total"] == 2 and [c["id"] for c in cals["calendars"]] == ["calX"]
    assert sim.call("GET", f"/contacts/{CID}/tasks/{task['id']}").json()["task"] == task
    assert sim.state.request_log.snapshot()[-1]["path"] == f"/contacts/{CID}/tasks/{task['id']}"
    assert all(not e["path"].startswith("/_sim") for e in sim.state.request_log.snapshot())
    assert requests.post(base + "/config", json={"location_timezone": "Mars/Olympus"}, timeout=5).status_code == 400

    sim.state.reset()
    assert (sim.state.all_tasks(), sim.state.all_notes(), sim.state.all_events(), sim.state.all_calendars()) == (
        [],
        [],
        [],
        [],
    )


def test_admin_lists_page_without_copying_everything(sim: Sim):
    """``GET /_sim/{tasks,notes,events}`` pages are slices of the full, ordered list; the state's
    ``all_*`` take ``offset``/``limit`` and copy only that slice (the bench pages 1M contacts' tasks)."""
    contacts = generate_contacts(60, seed=5, location_id=LOC, now=NOW)
    crm = generate_crm(contacts, seed=5, location_id=LOC, now=NOW)
    sim.state.reset()
    sim.state.load_contacts(contacts)
    sim.state.load_calendars(crm["calendars"])
    for key in ("tasks", "notes", "events"):
        getattr(sim.state, f"load_{key}")(crm[key])
        everything = getattr(sim.state, f"all_{key}")()
        assert len(everything) == len(crm[key]) > 7
        assert getattr(sim.state, f"all_{key}")(3, 4) == everything[3:7]
        assert getattr(sim.state, f"all_{key}")(5) == everything[5:]
        pages, offset = [], 0
        while True:
            got = requests.get(f"{sim.url}/_sim/{key}", params={"offset": offset, "limit": 7}, timeout=5).json()
            assert got["total"] == len(everything)
            if not got[key]:
                break
            pages.extend(got[key])
            offset += len(got[key])
        assert pages == everything


def test_seed_file_roundtrip_with_children(tmp_path, sim: Sim):
    contacts = generate_contacts(40, seed=9, location_id=LOC, now=NOW)
    crm = generate_crm(contacts, seed=9, location_id=LOC, now=NOW)
    sim.state.reset()
    sim.state.load_contacts(contacts)
    sim.state.load_calendars(crm["calendars"])
    sim.state.load_events(crm["events"])
    sim.state.load_tasks(crm["tasks"])
    sim.state.load_notes(crm["notes"])
    assert sim.state.all_tasks() == crm["tasks"] and sim.state.all_notes() == crm["notes"]
    path = tmp_path / "seed.json"
    sim.state.dump_seed(path)
    data = json.loads(path.read_text())
    assert {k: len(v) for k, v in data.items() if isinstance(v, list)} == {
        "contacts": 40,
        **{k: len(v) for k, v in crm.items()},
    }
    again = GhlState.from_seed_file(path, rate_limit=False, location_timezone="UTC")
    assert again.all_tasks() == crm["tasks"] and again.all_notes() == crm["notes"]
    assert again.all_calendars() == sorted(crm["calendars"], key=lambda c: c["id"])
    assert again.all_events() == crm["events"]  # the generator writes +00:00; this state renders UTC


# --------------------------------------------------------------------------------------------------
# generate_crm


def test_generate_crm_is_deterministic_and_seed_sensitive():
    contacts = generate_contacts(200, seed=4, location_id=LOC, now=NOW)
    a = generate_crm(contacts, seed=1, location_id=LOC, now=NOW)
    assert a == generate_crm(contacts, seed=1, location_id=LOC, now=NOW)
    b = generate_crm(contacts, seed=2, location_id=LOC, now=NOW)
    assert [t["id"] for t in a["tasks"]] != [t["id"] for t in b["tasks"]]
    assert set(a) == {"tasks", "notes", "calendars", "events"}
    assert generate_crm([], seed=1, location_id=LOC, now=NOW, calendars=0) == {
        "tasks": [],
        "notes": [],
        "calendars": [],
        "events": [],
    }


def test_generate_crm_shape_is_realistic():
    contacts = generate_contacts(2000, seed=6, location_id=LOC, now=NOW)
    crm = generate_crm(contacts, seed=6, location_id=LOC, now=NOW, calendars=4)
    now_ms = int(NOW.timestamp() * 1000)
    added = {c["id"]: parse_ms(c["dateAdded"]) for c in contacts}
    n = len(contacts)
    share = {k: len({x["contactId"] for x in crm[k]}) / n for k in ("tasks", "notes", "events")}
    assert 0.55 < share["tasks"] < 0.65 and 0.45 < share["notes"] < 0.55 and 0.25 < share["events"] < 0.35, share
    ids = [x["id"] for k in crm for x in crm[k]]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[A-Za-z0-9]{20}", i) for i in ids)

    per_contact: dict[str, int] = {}
    for t in crm["tasks"]:
        assert set(t) <= TASK_KEYS and {"id", "title", "dueDate", "completed", "contactId"} <= set(t)
        assert ISO_MS.match(t["dueDate"]) and parse_ms(t["dueDate"]) >= added[t["contactId"]]
        per_contact[t["contactId"]] = per_contact.get(t["contactId"], 0) + 1
    assert set(per_contact.values()) == {1, 2, 3, 4}
    due = [(parse_ms(t["dueDate"]) < now_ms, t["completed"]) for t in crm["tasks"]]
    assert {(True, True), (True, False), (False, True), (False, False)} <= set(due)  # past/future, done/open
    assert crm["tasks"] == sorted(crm["tasks"], key=lambda t: (t["contactId"], t["dueDate"], t["id"]))

    for note in crm["notes"]:
        assert set(note) <= NOTE_KEYS and {"id", "body", "dateAdded", "contactId", "pinned"} <= set(note)
        assert added[note["contactId"]] <= parse_ms(note["dateAdded"]) <= now_ms
    bodies = [note["body"] for note in crm["notes"]]
    assert "<p>Called <b>back</b></p>" in bodies and any(b.startswith("<ul>") for b in bodies)
    assert any("<" not in b for b in bodies)
    long = [b for b in bodies if len(b) > 5_000]
    assert 1 <= len(long) <= len(bodies) // 50 and max(len(b) for b in bodies) <= 70_000

    cal_ids = {c["id"] for c in crm["calendars"]}
    assert len(crm["calendars"]) == 4 and all({"id", "name", "locationId"} <= set(c) for c in crm["calendars"])
    active = {c["id"] for c in crm["calendars"] if c["isActive"]}
    statuses, when = set(), set()
    for ev in crm["events"]:
        assert (
            ev["calendarId"] in active
            and ev["calendarId"] in cal_ids
            and ev["appointmentStatus"] in APPOINTMENT_STATUSES
        )
        assert all(ISO_OFFSET.match(ev[k]) for k in ("startTime", "endTime", "dateAdded", "dateUpdated"))
        start, end = parse_ms(ev["startTime"]), parse_ms(ev["endTime"])
        booked, updated = parse_ms(ev["dateAdded"]), parse_ms(ev["dateUpdated"])
        assert added[ev["contactId"]] <= booked <= min(start, now_ms) and booked <= updated <= now_ms
        assert end > start
        statuses.add(ev["appointmentStatus"])
        when.add(start < now_ms)
        if start >= now_ms:
            assert ev["appointmentStatus"] in ("new", "confirmed", "cancelled")
    assert statuses == set(APPOINTMENT_STATUSES) and when == {True, False}
    per_event_contact: dict[str, int] = {}
    for ev in crm["events"]:
        per_event_contact[ev["contactId"]] = per_event_contact.get(ev["contactId"], 0) + 1
    assert set(per_event_contact.values()) == {1, 2}


# --------------------------------------------------------------------------------------------------
# lenient and strict readings of unconfirmed behaviours (sandbox/profiles.py, BEHAVIOR.md)


def test_task_search_items_keyed_id_or_underscore_id(sim: Sim):
    made = sim.task(assignedTo="userA", body="details")
    assert sim.search_tasks().json()["tasks"] == [made]  # lenient: `id`, like every task endpoint

    sim.state.configure(task_search_id_key="_id")
    (item,) = sim.search_tasks().json()["tasks"]
    assert list(item)[0] == "_id" and "id" not in item
    assert item == {"_id": made["id"], **{k: v for k, v in made.items() if k != "id"}}
    # only the search: the contact's task routes keep `id`
    assert sim.call("GET", f"/contacts/{CID}/tasks").json()["tasks"][0]["id"] == made["id"]
    assert sim.call("GET", f"/contacts/{CID}/tasks/{made['id']}").json()["task"]["id"] == made["id"]
    assert "id" in sim.task(title="Second") and "_id" not in sim.task(title="Third")


def test_task_search_page_cap_shortens_pages_silently(sim: Sim):
    tasks = [
        {"id": f"t{i:019d}", "title": f"task {i}", "dueDate": iso_ms(T0 + i * HOUR), "contactId": CID}
        for i in range(60)
    ]
    sim.state.load_tasks(tasks)
    expected = [t["id"] for t in tasks]

    def pages() -> list[list[str]]:
        """Page by skip with limit 100 until an empty page; the ids of each page."""
        out: list[list[str]] = []
        skip = 0
        while True:
            r = sim.search_tasks(contactId=[CID], limit=100, skip=skip)
            assert r.status_code == 200, r.text
            ids = [t["id"] for t in r.json()["tasks"]]
            out.append(ids)
            if not ids:
                return out
            skip += len(ids)

    assert [len(p) for p in pages()] == [60, 0]  # lenient: the page holds what was asked for
    sim.state.configure(task_search_page_cap=25)
    got = pages()
    assert [len(p) for p in got] == [25, 25, 10, 0]
    assert [tid for page in got for tid in page] == expected  # skip counts items: nothing lost, nothing twice
    # A client that stops at the first page shorter than the limit it asked for sees 25 of 60 tasks.
    first = sim.search_tasks(contactId=[CID], limit=100).json()["tasks"]
    assert len(first) == 25 < 100
    assert len(sim.search_tasks(contactId=[CID], limit=10).json()["tasks"]) == 10  # smaller limits are kept


def test_task_search_max_limit_100_or_none(sim: Sim):
    sim.state.load_tasks(
        [{"id": f"t{i:019d}", "title": "bulk", "dueDate": iso_ms(T0 + i), "contactId": CID} for i in range(150)]
    )
    r = sim.search_tasks(limit=1000)
    assert r.status_code == 422 and r.json()["message"] == ["limit must not be greater than 100"]
    assert len(sim.search_tasks(limit=100).json()["tasks"]) == 100

    sim.state.configure(task_search_max_limit=None)
    r = sim.search_tasks(limit=1000)
    assert r.status_code == 200 and len(r.json()["tasks"]) == 150
    assert sim.search_tasks(limit=0).status_code == 422  # still at least 1
    sim.state.configure(task_search_max_limit=None, task_search_page_cap=25)  # the strict pair
    assert len(sim.search_tasks(limit=1000).json()["tasks"]) == 25
    sim.state.configure(task_search_max_limit=40, task_search_page_cap=None)
    r = sim.search_tasks(limit=41)
    assert r.status_code == 422 and r.json()["message"] == ["limit must not be greater than 40"]


def test_chatham_time_zone_renders_and_reads_zoneless_times_at_plus_13_45(sim: Sim):
    jan = 1_736_935_200_000  # 2025-01-15T10:00:00Z; Chatham is on summer time, UTC+13:45
    sim.state.configure(location_timezone="Pacific/Chatham")
    sim.state.load_events(
        [
            {"id": "evJan", "calendarId": CALENDAR["id"], "contactId": CID, "startTime": jan, "endTime": jan + HOUR},
            {"id": "evJun", "calendarId": CALENDAR["id"], "contactId": CID, "startTime": T0},  # winter: +12:45
        ]
    )
    events = sim.call("GET", f"/contacts/{CID}/appointments").json()["events"]
    assert [(e["id"], e["startTime"], e["endTime"]) for e in events] == [
        ("evJan", "2025-01-15 23:45:00", "2025-01-16 00:45:00"),  # local wall time, past midnight
        ("evJun", "2025-06-16 03:51:40", "2025-06-16 04:36:40"),
    ]
    ev = sim.events(calendarId=CALENDAR["id"], startTime=jan, endTime=jan).json()["events"][0]
    assert ev["startTime"] == "2025-01-15T23:45:00+13:45" and parse_ms(ev["startTime"]) == jan
    # zone-less times sent are read in the location's zone too
    r = sim.book(startTime="2025-01-20 09:00:00", endTime="2025-01-20 09:30:00")
    assert r.status_code == 200, r.text
    assert r.json()["startTime"] == "2025-01-20T09:00:00+13:45"
    assert parse_ms(r.json()["startTime"]) == parse_ms("2025-01-19T19:15:00Z")
    # the same instant, read in the lenient zone: a client that treats zone-less times as UTC is
    # 13:45 off under the strict profile and 5 hours off under the lenient one
    sim.state.configure(location_timezone="America/New_York")
    events = sim.call("GET", f"/contacts/{CID}/appointments").json()["events"]
    assert events[0]["startTime"] == "2025-01-15 05:00:00"


def test_get_location_answers_its_time_zone_and_needs_the_locations_scope(sim):
    sim.state.configure(location_timezone="Pacific/Chatham")
    r = sim.call("GET", f"/locations/{sim.state.location_id}")
    assert r.status_code == 200 and r.json()["location"]["timezone"] == "Pacific/Chatham"
    sim.state.add_token("pit-narrow", scopes=["contacts.readonly"])
    r = sim.call("GET", f"/locations/{sim.state.location_id}", token="pit-narrow")
    assert r.status_code == 401 and "scope" in r.json()["message"]


def test_a_calendars_window_read_through_its_index_equals_a_scan_of_every_event():
    """The per-calendar start index (made for 1M-contact benches) answers what a full scan does:
    random events, long and zero-length ones, moved and deleted ones, windows of every size."""
    import random

    state = GhlState(location_id=LOC)
    state.load_calendars([{"id": f"cal{i}", "locationId": LOC, "name": f"C{i}"} for i in range(2)])
    rng = random.Random(5)
    base = 1_790_000_000_000
    events = []
    for i in range(400):
        start = base + rng.randrange(0, 40 * 86_400_000)
        length = rng.choice([0, 1, 1_800_000, 3 * 86_400_000])
        cal = f"cal{rng.randrange(2)}"
        events.append({"id": f"ev{i:05d}", "calendarId": cal, "contactId": f"c{i % 7}", "startTime": start,
                       "endTime": start + length})  # fmt: skip
    state.load_events(events)

    def same_as_a_scan(rounds: int = 70) -> None:
        for _ in range(rounds):
            lo = base + rng.randrange(-5 * 86_400_000, 55 * 86_400_000)
            hi = lo + rng.choice([0, 1, 3_600_000, 14 * 86_400_000, 60 * 86_400_000])
            for cal in ("cal0", "cal1", "nocal"):
                indexed = state.calendar_events(LOC, start_ms=lo, end_ms=hi, calendar_id=cal)
                scanned = [e for e in state.calendar_events(LOC, start_ms=lo, end_ms=hi) if e["calendarId"] == cal]
                assert indexed == scanned, (cal, lo, hi)

    same_as_a_scan()
    moved = {**events[0], "calendarId": "cal1", "startTime": base + 50 * 86_400_000, "endTime": base + 51 * 86_400_000}
    state.load_events([moved])
    same_as_a_scan()
    state.delete_event(events[1]["id"], LOC)
    same_as_a_scan()
    state.calendar_events(LOC, start_ms=base, end_ms=base + 1, calendar_id="cal0")
    assert state.update_appointment(events[2]["id"], {"startTime": iso_ms(base + 45 * 86_400_000)}, LOC)
    same_as_a_scan()
