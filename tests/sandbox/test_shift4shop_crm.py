"""The Shift4Shop simulator's CRM module over real HTTP: tickets, messages, statuses, departments,
saved replies, exactly as the official reference (`ShevonJ/slate` `source/includes/_crm.md`)
documents them, plus the choices BEHAVIOR.md records where it is silent.

One simulator runs for the module; every test starts from a reset store (fixture ``s4s``), so the
CRM holds no tickets and the default statuses/department, with the rate limiter off.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.common import ServerThread
from sandbox.profiles import PROFILES
from sandbox.shift4shop import CRM_FIELDS, CRM_MESSAGE_FIELDS, Shift4ShopState, create_app
from sandbox.shift4shop.state import (
    AUTH_FAILURE_MESSAGE,
    CRM_DEPARTMENT_FIELDS,
    CRM_SAVED_REPLY_FIELDS,
    CRM_STATUS_FIELDS,
    DEFAULT_CRM_DEPARTMENTS,
    DEFAULT_CRM_STATUSES,
    OFFSET_EXCEEDS_MESSAGE,
)
from tests.sandbox.test_shift4shop_simulator import Api, error, headers

STORE = "https://demo-store.3dcartstores.com"
OTHER = "https://other-store.3dcartstores.com"
CREDS = {"private_key": "pk-demo", "token": "tok-demo"}
OTHER_CREDS = {"private_key": "pk-other", "token": "tok-other"}
BASE_CONFIG = {
    "rate_limit": False,
    "bucket_size": 50,
    "leak_per_s": 2.0,
    "send_retry_after": True,
    "latency_s": 0.0,
    "default_limit": 10,
    "max_limit": 500,
    "crm_get_as_array": False,
    **PROFILES["lenient"].shift4shop,  # normalize_crm_messages=False among them
}
CRM_DATE = re.compile(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}")  # "02/26/2019 17:01", as the reference prints
NOT_FOUND = "The specified CRM does not exist."
NO_MESSAGES = "The specified CRM does not exist, or has no messages."
MESSAGE_NOT_FOUND = "The specified CRM and/or message does not exist."


def result(key: str, value: Any, status: int, message: str) -> list[dict[str, str]]:
    return [{"Key": key, "Value": str(value), "Status": str(status), "Message": message}]


def ticket(i: int, **fields: Any) -> dict[str, Any]:
    return {"Subject": f"Question {i}", "CustomerEmail": f"user{i}@example.com", "CustomerName": f"User {i}", **fields}


def ids(response: requests.Response, key: str = "CrmID") -> list[int]:
    assert response.status_code == 200, response.text
    return [row[key] for row in response.json()]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Shift4ShopState, ServerThread]]:
    sim = Shift4ShopState(stores={STORE: CREDS, OTHER: OTHER_CREDS}, **BASE_CONFIG)
    thread = ServerThread(create_app(sim)).start()
    yield sim, thread
    thread.stop()


@pytest.fixture
def s4s(server: tuple[Shift4ShopState, ServerThread]) -> Shift4ShopState:
    sim, _ = server
    sim.reset()
    sim.configure(**BASE_CONFIG)
    return sim


@pytest.fixture
def api(s4s: Shift4ShopState, server: tuple[Shift4ShopState, ServerThread]) -> Api:
    return Api(server[1].url, headers())


# ----- tickets: create and read ------------------------------------------------------------------


def test_create_ticket_with_messages_then_read_it_back(api: Api) -> None:
    body = ticket(
        1,
        CustomerPhone="+1 305 555 0100",
        CustomerIpAddress="203.0.113.9",
        OrderID=77,
        ProductId=12,
        CrmID=999,  # read-only: ignored
        DateOpened="1965-10-13T18:57:26.841Z",  # server-set: ignored
        CrmMessageList=[
            {"Message": "<p>Where is <b>my order</b>?</p>", "Sender": 0, "SenderName": "User 1"},
            {"Message": "On its way.", "Sender": 1, "SenderEmail": "staff@shop.example", "MessageId": 5},
        ],
    )
    created = api.post("/CRM", body)
    assert created.status_code == 201
    assert created.json() == result("CrmID", 1, 201, "Created successfully")

    response = api.get("/CRM/1")
    assert response.status_code == 200
    record = response.json()
    assert isinstance(record, dict)  # the reference's sample for GET /CRM/{id} is a bare object
    assert list(record) == list(CRM_FIELDS)
    assert record["CrmID"] == 1 and record["Subject"] == "Question 1"
    assert record["OrderID"] == 77 and record["ProductId"] == 12 and record["CustomerID"] == 0
    assert record["StatusID"] == 1 and record["DepartmentID"] == 1  # the store's first status / department
    assert CRM_DATE.fullmatch(record["DateOpened"]) and record["DateOpened"] == record["DateLastAction"]
    messages = record["CrmMessageList"]
    assert [list(m) for m in messages] == [list(CRM_MESSAGE_FIELDS)] * 2
    assert [m["MessageId"] for m in messages] == [1, 2]
    assert messages[0]["Message"] == "<p>Where is <b>my order</b>?</p>"  # stored as sent, HTML included
    assert messages[1]["Sender"] == 1 and messages[1]["SenderEmail"] == "staff@shop.example"
    assert messages[0]["CrmFileList"] == [] and CRM_DATE.fullmatch(messages[0]["DateCreated"])
    assert api.get("/CRM").json() == [record]  # the list embeds the messages too


def test_get_by_id_as_array_is_a_switch(api: Api, s4s: Shift4ShopState) -> None:
    assert Shift4ShopState().config()["crm_get_as_array"] is False  # the reference's form by default
    api.post("/CRM", ticket(1))
    s4s.configure(crm_get_as_array=True)
    body = api.get("/CRM/1").json()
    assert isinstance(body, list) and len(body) == 1 and body[0]["CrmID"] == 1


def test_customer_email_is_required_and_lengths_are_enforced(api: Api) -> None:
    missing = api.post("/CRM", {"Subject": "No email"})
    assert missing.status_code == 400
    assert missing.json() == error(400, "CustomerEmail is required.", "CustomerEmail")
    assert api.post("/CRM", ticket(1, CustomerEmail="")).status_code == 400

    assert api.post("/CRM", ticket(1, Subject="s" * 50)).status_code == 201
    too_long = api.post("/CRM", ticket(2, Subject="s" * 51))
    assert too_long.status_code == 400
    assert too_long.json()[0]["Value"] == "Subject" and "50" in too_long.json()[0]["Message"]
    for field, limit in [("CustomerName", 255), ("CustomerEmail", 100), ("CustomerPhone", 50)]:
        response = api.post("/CRM", ticket(3, **{field: "x" * (limit + 1)}))
        assert response.status_code == 400 and response.json()[0]["Value"] == field, field
    assert api.get("/CRM", countonly=1).json() == {"TotalCount": 1}  # nothing half-created


def test_message_length_limit_applies_on_both_paths(api: Api) -> None:
    longest = "m" * 65535
    assert api.post("/CRM", ticket(1, CrmMessageList=[{"Message": longest}])).status_code == 201
    over = api.post("/CRM", ticket(2, CrmMessageList=[{"Message": "ok"}, {"Message": longest + "m"}]))
    assert over.status_code == 400
    assert over.json()[0]["Value"] == "Message" and over.json()[0]["Message"].startswith("CrmMessageList[1]: ")
    assert api.get("/CRM", countonly=1).json() == {"TotalCount": 1}  # the whole ticket was refused

    assert api.post("/CRM/1/message", {"Message": longest}).status_code == 201
    response = api.post("/CRM/1/message", {"Message": longest + "m"})
    assert response.status_code == 400 and response.json()[0]["Value"] == "Message"
    assert api.post("/CRM/1/message", {"SenderName": "no text"}).json() == error(400, "Message is required.", "Message")
    assert api.post("/CRM/1/message", {"Message": "x", "CustomerIPAddress": "1" * 17}).status_code == 400
    assert len(api.get("/CRM/1").json()["CrmMessageList"]) == 2
    assert api.post("/CRM", ticket(3, CrmMessageList={"Message": "not an array"})).status_code == 400


def test_references_are_checked(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [{"CustomerID": 5, "Email": "c5@example.com", "Password": "pw"}])
    s4s.load_crm_statuses(STORE, [{"Id": 7, "StatusId": 40, "StatusName": "Waiting on customer"}])

    assert api.post("/CRM", ticket(1, CustomerID=5)).status_code == 201
    assert api.post("/CRM", ticket(2, CustomerID=0)).status_code == 201  # a guest ticket
    unknown = api.post("/CRM", ticket(3, CustomerID=6))
    assert unknown.json() == error(400, "CustomerID 6 does not exist.", "CustomerID")
    # Tickets reference a status by its StatusId, not by the row's Id.
    assert api.post("/CRM", ticket(4, StatusID=40)).status_code == 201
    assert api.post("/CRM", ticket(5, StatusID=7)).json() == error(400, "StatusID 7 does not exist.", "StatusID")
    bad_department = api.post("/CRM", ticket(6, DepartmentID=9))
    assert bad_department.json() == error(400, "DepartmentID 9 does not exist.", "DepartmentID")
    assert ids(api.get("/CRM")) == [1, 2, 3]
    assert [t["CustomerID"] for t in api.get("/CRM").json()] == [5, 0, 0]


def test_post_needs_one_json_object(api: Api) -> None:
    assert api.post("/CRM", [ticket(1)]).status_code == 400
    assert api.call("POST", "/CRM", ticket(1), headers={"Content-Type": "text/plain"}).status_code == 415
    response = api.session.post(api.base + "/CRM", data="{", headers=api.headers, timeout=10)
    assert response.status_code == 400 and response.json()[0]["Key"] == "Error"


# ----- tickets: list, paging, filters ----------------------------------------------------------------


def test_list_paging_matches_the_customer_rules(api: Api, s4s: Shift4ShopState) -> None:
    assert api.get("/CRM").json() == error(404, NOT_FOUND)
    s4s.load_tickets(STORE, [ticket(i) for i in range(1, 26)])
    assert ids(api.get("/CRM")) == list(range(1, 11))  # default limit 10, ascending CrmID
    assert ids(api.get("/CRM", limit=10, offset=0)) == list(range(1, 11))
    assert ids(api.get("/CRM", limit=10, offset=21)) == list(range(21, 26))
    assert ids(api.get("/CRM", limit=5, offset=25)) == [25]
    past = api.get("/CRM", limit=10, offset=26)
    assert past.status_code == 400 and past.json() == error(400, OFFSET_EXCEEDS_MESSAGE, "offset")
    assert api.get("/CRM", countonly=1, limit=2, offset=3).json() == {"TotalCount": 25}
    assert api.get("/CRM", subject="nothing like this").json() == error(404, NOT_FOUND)
    assert api.get("/CRM", subject="nothing like this", countonly=1).json() == {"TotalCount": 0}
    assert len(api.get("/CRM", limit="", offset="", countonly="").json()) == 10  # blank = not given
    assert api.get("/CRM", limit="ten").status_code == 400


def test_limit_is_capped_at_500(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_tickets(STORE, [ticket(i) for i in range(1, 521)])
    assert len(api.get("/CRM", limit=1000).json()) == 500
    assert ids(api.get("/CRM", limit=500, offset=501)) == list(range(501, 521))


@pytest.mark.parametrize(
    ("param", "field", "value", "query"),
    [
        ("custid", "CustomerID", 5, "5"),
        ("orderid", "OrderID", 1001, "1001"),
        ("productid", "ProductId", 42, "42"),
        ("statusid", "StatusID", 3, "3"),
        ("departmentid", "DepartmentID", 2, "2"),
        ("customeremail", "CustomerEmail", "Ann.Lee@Example.com", "ann.lee@example.COM"),
        ("customername", "CustomerName", "Ann Lee", "ANN LEE"),
        ("customerphone", "CustomerPhone", "305-555-0100", "305-555-0100"),
        ("customeripaddress", "CustomerIpAddress", "203.0.113.9", "203.0.113.9"),
        ("subject", "Subject", "Broken zipper", "broken zipper"),
    ],
)
def test_each_documented_filter(api: Api, s4s: Shift4ShopState, param: str, field: str, value: Any, query: str) -> None:
    other = value + 1 if isinstance(value, int) else value + "x"
    s4s.load_tickets(STORE, [ticket(1, **{field: value}), ticket(2, **{field: other}), ticket(3, **{field: value})])
    assert ids(api.get("/CRM", **{param: query})) == [1, 3]
    assert api.get("/CRM", countonly=1, **{param: query}).json() == {"TotalCount": 2}


def test_text_filters_are_exact_and_id_filters_treat_0_as_absent(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_tickets(STORE, [ticket(1, CustomerID=5, Subject="Broken zipper"), ticket(2, CustomerID=0)])
    assert api.get("/CRM", subject="broken").status_code == 404  # not a partial match
    assert ids(api.get("/CRM", custid=0)) == [1, 2]
    assert ids(api.get("/CRM", custid=5, subject="BROKEN ZIPPER")) == [1]
    assert api.get("/CRM", custid=5, subject="other").status_code == 404
    bad = api.get("/CRM", custid="five")
    assert bad.status_code == 400 and bad.json()[0]["Value"] == "custid"


def test_opened_and_last_action_ranges_are_inclusive(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_tickets(
        STORE,
        [
            ticket(1, _dateOpened="2024-03-01T08:00:00Z", _dateLastAction="2024-03-10T08:00:00Z"),
            ticket(2, _dateOpened="2024-03-02T10:00:00Z", _dateLastAction="2024-03-02T10:00:00Z"),
            ticket(3, DateOpened="03/05/2024 09:30", DateLastAction="03/20/2024 12:00"),
        ],
    )
    assert ids(api.get("/CRM", openedstartdate="03/02/2024 10:00:00")) == [2, 3]
    assert ids(api.get("/CRM", openedenddate="03/02/2024 10:00:00")) == [1, 2]
    assert ids(api.get("/CRM", openedstartdate="03/02/2024", openedenddate="03/04/2024")) == [2]
    assert ids(api.get("/CRM", lastactionstartdate="03/10/2024 08:00:00")) == [1, 3]
    assert ids(api.get("/CRM", lastactionenddate="03/10/2024 07:59:59")) == [2]
    assert api.get("/CRM", lastactionstartdate="03/21/2024").status_code == 404
    bad = api.get("/CRM", openedstartdate="31/12/2024")
    assert bad.status_code == 400 and bad.json()[0]["Value"] == "openedstartdate"
    assert api.get("/CRM/3").json()["DateOpened"] == "03/05/2024 09:30"


# ----- tickets: update and delete ------------------------------------------------------------------


def test_put_is_partial_and_moves_only_date_last_action(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_tickets(
        STORE,
        [
            ticket(
                1,
                DateOpened="01/02/2020 10:00",
                DateLastAction="01/03/2020 11:00",
                CrmMessageList=[{"Message": "first"}],
            )
        ],
    )
    before = api.get("/CRM/1").json()
    response = api.put("/CRM/1", {"StatusID": 3, "CrmMessageList": [{"Message": "ignored"}], "CrmID": 8})
    assert response.status_code == 200
    assert response.json() == result("CrmID", 1, 200, "Updated successfully")
    after = api.get("/CRM/1").json()
    assert after["StatusID"] == 3
    assert after["DateOpened"] == "01/02/2020 10:00"
    assert after["DateLastAction"] != "01/03/2020 11:00" and CRM_DATE.fullmatch(after["DateLastAction"])
    unchanged = {k: v for k, v in after.items() if k not in ("StatusID", "DateLastAction")}
    assert unchanged == {k: v for k, v in before.items() if k not in ("StatusID", "DateLastAction")}


def test_put_errors(api: Api) -> None:
    api.post("/CRM", ticket(1))
    assert api.put("/CRM/9", {"Subject": "x"}).json() == error(404, NOT_FOUND, "9")
    too_long = api.put("/CRM/1", {"Subject": "s" * 51})
    assert too_long.status_code == 400 and too_long.json()[0]["Value"] == "1"
    assert api.put("/CRM/1", {"CustomerEmail": ""}).json() == error(400, "CustomerEmail cannot be empty.", "1")
    assert api.put("/CRM/1", {"StatusID": 0}).status_code == 400  # 0 names no status on PUT
    assert api.put("/CRM/1", {"DepartmentID": 2}).status_code == 400
    assert api.put("/CRM/1", [{"CrmID": 1}]).status_code == 400
    assert api.put("/CRM/abc", {"Subject": "x"}).status_code == 400
    assert api.get("/CRM/1").json()["Subject"] == "Question 1"
    bulk = api.put("/CRM", [{"CrmID": 1, "Subject": "x"}])  # no bulk PUT /CRM is documented
    assert bulk.status_code == 405 and bulk.json()[0]["Key"] == "Error"


def test_delete_ticket_takes_its_messages_and_ids_are_not_reused(api: Api) -> None:
    api.post("/CRM", ticket(1, CrmMessageList=[{"Message": "a"}, {"Message": "b"}]))
    api.post("/CRM", ticket(2, CrmMessageList=[{"Message": "c"}]))
    response = api.delete("/CRM/1")
    assert response.status_code == 200
    assert response.json() == result("CrmID", 1, 200, "Deleted successfully")
    assert api.get("/CRM/1").json() == error(404, NOT_FOUND, "1")
    assert api.get("/CRM/1/message/1").status_code == 404
    assert api.delete("/CRM/1").json() == error(404, NOT_FOUND, "1")
    assert api.post("/CRM", ticket(3)).json()[0]["Value"] == "3"
    assert api.post("/CRM/3/message", {"Message": "d"}).json()[0]["Value"] == "4"


# ----- messages -------------------------------------------------------------------------------


def test_message_endpoints(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_tickets(STORE, [ticket(1, DateLastAction="01/03/2020 11:00"), ticket(2)])
    assert api.get("/CRM/1/message").json() == error(404, NO_MESSAGES)
    assert api.get("/CRM/9/message").json() == error(404, NO_MESSAGES, "9")

    created = api.post("/CRM/1/message", {"Message": "Hello <br> there", "SenderName": "Staff", "Sender": 1})
    assert created.status_code == 201
    assert created.json() == result("MessageId", 1, 201, "Created successfully")
    assert api.get("/CRM/1").json()["DateLastAction"] != "01/03/2020 11:00"  # a new message is an action
    api.post("/CRM/2/message", {"Message": "other ticket"})  # MessageIds are one sequence per store
    api.post("/CRM/1/message", {"Message": "second"})
    assert ids(api.get("/CRM/1/message"), "MessageId") == [1, 3]

    [message] = api.get("/CRM/1/message/3").json()  # a one-element array, as the reference's sample
    assert list(message) == list(CRM_MESSAGE_FIELDS) and message["Message"] == "second"
    assert api.get("/CRM/1/message/2").json() == error(404, MESSAGE_NOT_FOUND, "2")  # belongs to ticket 2
    assert api.get("/CRM/1/message/99").status_code == 404
    assert api.post("/CRM/9/message", {"Message": "x"}).json() == error(404, NOT_FOUND, "9")

    deleted = api.delete("/CRM/1/message/1")
    assert deleted.json() == result("MessageId", 1, 200, "Deleted successfully")
    assert api.delete("/CRM/1/message/1").json() == error(404, MESSAGE_NOT_FOUND, "1")
    assert ids(api.get("/CRM/1/message"), "MessageId") == [3]
    assert [m["MessageId"] for m in api.get("/CRM/1").json()["CrmMessageList"]] == [3]


def readable(text: str) -> str:
    """What a person sees of a message: tags gone, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", text)).split())


def test_normalized_messages_differ_from_what_was_sent_but_read_the_same(api: Api, s4s: Shift4ShopState) -> None:
    sent = [
        "Hello,\n\n  Where is <B>my order</B>?<br>Thanks&nbsp;Ann\n",
        "<P class=note>Line one<BR>\r\nLine two</P>",
        "Plain text\nover two lines",
    ]
    s4s.configure(normalize_crm_messages=True)
    assert api.post("/CRM", ticket(1, CrmMessageList=[{"Message": sent[0]}, {"Message": sent[1]}])).status_code == 201
    assert api.post("/CRM/1/message", {"Message": sent[2]}).status_code == 201
    stored = [m["Message"] for m in api.get("/CRM/1/message").json()]
    assert stored == [
        "Hello, Where is <b>my order</b>?<br />Thanks&#160;Ann",
        '<p class="note">Line one<br /> Line two</p>',
        "Plain text over two lines",
    ]
    for before, after in zip(sent, stored, strict=True):
        assert hashlib.sha256(after.encode()).digest() != hashlib.sha256(before.encode()).digest()
        assert readable(after) == readable(before)

    s4s.configure(normalize_crm_messages=False)  # the lenient reading keeps every byte
    api.post("/CRM/1/message", {"Message": sent[0]})
    assert api.get("/CRM/1").json()["CrmMessageList"][-1]["Message"] == sent[0]


def test_messages_cannot_be_updated(api: Api) -> None:
    """The reference: "Updating a message is not available, as an email is sent once the message is created"."""
    api.post("/CRM", ticket(1, CrmMessageList=[{"Message": "original"}]))
    response = api.put("/CRM/1/message/1", {"Message": "edited"})
    assert response.status_code == 405 and response.json()[0]["Key"] == "Error"
    messages = api.get("/CRM/1/message").json()
    assert [m["Message"] for m in messages] == ["original"]


def test_message_list_pages_like_every_list(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_tickets(STORE, [ticket(1, CrmMessageList=[{"Message": f"m{i}"} for i in range(1, 13)])])
    assert ids(api.get("/CRM/1/message"), "MessageId") == list(range(1, 11))
    assert ids(api.get("/CRM/1/message", limit=5, offset=11), "MessageId") == [11, 12]
    assert api.get("/CRM/1/message", offset=13).json() == error(400, OFFSET_EXCEEDS_MESSAGE, "offset")
    assert len(api.get("/CRM/1").json()["CrmMessageList"]) == 12  # the ticket embeds all of them


# ----- statuses, departments, saved replies -----------------------------------------------------------


def test_status_defaults_get_and_update(api: Api) -> None:
    statuses = api.get("/CRM/status").json()
    assert statuses == list(DEFAULT_CRM_STATUSES)
    assert [s["StatusName"] for s in statuses] == ["Open", "In Progress", "Closed"]
    assert all(list(s) == list(CRM_STATUS_FIELDS) for s in statuses)
    assert api.get("/CRM/status", countonly=1).json() == {"TotalCount": 3}
    assert api.get("/CRM/status", limit=1, offset=2).json() == [DEFAULT_CRM_STATUSES[1]]
    assert api.get("/CRM/status", offset=4).json() == error(400, OFFSET_EXCEEDS_MESSAGE, "offset")
    assert api.get("/CRM/status/2").json() == [DEFAULT_CRM_STATUSES[1]]
    assert api.get("/CRM/status/9").json() == error(404, "The status does not exist.", "9")

    updated = api.put("/CRM/status/2", {"StatusName": "Working on it", "StatusId": 99, "Id": 5})
    assert updated.json() == result("StatusId", 2, 200, "Updated successfully")
    assert api.get("/CRM/status/2").json() == [{"Id": 2, "StatusId": 2, "StatusName": "Working on it"}]
    assert api.put("/CRM/status/2", {"StatusName": "n" * 51}).status_code == 400
    assert api.put("/CRM/status/2", {"StatusName": ""}).status_code == 400
    assert api.put("/CRM/status/9", {"StatusName": "x"}).status_code == 404
    # Documented: list, get, update. Create and delete are not.
    assert api.post("/CRM/status", {"StatusName": "x"}).status_code == 405
    assert api.delete("/CRM/status/1").status_code == 405
    assert api.delete("/CRM/status").status_code == 405


def test_department_defaults_and_update(api: Api, s4s: Shift4ShopState) -> None:
    assert api.get("/CRM/department").json() == list(DEFAULT_CRM_DEPARTMENTS)
    assert api.get("/CRM/department").json() == [{"DepartmentId": 1, "Name": "General", "Visible": True}]
    assert list(api.get("/CRM/department").json()[0]) == list(CRM_DEPARTMENT_FIELDS)
    assert api.get("/CRM/department", countonly=1).json() == {"TotalCount": 1}

    updated = api.put("/CRM/department/1", {"Name": "Support", "Visible": False})
    assert updated.json() == result("DepartmentId", 1, 200, "Updated successfully")
    assert api.get("/CRM/department").json() == [{"DepartmentId": 1, "Name": "Support", "Visible": False}]
    assert api.put("/CRM/department/1", {"Name": ""}).status_code == 400
    assert api.put("/CRM/department/1", {"Name": "n" * 256}).status_code == 400
    missing = api.put("/CRM/department/4", {"Name": "x"})
    assert missing.json() == error(404, "The specified department does not exist.", "4")
    # "Create and Delete methods are not available"; no get-by-id is documented either.
    for method, path in [("POST", "/CRM/department"), ("DELETE", "/CRM/department/1"), ("GET", "/CRM/department/1")]:
        assert api.call(method, path, {"Name": "x"}).status_code == 405, (method, path)

    s4s.load_crm_departments(STORE, [], replace=True)
    assert api.get("/CRM/department").json() == error(404, "There are no departments.")


def test_saved_reply_crud_and_title_filter(api: Api) -> None:
    assert api.get("/CRM/savedreply").json() == error(404, "The specified saved reply does not exist.")
    created = api.post("/CRM/savedreply", {"Title": "Shipping times", "Message": "<p>3-5 days</p>"})
    assert created.status_code == 201
    assert created.json() == result("SavedReplyID", 1, 201, "Created successfully")
    api.post("/CRM/savedreply", {"Title": "Returns", "Message": "30 days"})
    assert api.post("/CRM/savedreply", {"Message": "untitled"}).json() == error(400, "Title is required.", "Title")
    assert api.post("/CRM/savedreply", {"Title": "t" * 101}).status_code == 400

    [reply] = api.get("/CRM/savedreply/1").json()
    assert list(reply) == list(CRM_SAVED_REPLY_FIELDS) and reply["Message"] == "<p>3-5 days</p>"
    assert ids(api.get("/CRM/savedreply", title="RETURNS"), "Id") == [2]
    assert api.get("/CRM/savedreply", countonly=1).json() == {"TotalCount": 2}
    assert api.put("/CRM/savedreply/2", {"Message": "60 days"}).json() == result(
        "SavedReplyID", 2, 200, "Updated successfully"
    )
    assert api.get("/CRM/savedreply/2").json()[0] == {"Id": 2, "Title": "Returns", "Message": "60 days"}
    assert api.delete("/CRM/savedreply/1").json() == result("SavedReplyID", 1, 200, "Deleted successfully")
    assert api.get("/CRM/savedreply/1").status_code == 404
    assert api.delete("/CRM/savedreply/1").status_code == 404


def test_reset_clears_tickets_and_restores_defaults(api: Api, s4s: Shift4ShopState) -> None:
    api.post("/CRM", ticket(1, CrmMessageList=[{"Message": "x"}]))
    api.put("/CRM/status/1", {"StatusName": "Renamed"})
    api.put("/CRM/department/1", {"Name": "Renamed"})
    api.post("/CRM/savedreply", {"Title": "t"})
    assert requests.post(f"{api.root}/_sim/reset", timeout=10).ok
    assert api.get("/CRM").status_code == 404
    assert api.get("/CRM/savedreply").status_code == 404
    assert s4s.all_crm_statuses(STORE) == list(DEFAULT_CRM_STATUSES)
    assert s4s.all_crm_departments(STORE) == list(DEFAULT_CRM_DEPARTMENTS)
    assert api.post("/CRM", ticket(1, CrmMessageList=[{"Message": "y"}])).json()[0]["Value"] == "1"
    assert api.get("/CRM/1").json()["CrmMessageList"][0]["MessageId"] == 1


# ----- auth, rate limit, routing --------------------------------------------------------------------

CRM_ROUTES = [
    ("GET", "/CRM"),
    ("POST", "/CRM"),
    ("GET", "/CRM/1"),
    ("PUT", "/CRM/1"),
    ("DELETE", "/CRM/1"),
    ("GET", "/CRM/1/message"),
    ("POST", "/CRM/1/message"),
    ("GET", "/CRM/1/message/1"),
    ("DELETE", "/CRM/1/message/1"),
    ("GET", "/CRM/status"),
    ("GET", "/CRM/status/1"),
    ("PUT", "/CRM/status/1"),
    ("GET", "/CRM/department"),
    ("PUT", "/CRM/department/1"),
    ("GET", "/CRM/savedreply"),
    ("POST", "/CRM/savedreply"),
    ("GET", "/CRM/savedreply/1"),
    ("PUT", "/CRM/savedreply/1"),
    ("DELETE", "/CRM/savedreply/1"),
]


def test_every_crm_route_needs_credentials(api: Api) -> None:
    api.headers = {**api.headers, "Token": "wrong"}
    for method, path in CRM_ROUTES:
        response = api.call(method, path, {"Message": "x"} if method in ("POST", "PUT") else None)
        assert response.status_code == 401, (method, path)
        assert response.json() == error(401, AUTH_FAILURE_MESSAGE)


def test_crm_routes_share_the_store_bucket(api: Api, s4s: Shift4ShopState) -> None:
    s4s.configure(rate_limit=True, bucket_size=3, leak_per_s=0.05)
    assert [api.get("/CRM/status").status_code for _ in range(2)] == [200, 200]
    assert api.post("/CRM", ticket(1)).status_code == 201
    throttled = api.get("/CRM/1")
    assert throttled.status_code == 429
    assert throttled.json() == [{"Key": "Error", "Value": "", "Status": "429", "Message": "Too many requests"}]
    assert int(throttled.headers["Retry-After"]) >= 1


def test_stores_have_their_own_crm(api: Api, s4s: Shift4ShopState, server: Any) -> None:
    other = Api(server[1].url, headers(OTHER, OTHER_CREDS))
    api.post("/CRM", ticket(1))
    api.put("/CRM/status/1", {"StatusName": "Mine"})
    assert other.get("/CRM").status_code == 404
    assert other.get("/CRM/status/1").json()[0]["StatusName"] == "Open"
    assert other.post("/CRM", ticket(1)).json()[0]["Value"] == "1"


def test_any_path_case_and_v2_reach_the_crm(api: Api) -> None:
    api.post("/CRM", ticket(1))
    for path in ("/3dCartWebAPI/v2/CRM/1", "/3dcartwebapi/v1/crm/1", "/3DCARTWEBAPI/V1/Crm/1"):
        response = api.session.get(api.root + path, headers=api.headers, timeout=10)
        assert response.status_code == 200 and response.json()["CrmID"] == 1, path
    status = api.session.get(api.root + "/3dCartWebAPI/v1/CRM/Status/1", headers=api.headers, timeout=10)
    assert status.json()[0]["StatusName"] == "Open"


def test_customer_groups_have_no_name_filter(api: Api, s4s: Shift4ShopState) -> None:
    """GET /CustomerGroups documents only limit/offset/countonly: a client must match Name itself."""
    s4s.load_customer_groups(STORE, [{"Name": "Wholesale"}, {"Name": "VIP"}])
    assert [g["Name"] for g in api.get("/CustomerGroups", name="VIP").json()] == ["Wholesale", "VIP"]


# ----- Python API, admin endpoints, seeds ----------------------------------------------------------


def test_python_api_loads_and_dumps_tickets(s4s: Shift4ShopState) -> None:
    loaded = s4s.load_tickets(
        STORE,
        [
            ticket(
                40,
                CrmID=40,
                _dateOpened="2024-01-02T03:04:05Z",
                CrmMessageList=[
                    {"MessageId": 7, "Message": "hi", "_dateCreated": "2024-01-02T03:05:00Z"},
                    {"Message": "no id", "CrmFileList": [{"FileId": 1, "FileName": "a.png", "IsAdminUploaded": False}]},
                ],
            ),
            ticket(41),
        ],
    )
    assert loaded == [40, 41]
    tickets = s4s.all_tickets(STORE)
    first = tickets[0]
    assert first["_dateOpened"] == "2024-01-02T03:04:05Z" and first["DateOpened"] == "01/02/2024 03:04"
    assert [m["MessageId"] for m in first["CrmMessageList"]] == [7, 8]
    assert first["CrmMessageList"][0]["_dateCreated"] == "2024-01-02T03:05:00Z"
    assert first["CrmMessageList"][1]["CrmFileList"][0]["FileName"] == "a.png"
    assert tickets[1]["CrmMessageList"] == []
    assert s4s.all_crm_statuses(STORE) == list(DEFAULT_CRM_STATUSES)
    assert s4s.all_crm_departments(STORE) == list(DEFAULT_CRM_DEPARTMENTS)

    s4s.load_tickets(STORE, [ticket(99, CrmID=40)])  # same id: replaced with its messages
    assert s4s.all_tickets(STORE)[0]["CrmMessageList"] == [] and s4s.all_tickets(STORE)[0]["Subject"] == "Question 99"


def test_admin_crm_load_and_dump(api: Api) -> None:
    root = api.root
    body = {
        "tickets": [ticket(1, CrmID=10, StatusID=20, CrmMessageList=[{"Message": "seeded"}])],
        "statuses": [{"Id": 4, "StatusId": 20, "StatusName": "Escalated"}],
        "departments": [{"DepartmentId": 2, "Name": "Billing", "Visible": True}],
        "savedReplies": [{"Title": "Thanks", "Message": "Thank you!"}],
    }
    loaded = requests.post(f"{root}/_sim/crm", params={"secure_url": STORE}, json=body, timeout=10)
    assert loaded.status_code == 201
    assert loaded.json() == {"statusIds": [4], "departmentIds": [2], "savedReplyIds": [1], "ticketIds": [10]}
    dump = requests.get(f"{root}/_sim/crm", params={"secure_url": STORE}, timeout=10).json()
    assert [t["CrmID"] for t in dump["tickets"]] == [10]
    assert dump["tickets"][0]["CrmMessageList"][0]["Message"] == "seeded"
    assert "_dateLastAction" in dump["tickets"][0]
    assert [s["StatusName"] for s in dump["statuses"]] == ["Open", "In Progress", "Closed", "Escalated"]
    assert [d["Name"] for d in dump["departments"]] == ["General", "Billing"]
    assert dump["savedReplies"] == [{"Id": 1, "Title": "Thanks", "Message": "Thank you!"}]

    assert ids(api.get("/CRM", statusid=20)) == [10]
    assert api.post("/CRM", ticket(2, DepartmentID=2)).json()[0]["Value"] == "11"
    replaced = requests.post(
        f"{root}/_sim/crm", params={"secure_url": STORE, "replace": "true"}, json={"statuses": []}, timeout=10
    )
    assert replaced.status_code == 201 and api.get("/CRM/status").status_code == 404
    assert requests.get(f"{root}/_sim/crm", params={"secure_url": "nowhere"}, timeout=10).status_code == 404
    assert requests.post(f"{root}/_sim/crm", params={"secure_url": STORE}, json="x", timeout=10).status_code == 400


def test_seed_file_round_trips_the_crm(s4s: Shift4ShopState, tmp_path: Any) -> None:
    s4s.load_crm_statuses(STORE, [{"Id": 2, "StatusName": "Pending"}])
    s4s.load_crm_saved_replies(STORE, [{"Title": "Hello"}])
    s4s.load_tickets(STORE, [ticket(1, CrmMessageList=[{"Message": "a"}]), ticket(2)])
    path = tmp_path / "dump.json"
    s4s.dump_seed(path, STORE)
    again = Shift4ShopState.from_seed_file(path, stores={STORE: CREDS})
    assert again.all_crm(STORE) == s4s.all_crm(STORE)
