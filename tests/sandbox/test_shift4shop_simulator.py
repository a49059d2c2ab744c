"""The Shift4Shop (3dcart) simulator reproduces the documented API rules over real HTTP.

One simulator runs for the module; every test starts from an emptied state (fixture ``s4s``) with
the rate limiter off (rate-limit tests switch it on) and the lenient reading of every unconfirmed
behaviour (``sandbox.profiles``), so each test reads like the behaviour it pins. The tests under
"readings of unconfirmed behaviours" switch one knob at a time and pin both of its readings.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from sandbox.common import ServerThread
from sandbox.profiles import PROFILES, apply_profile
from sandbox.shift4shop import CUSTOMER_FIELDS, FIELD_MAX_LENGTHS, Shift4ShopState, create_app
from sandbox.shift4shop.state import (
    AUTH_FAILURE_MESSAGE,
    CUSTOMER_GROUP_FIELDS,
    CUSTOMERS_NOT_FOUND_MESSAGE,
    DEFAULT_PRIVATE_KEY,
    DEFAULT_TOKEN,
    OFFSET_EXCEEDS_MESSAGE,
)

STORE = "https://demo-store.3dcartstores.com"
OTHER = "https://other-store.3dcartstores.com"
CREDS = {"private_key": "pk-demo", "token": "tok-demo"}
OTHER_CREDS = {"private_key": "pk-other", "token": "tok-other"}
BASE_CONFIG = {
    "rate_limit": False,
    "bucket_size": 50,
    "leak_per_s": 2.0,
    "latency_s": 0.0,
    "default_limit": 10,
    "max_limit": 500,
    **PROFILES["lenient"].shift4shop,  # send_retry_after, array_post, bulk_put_missing, ...
}


def headers(url: str = STORE, creds: dict[str, str] = CREDS, **extra: str) -> dict[str, str]:
    return {
        "SecureURL": url,
        "PrivateKey": creds["private_key"],
        "Token": creds["token"],
        "Accept": "application/json",
        "Content-Type": "application/json",
        **extra,
    }


class Api:
    """A thin client for one store, so tests read as API calls."""

    def __init__(self, root: str, hdrs: dict[str, str]):
        self.root = root
        self.base = f"{root}/3dCartWebAPI/v1"
        self.headers = hdrs
        self.session = requests.Session()

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> requests.Response:
        hdrs = {**self.headers, **kw.pop("headers", {})}
        data = None if body is None else json.dumps(body)
        return self.session.request(method, self.base + path, headers=hdrs, data=data, timeout=10, **kw)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.call("GET", path, params=params)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.call("POST", path, body)

    def put(self, path: str, body: Any) -> requests.Response:
        return self.call("PUT", path, body)

    def delete(self, path: str) -> requests.Response:
        return self.call("DELETE", path)


def error(status: int, message: str, value: str = "") -> list[dict[str, str]]:
    return [{"Key": "Error", "Value": value, "Status": str(status), "Message": message}]


def customer(i: int, **fields: Any) -> dict[str, Any]:
    return {
        "Email": f"user{i}@example.com",
        "Password": f"secret{i}",
        "BillingFirstName": f"First{i}",
        "BillingLastName": f"Last{i}",
        "Enabled": True,
        **fields,
    }


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


@pytest.fixture
def other_api(s4s: Shift4ShopState, server: tuple[Shift4ShopState, ServerThread]) -> Api:
    return Api(server[1].url, headers(OTHER, OTHER_CREDS))


# ----- authentication, store isolation, transport ------------------------------------------


def test_header_names_are_case_insensitive_and_bearer_is_ignored(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(1)])
    lower = {
        "secureurl": STORE,
        "privatekey": CREDS["private_key"],
        "token": CREDS["token"],
        "Authorization": "Bearer something-else",
    }
    api.headers = lower
    assert api.get("/Customers").status_code == 200
    api.headers = {"SecureUrl": STORE, "PRIVATEKEY": CREDS["private_key"], "TOKEN": CREDS["token"]}
    assert api.get("/Customers").status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "https://demo-store.3dcartstores.com",
        "http://demo-store.3dcartstores.com/",
        "https://www.Demo-Store.3dcartstores.com/",
        "demo-store.3dcartstores.com",
        "DEMO-STORE.3DCARTSTORES.COM",
    ],
)
def test_secure_url_forms_are_normalised(api: Api, s4s: Shift4ShopState, url: str) -> None:
    s4s.load_customers(STORE, [customer(1)])
    api.headers = headers(url)
    response = api.get("/Customers")
    assert response.status_code == 200
    assert [c["Email"] for c in response.json()] == ["user1@example.com"]


@pytest.mark.parametrize(
    "override",
    [
        {"Token": "wrong"},
        {"PrivateKey": "wrong"},
        {"SecureURL": "https://unknown-store.3dcartstores.com"},
        {"SecureURL": OTHER},  # a real store, but these credentials belong to another one
        {"Token": ""},
    ],
)
def test_bad_credentials_get_401_with_documented_message(api: Api, override: dict[str, str]) -> None:
    api.headers = {**api.headers, **override}
    response = api.get("/Customers")
    assert response.status_code == 401
    assert response.json() == error(401, AUTH_FAILURE_MESSAGE)


def test_missing_header_gets_401(api: Api) -> None:
    api.headers = {k: v for k, v in api.headers.items() if k != "Token"}
    assert api.get("/Customers").status_code == 401
    assert api.post("/Customers", customer(1)).status_code == 401


def test_stores_are_isolated_with_their_own_id_sequences(api: Api, other_api: Api) -> None:
    assert api.post("/Customers", customer(1)).json()[0]["Value"] == "1"
    assert api.post("/Customers", customer(2)).json()[0]["Value"] == "2"
    assert other_api.get("/Customers").status_code == 404
    assert other_api.post("/Customers", customer(1)).json()[0]["Value"] == "1"  # same email is fine
    assert other_api.get("/Customers/2").status_code == 404
    assert [c["CustomerID"] for c in api.get("/Customers").json()] == [1, 2]


def test_responses_carry_aspnet_json_headers(api: Api) -> None:
    for response in (api.post("/Customers", customer(1)), api.get("/Customers/99")):
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_non_json_content_type_gets_415(api: Api, content_type: str | None) -> None:
    api.headers = {k: v for k, v in api.headers.items() if k != "Content-Type"}
    extra = {"Content-Type": content_type} if content_type else {}
    response = api.call("POST", "/Customers", customer(1), headers=extra)
    assert response.status_code == 415
    assert response.json()[0]["Key"] == "Error"
    assert response.json()[0]["Status"] == "415"


def test_json_content_type_with_charset_is_accepted(api: Api) -> None:
    response = api.call("POST", "/Customers", customer(1), headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 201


@pytest.mark.parametrize("raw", ['{"Email": "a@b.c",', "", "not json"])
def test_malformed_json_gets_400_error_array(api: Api, raw: str) -> None:
    response = api.session.post(api.base + "/Customers", data=raw, headers=api.headers, timeout=10)
    assert response.status_code == 400
    assert response.json()[0]["Key"] == "Error"


def test_unknown_routes_and_methods_never_leak_fastapi_shapes(api: Api) -> None:
    for method, path in [("GET", "/Notes"), ("GET", "/Customers/1/Tags"), ("DELETE", "/Customers"), ("GET", "/")]:
        response = api.call(method, path)
        assert response.status_code in (404, 405), (method, path)
        body = response.json()
        assert isinstance(body, list) and body[0]["Key"] == "Error", body
        assert "detail" not in response.text
    assert api.session.get(api.root + "/docs", timeout=10).status_code == 404


def test_non_numeric_id_is_a_400_error_array(api: Api) -> None:
    response = api.get("/Customers/abc")
    assert response.status_code == 400
    assert response.json()[0]["Key"] == "Error"


def test_v2_and_any_path_case_reach_the_same_store(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(1)])
    for path in ("/3dCartWebAPI/v2/Customers", "/3dcartwebapi/v1/customers", "/3DCARTWEBAPI/V1/CUSTOMERS/1"):
        response = api.session.get(api.root + path, headers=api.headers, timeout=10)
        assert response.status_code == 200, path
        assert response.json()[0]["Email"] == "user1@example.com"
    assert api.session.get(api.root + "/3dCartWebAPI/v3/Customers", headers=api.headers, timeout=10).status_code == 404


# ----- paging and counting ------------------------------------------------------------------


def test_default_limit_is_10_and_rows_ascend_by_customer_id(api: Api, s4s: Shift4ShopState) -> None:
    ids = [17, 3, 40, 8, 25, 1, 33, 12, 5, 29, 2, 50]
    s4s.load_customers(STORE, [customer(i, CustomerID=i) for i in ids])
    rows = api.get("/Customers").json()
    assert [r["CustomerID"] for r in rows] == sorted(ids)[:10]


def test_offset_is_one_based_and_zero_means_one(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(i) for i in range(1, 8)])

    def ids(**params: Any) -> list[int]:
        return [r["CustomerID"] for r in api.get("/Customers", **params).json()]

    assert ids(limit=3, offset=1) == [1, 2, 3]
    assert ids(limit=3, offset=0) == [1, 2, 3]
    assert ids(limit=3, offset=4) == [4, 5, 6]
    assert ids(limit=3, offset=7) == [7]  # exact last page: offset == total returns the last row


def test_paging_with_offset_plus_page_length_covers_every_row_once(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(i) for i in range(1, 307)])
    assert api.get("/Customers", countonly=1).json() == {"TotalCount": 306}
    seen: list[int] = []
    offset = 1
    while True:
        response = api.get("/Customers", limit=100, offset=offset)
        if response.status_code != 200:
            break
        page = [r["CustomerID"] for r in response.json()]
        seen += page
        offset += len(page)
    assert response.status_code == 400
    assert response.json() == error(400, OFFSET_EXCEEDS_MESSAGE, "offset")
    assert seen == list(range(1, 307))


def test_offset_past_the_end_gets_the_exact_400_message(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(i) for i in range(1, 6)])
    response = api.get("/Customers", limit=10, offset=6)
    assert response.status_code == 400
    assert response.json()[0]["Message"] == "Offset amount exceeds the total number of records"


def test_limit_is_capped_at_500(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(i) for i in range(1, 601)])
    assert len(api.get("/Customers", limit=1000).json()) == 500
    assert len(api.get("/Customers", limit=500, offset=501).json()) == 100


def test_empty_result_is_404_not_an_empty_array(api: Api, s4s: Shift4ShopState) -> None:
    response = api.get("/Customers")
    assert response.status_code == 404
    assert response.json() == error(404, "No Customer records found")
    s4s.load_customers(STORE, [customer(1)])
    assert api.get("/Customers", email="nobody@example.com").status_code == 404
    assert api.get("/Customers", email="nobody@example.com", offset=5).status_code == 404


def test_countonly_counts_matches_and_ignores_paging(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(i, BillingCity="Austin" if i % 2 else "Boston") for i in range(1, 22)])
    assert api.get("/Customers", countonly=1).json() == {"TotalCount": 21}
    assert api.get("/Customers", countonly=1, city="austin", limit=2, offset=3).json() == {"TotalCount": 11}
    assert api.get("/Customers", countonly=1, city="Paris").json() == {"TotalCount": 0}


def test_blank_query_parameters_are_ignored(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(i) for i in range(1, 13)])
    response = api.get("/Customers", limit="", offset="", countonly="", email="")
    assert response.status_code == 200
    assert len(response.json()) == 10


@pytest.mark.parametrize("params", [{"limit": "ten"}, {"offset": "-1"}, {"limit": "-5"}, {"countonly": "yes"}])
def test_invalid_paging_parameters_get_400(api: Api, s4s: Shift4ShopState, params: dict[str, str]) -> None:
    s4s.load_customers(STORE, [customer(1)])
    response = api.get("/Customers", **params)
    assert response.status_code == 400
    assert response.json()[0]["Key"] == "Error"


# ----- filters -------------------------------------------------------------------------------


def test_email_filter_is_case_insensitive_and_exact(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(1, Email="Ann.Lee@Example.com"), customer(2, Email="ann.lee@example.co")])
    rows = api.get("/Customers", email="ANN.LEE@EXAMPLE.COM").json()
    assert [r["CustomerID"] for r in rows] == [1]
    assert api.get("/Customers", email="ann.lee").status_code == 404  # not a partial match


def test_query_parameter_names_are_case_insensitive(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(i) for i in range(1, 4)])
    rows = api.get("/Customers", Email="user2@example.com").json()
    assert [r["CustomerID"] for r in rows] == [2]
    assert len(api.get("/Customers", LIMIT=2).json()) == 2


@pytest.mark.parametrize(
    ("param", "field", "value"),
    [
        ("firstname", "BillingFirstName", "Grace"),
        ("lastname", "BillingLastName", "Hopper"),
        ("country", "BillingCountry", "US"),
        ("state", "BillingState", "FL"),
        ("city", "BillingCity", "Miami"),
        ("phone", "BillingPhoneNumber", "+1 305 555 0100"),
    ],
)
def test_billing_filters_match_exactly_ignoring_case(
    api: Api, s4s: Shift4ShopState, param: str, field: str, value: str
) -> None:
    s4s.load_customers(STORE, [customer(1, **{field: value}), customer(2, **{field: value + "x"}), customer(3)])
    rows = api.get("/Customers", **{param: value.upper()}).json()
    assert [r["CustomerID"] for r in rows] == [1]


def test_filters_combine(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(
        STORE,
        [
            customer(1, BillingCity="Miami", BillingState="FL"),
            customer(2, BillingCity="Miami", BillingState="OH"),
            customer(3, BillingCity="Tampa", BillingState="FL"),
        ],
    )
    assert [r["CustomerID"] for r in api.get("/Customers", city="miami", state="fl").json()] == [1]


def test_lastupdate_window_uses_the_hidden_time(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(
        STORE,
        [
            customer(1, _lastUpdate="2024-03-01T08:00:00Z"),
            customer(2, _lastUpdate="2024-03-02T10:00:00Z"),
            customer(3, _lastUpdate="2024-03-02T10:00:01Z"),
            customer(4, _lastUpdate="2024-03-05T00:00:00Z"),
        ],
    )

    def ids(**params: Any) -> list[int]:
        response = api.get("/Customers", **params)
        return [r["CustomerID"] for r in response.json()] if response.status_code == 200 else []

    assert ids(lastupdatestart="03/02/2024") == [2, 3, 4]
    assert ids(lastupdatestart="03/02/2024 10:00:01") == [3, 4]
    # Both bounds are inclusive at second resolution.
    assert ids(lastupdatestart="03/02/2024 10:00:00", lastupdateend="03/02/2024 10:00:00") == [2]
    assert ids(lastupdateend="03/02/2024 23:59:59") == [1, 2, 3]
    # A date-only end is midnight at the start of that day, as .NET parses it.
    assert ids(lastupdateend="03/05/2024") == [1, 2, 3, 4]
    assert ids(lastupdateend="03/02/2024") == [1]
    assert api.get("/Customers", lastupdatestart="03/06/2024").status_code == 404
    assert api.get("/Customers", countonly=1, lastupdatestart="3/2/2024").json() == {"TotalCount": 3}


def test_invalid_lastupdate_date_gets_400(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(1)])
    response = api.get("/Customers", lastupdatestart="31/12/2024")
    assert response.status_code == 400
    assert response.json()[0]["Value"] == "lastupdatestart"


def test_writes_move_the_hidden_last_update(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(
        STORE, [customer(1, _lastUpdate="2020-01-01T00:00:00Z"), customer(2, _lastUpdate="2020-01-01T00:00:00Z")]
    )
    before = time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime(time.time() - 1))
    assert api.put("/Customers", [{"CustomerID": 2, "Comments": "called"}]).status_code == 200
    assert [r["CustomerID"] for r in api.get("/Customers", lastupdatestart=before).json()] == [2]
    hidden = {c["CustomerID"]: c["_lastUpdate"] for c in s4s.all_customers(STORE)}
    assert hidden[1] == "2020-01-01T00:00:00Z"
    assert hidden[2] > "2020-01-01T00:00:00Z"


# ----- the Customer object ----------------------------------------------------------------------


def test_get_by_id_returns_a_one_element_array_with_exactly_the_36_fields(api: Api) -> None:
    api.post("/Customers", {"Email": "a@example.com", "Password": "pw", "BillingFirstName": "Ann", "MailList": True})
    response = api.get("/Customers/1")
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list) and len(body) == 1
    record = body[0]
    assert list(record) == list(CUSTOMER_FIELDS) and len(record) == 36
    assert "LastUpdate" not in record and "_lastUpdate" not in record
    assert record["CustomerID"] == 1 and record["BillingFirstName"] == "Ann"
    assert record["BillingCompany"] is None and record["Comments"] is None  # unset strings are null
    assert record["MailList"] is True and record["Enabled"] is False
    assert record["CustomerGroupID"] == 0 and record["ShippingAddressType"] == 0
    assert isinstance(record["TotalStoreCredit"], float)


def test_password_comes_back_as_an_md5_hash(api: Api) -> None:
    api.post("/Customers", {"Email": "a@example.com", "Password": "s3cret!"})
    assert api.get("/Customers/1").json()[0]["Password"] == hashlib.md5(b"s3cret!").hexdigest()
    api.put("/Customers/1", {"Password": "changed"})
    assert api.get("/Customers/1").json()[0]["Password"] == hashlib.md5(b"changed").hexdigest()


def test_unknown_customer_id_gets_404(api: Api) -> None:
    response = api.get("/Customers/42")
    assert response.status_code == 404
    assert response.json() == error(404, "The Customer record was not found.", "42")


# ----- create -------------------------------------------------------------------------------


def test_create_returns_201_with_the_documented_result(api: Api) -> None:
    response = api.post("/Customers", {**customer(1), "CustomerID": 999, "TotalStoreCredit": 50})
    assert response.status_code == 201
    assert response.json() == [{"Key": "CustomerID", "Value": "1", "Status": "201", "Message": "Created successfully"}]
    created = api.get("/Customers/1").json()[0]
    assert created["TotalStoreCredit"] == 0.0  # computed by the store, not writable
    assert api.get("/Customers/999").status_code == 404


@pytest.mark.parametrize("missing", ["Email", "Password"])
def test_email_and_password_are_required_on_create(api: Api, missing: str) -> None:
    body = {k: v for k, v in customer(1).items() if k != missing}
    response = api.post("/Customers", body)
    assert response.status_code == 400
    assert response.json() == error(400, f"{missing} is required.", missing)
    assert api.post("/Customers", {**body, missing: ""}).status_code == 400


@pytest.mark.parametrize(
    "field", ["Email", "Password", "Comments", "AdditionalField1", "AdditionalField3", "BillingZipCode"]
)
def test_max_lengths_are_enforced(api: Api, field: str) -> None:
    limit = FIELD_MAX_LENGTHS[field]
    at_limit = "a" * (limit - len("@x.io")) + "@x.io" if field == "Email" else "a" * limit
    assert api.post("/Customers", customer(1, **{field: at_limit})).status_code == 201
    response = api.post("/Customers", customer(2, **{field: at_limit + "b"}))
    assert response.status_code == 400
    [item] = response.json()
    assert item["Key"] == "Error" and item["Value"] == field and field in item["Message"]


def test_field_names_bind_case_insensitively_and_unknown_ones_are_ignored(api: Api) -> None:
    response = api.post("/Customers", {"email": "a@example.com", "PASSWORD": "pw", "billingcity": "Austin", "Nope": 1})
    assert response.status_code == 201
    assert api.get("/Customers/1").json()[0]["BillingCity"] == "Austin"


def test_wrongly_typed_field_is_a_400_naming_it(api: Api) -> None:
    response = api.post("/Customers", customer(1, CustomerGroupID="gold"))
    assert response.status_code == 400
    assert response.json()[0]["Value"] == "CustomerGroupID"


def test_duplicate_email_in_another_case_is_rejected(api: Api) -> None:
    assert api.post("/Customers", customer(1, Email="Ann@Example.com")).status_code == 201
    response = api.post("/Customers", customer(2, Email="ann@EXAMPLE.COM"))
    assert response.status_code == 400
    assert response.json() == error(400, "Customer email already exists", "Email")
    assert api.get("/Customers", countonly=1).json() == {"TotalCount": 1}


def test_array_post_answers_per_item_in_order(api: Api) -> None:
    response = api.post("/Customers", [customer(1), customer(2)])
    assert response.status_code == 201
    assert [(r["Value"], r["Status"]) for r in response.json()] == [("1", "201"), ("2", "201")]

    response = api.post(
        "/Customers", [customer(3), customer(4, Email="USER1@example.com"), {"Email": "x@y.z"}, customer(5)]
    )
    assert response.status_code == 206
    body = response.json()
    assert [r["Status"] for r in body] == ["201", "400", "400", "201"]
    assert body[1]["Message"] == "Customer email already exists"
    assert body[2]["Value"] == "Password"
    assert [body[0]["Value"], body[3]["Value"]] == ["3", "4"]

    response = api.post("/Customers", [customer(1), {"Password": "x"}])
    assert response.status_code == 400
    assert [r["Status"] for r in response.json()] == ["400", "400"]


def test_array_post_can_be_switched_off(api: Api, s4s: Shift4ShopState) -> None:
    s4s.configure(accept_array_post=False)
    response = api.post("/Customers", [customer(1)])
    assert response.status_code == 400
    assert response.json()[0]["Key"] == "Error"
    assert api.get("/Customers").status_code == 404


# ----- update and delete --------------------------------------------------------------------


def test_bulk_put_updates_only_the_fields_sent(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(1, BillingCity="Austin", MailList=True), customer(2, Comments="vip")])
    before = api.get("/Customers/1").json()[0]
    response = api.put("/Customers", [{"CustomerID": 1, "Comments": "called"}, {"CustomerID": 2, "MailList": True}])
    assert response.status_code == 200
    assert response.json() == [
        {"Key": "CustomerID", "Value": "1", "Status": "200", "Message": "updated successfully"},
        {"Key": "CustomerID", "Value": "2", "Status": "200", "Message": "updated successfully"},
    ]
    after = api.get("/Customers/1").json()[0]
    assert after == {**before, "Comments": "called"}
    second = api.get("/Customers/2").json()[0]
    assert second["Comments"] == "vip" and second["MailList"] is True


def test_bulk_put_mix_is_206_with_a_status_per_item(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(1), customer(2)])
    response = api.put(
        "/Customers",
        [
            {"CustomerID": 1, "BillingCity": "Austin"},
            {"CustomerID": 77, "BillingCity": "Austin"},
            {"CustomerID": 2, "Comments": "x" * 256},
            {"BillingCity": "No id"},
            {"CustomerID": 2, "Email": "USER1@example.com"},
        ],
    )
    assert response.status_code == 206
    body = response.json()
    assert [r["Status"] for r in body] == ["200", "404", "400", "400", "400"]
    assert [r["Value"] for r in body[:3]] == ["1", "77", "2"]
    assert "Comments" in body[2]["Message"]
    assert body[3]["Message"] == "CustomerID is required."
    assert body[4]["Message"] == "Customer email already exists"
    assert api.get("/Customers/2").json()[0]["Comments"] is None  # the failed item changed nothing


def test_bulk_put_none_found_is_404_and_all_invalid_is_400(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(1)])
    response = api.put("/Customers", [{"CustomerID": 50}, {"CustomerID": 51}])
    assert response.status_code == 404
    assert [r["Status"] for r in response.json()] == ["404", "404"]
    response = api.put("/Customers", [{"CustomerID": 1, "Email": ""}, {"Comments": "no id"}])
    assert response.status_code == 400
    assert [r["Status"] for r in response.json()] == ["400", "400"]


@pytest.mark.parametrize("body", [{"CustomerID": 1, "Comments": "x"}, [], "text"])
def test_bulk_put_needs_a_non_empty_array(api: Api, s4s: Shift4ShopState, body: Any) -> None:
    s4s.load_customers(STORE, [customer(1)])
    response = api.put("/Customers", body)
    assert response.status_code == 400
    assert response.json()[0]["Key"] == "Error"


def test_changing_only_the_case_of_ones_own_email_is_allowed(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(1)])
    assert api.put("/Customers", [{"CustomerID": 1, "Email": "USER1@EXAMPLE.COM"}]).status_code == 200
    assert api.get("/Customers", email="user1@example.com").json()[0]["Email"] == "USER1@EXAMPLE.COM"


def test_put_by_id(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(1)])
    response = api.put("/Customers/1", {"BillingState": "TX"})
    assert response.status_code == 200
    assert response.json() == [{"Key": "CustomerID", "Value": "1", "Status": "200", "Message": "updated successfully"}]
    assert api.get("/Customers/1").json()[0]["BillingState"] == "TX"
    missing = api.put("/Customers/9", {"BillingState": "TX"})
    assert missing.status_code == 404
    assert missing.json() == error(404, "The Customer record was not found.", "9")
    assert api.put("/Customers/1", {"BillingZipCode": "1" * 21}).status_code == 400


def test_delete_then_gone_and_email_reusable(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(1), customer(2)])
    response = api.delete("/Customers/1")
    assert response.status_code == 200
    assert response.json() == [{"Key": "CustomerID", "Value": "1", "Status": "200", "Message": "Deleted successfully"}]
    assert api.get("/Customers/1").status_code == 404
    assert api.delete("/Customers/1").status_code == 404
    assert api.post("/Customers", customer(1)).json()[0]["Value"] == "3"  # ids are never reused


def test_concurrent_writes_get_unique_ids_and_one_email_wins(api: Api) -> None:
    def post(body: dict[str, Any]) -> requests.Response:
        return requests.post(api.base + "/Customers", data=json.dumps(body), headers=api.headers, timeout=10)

    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(post, [customer(i) for i in range(1, 41)]))
        racing = list(pool.map(post, [customer(99)] * 12))
    assert sorted(int(r.json()[0]["Value"]) for r in created) == list(range(1, 41))
    assert sorted(r.status_code for r in racing) == [201] + [400] * 11


# ----- rate limiting ------------------------------------------------------------------------------


def test_burst_of_50_passes_and_the_51st_gets_429(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(1)])
    # A slow leak keeps the burst exact however slow the machine is.
    s4s.configure(rate_limit=True, bucket_size=50, leak_per_s=0.05)
    statuses = [api.get("/Customers/1").status_code for _ in range(50)]
    assert statuses == [200] * 50
    response = api.get("/Customers/1")
    assert response.status_code == 429
    assert response.json() == [{"Key": "Error", "Value": "", "Status": "429", "Message": "Too many requests"}]
    assert int(response.headers["Retry-After"]) >= 1


def test_bucket_leaks_at_the_configured_rate(s4s: Shift4ShopState) -> None:
    clock = 1000.0
    store = "demo-store.3dcartstores.com"
    s4s.configure(rate_limit=True, bucket_size=50, leak_per_s=2.0)
    assert all(s4s.throttle(store, "pk-demo", now=clock) is None for _ in range(50))
    assert s4s.throttle(store, "pk-demo", now=clock) == pytest.approx(0.5)
    assert s4s.throttle(store, "pk-demo", now=clock + 0.5) is None  # one request leaked
    assert s4s.throttle(store, "pk-demo", now=clock + 0.5) is not None
    assert s4s.throttle(store, "pk-demo", now=clock + 1.5) is None  # two more leaked
    assert s4s.throttle(store, "pk-demo", now=clock + 1.5) is None
    assert s4s.throttle(store, "pk-demo", now=clock + 1.5) is not None


def test_throttled_client_recovers_after_retry_after(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(1)])
    s4s.configure(rate_limit=True, bucket_size=3, leak_per_s=2.0)
    assert [api.get("/Customers/1").status_code for _ in range(3)] == [200] * 3
    throttled = api.get("/Customers/1")
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"
    time.sleep(0.6)  # 2/s frees a slot within 0.5 s
    assert api.get("/Customers/1").status_code == 200


def test_buckets_are_per_store_and_app_and_can_be_switched_off(api: Api, other_api: Api, s4s: Shift4ShopState) -> None:
    s4s.configure(rate_limit=True, bucket_size=2, leak_per_s=0.05, send_retry_after=False)
    assert [api.get("/Customers").status_code for _ in range(3)] == [404, 404, 429]
    assert "Retry-After" not in api.get("/Customers").headers
    assert other_api.get("/Customers").status_code == 404  # another store's bucket is untouched
    assert api.session.get(api.root + "/_sim/customers", params={"secure_url": STORE}, timeout=10).status_code == 200
    s4s.configure(rate_limit=False)
    assert api.get("/Customers").status_code == 404


# ----- customer groups ------------------------------------------------------------------------


def test_customer_group_crud(api: Api) -> None:
    assert api.get("/CustomerGroups").json() == error(404, "There are no Customer Groups.")
    created = api.post("/CustomerGroups", {"Name": "Wholesale", "MinimumOrder": 100, "NonTaxable": True})
    assert created.status_code == 201
    assert created.json() == [
        {"Key": "CustomerGroupID", "Value": "1", "Status": "201", "Message": "Created successfully"}
    ]
    api.post("/CustomerGroups", {"Name": "VIP"})

    [group] = api.get("/CustomerGroups/1").json()
    assert list(group) == list(CUSTOMER_GROUP_FIELDS)
    assert group["Name"] == "Wholesale" and group["MinimumOrder"] == 100.0 and group["NonTaxable"] is True
    assert [g["Name"] for g in api.get("/CustomerGroups").json()] == ["Wholesale", "VIP"]
    assert api.get("/CustomerGroups", countonly=1).json() == {"TotalCount": 2}
    assert api.get("/CustomerGroups", offset=3).json() == error(400, OFFSET_EXCEEDS_MESSAGE, "offset")

    assert api.put("/CustomerGroups/2", {"Description": "Top buyers"}).status_code == 200
    assert api.get("/CustomerGroups/2").json()[0]["Name"] == "VIP"  # partial update
    bulk = api.put("/CustomerGroups", [{"CustomerGroupID": 1, "PriceLevel": 2}, {"CustomerGroupID": 9, "Name": "x"}])
    assert bulk.status_code == 206
    assert [r["Status"] for r in bulk.json()] == ["200", "404"]
    assert api.get("/CustomerGroups/1").json()[0]["PriceLevel"] == 2

    assert api.delete("/CustomerGroups/2").json()[0]["Message"] == "Deleted successfully"
    assert api.get("/CustomerGroups/2").json() == error(404, "The specified Customer Group does not exist.", "2")


def test_customer_group_validation(api: Api) -> None:
    assert api.post("/CustomerGroups", {"Description": "no name"}).json() == error(400, "Name is required.", "Name")
    too_long = api.post("/CustomerGroups", {"Name": "n" * 151})
    assert too_long.status_code == 400 and too_long.json()[0]["Value"] == "Name"
    assert api.post("/CustomerGroups", {"Name": "n" * 150}).status_code == 201


def test_group_members_use_the_customer_filters(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customer_groups(
        STORE, [{"CustomerGroupID": 5, "Name": "Wholesale"}, {"CustomerGroupID": 6, "Name": "Empty"}]
    )
    s4s.load_customers(
        STORE,
        [
            customer(i, CustomerGroupID=5 if i % 2 else 0, BillingCity="Miami" if i < 5 else "Tampa")
            for i in range(1, 11)
        ],
    )
    assert [c["CustomerID"] for c in api.get("/CustomerGroups/5/Customers").json()] == [1, 3, 5, 7, 9]
    assert [c["CustomerID"] for c in api.get("/CustomerGroups/5/Customers", city="miami").json()] == [1, 3]
    assert [c["CustomerID"] for c in api.get("/CustomerGroups/5/Customers", limit=2, offset=3).json()] == [5, 7]
    assert api.get("/CustomerGroups/5/Customers", countonly=1).json() == {"TotalCount": 5}
    assert api.get("/CustomerGroups/5/Customers", offset=6).json()[0]["Message"] == OFFSET_EXCEEDS_MESSAGE
    message = "The Customer Group was not found and/or contains no customer records."
    assert api.get("/CustomerGroups/6/Customers").json() == error(404, message)
    assert api.get("/CustomerGroups/99/Customers").json() == error(404, message)


# ----- admin endpoints, seeds, request log --------------------------------------------------


def test_admin_load_keeps_ids_and_exposes_hidden_fields(api: Api) -> None:
    root = api.root
    body = [customer(1, CustomerID=40, _lastUpdate="2024-01-02T03:04:05Z"), customer(2, Password=None)]
    loaded = requests.post(
        f"{root}/_sim/customers", params={"secure_url": "demo-store.3dcartstores.com"}, json=body, timeout=10
    )
    assert loaded.status_code == 201
    assert loaded.json()["ids"] == [40, 41]
    dump = requests.get(f"{root}/_sim/customers", params={"secure_url": STORE}, timeout=10).json()
    assert [(c["CustomerID"], c["_lastUpdate"], c["_passwordSet"]) for c in dump] == [
        (40, "2024-01-02T03:04:05Z", True),
        (41, dump[1]["_lastUpdate"], False),
    ]
    assert api.post("/Customers", customer(3)).json()[0]["Value"] == "42"
    unknown = requests.post(f"{root}/_sim/customers", params={"secure_url": "nowhere.example"}, json=[], timeout=10)
    assert unknown.status_code == 404


def test_admin_config_stores_and_reset(api: Api, s4s: Shift4ShopState) -> None:
    root = api.root
    assert requests.post(f"{root}/_sim/config", json={"default_limit": 3, "accept_array_post": False}, timeout=10).ok
    assert s4s.default_limit == 3 and s4s.accept_array_post is False
    assert requests.post(f"{root}/_sim/config", json={"bogus": 1}, timeout=10).status_code == 400
    assert requests.post(f"{root}/_sim/config", json={"leak_per_s": 0}, timeout=10).status_code == 400
    assert requests.post(f"{root}/_sim/config", data="{", timeout=10).status_code == 400
    assert requests.post(f"{root}/_sim/stores", json={"secure_url": "x.example"}, timeout=10).status_code == 400

    new = {"secure_url": "https://new-shop.3dcartstores.com", "private_key": "pk-new", "token": "tok-new"}
    assert requests.post(f"{root}/_sim/stores", json=new, timeout=10).status_code == 201
    newbie = Api(root, headers(new["secure_url"], new))
    assert newbie.post("/Customers", customer(1)).status_code == 201

    api.post("/Customers", customer(1))
    assert requests.post(f"{root}/_sim/reset", timeout=10).ok
    assert api.get("/Customers").status_code == 404
    assert newbie.get("/Customers").status_code == 404  # the store and its credentials survive
    assert api.post("/Customers", customer(1)).json()[0]["Value"] == "1"


def test_request_log_records_api_calls_but_not_admin_calls(api: Api) -> None:
    api.get("/Customers")
    requests.get(f"{api.root}/_sim/customers", params={"secure_url": STORE}, timeout=10)
    log = requests.get(f"{api.root}/_sim/requests", timeout=10).json()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [("GET", "/3dCartWebAPI/v1/Customers", 404)]


def test_seed_file_round_trip(tmp_path: Any) -> None:
    seed = {
        "secureUrl": STORE,
        "customerGroups": [{"CustomerGroupID": 3, "Name": "Retail"}],
        "customers": [
            customer(1, CustomerID=10, CustomerGroupID=3, _lastUpdate="2024-05-06T07:08:09Z", TotalStoreCredit=12.5),
            customer(2, CustomerID=11),
        ],
    }
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    seeded = Shift4ShopState.from_seed_file(path, rate_limit=False)
    assert seeded.authenticate(STORE, DEFAULT_PRIVATE_KEY, DEFAULT_TOKEN) is not None
    first = seeded.all_customers()
    assert first[0]["Password"] == hashlib.md5(b"secret1").hexdigest()
    assert first[0]["TotalStoreCredit"] == 12.5

    dumped = tmp_path / "dump.json"
    seeded.dump_seed(dumped)
    again = Shift4ShopState.from_seed_file(dumped, stores={STORE: CREDS})
    assert again.all_customers() == first  # hashes are not hashed twice, hidden times kept
    assert again.all_customer_groups() == seeded.all_customer_groups()
    assert again.authenticate(STORE, CREDS["private_key"], CREDS["token"]) is not None

    elsewhere = Shift4ShopState.from_seed_file(dumped, stores={OTHER: OTHER_CREDS})
    assert len(elsewhere.all_customers(OTHER)) == 2  # the caller's only store wins over the seed's URL

    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps([customer(1)]))
    assert len(Shift4ShopState.from_seed_file(bare).all_customers()) == 1


def test_lookups_and_paging_at_100k_customers(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(i) for i in range(1, 100_001)])
    assert api.get("/Customers", email="USER99999@example.com").json()[0]["CustomerID"] == 99_999
    assert len(api.get("/Customers", limit=500, offset=99_501).json()) == 500
    assert api.get("/Customers", countonly=1).json() == {"TotalCount": 100_000}
    assert api.put("/Customers", [{"CustomerID": 5, "Email": "user6@example.com"}]).status_code == 400
    s4s.configure(email_filter="contains")  # a scan of the email index, not of the customers
    started = time.monotonic()
    assert [c["CustomerID"] for c in api.get("/Customers", email="USER99999@").json()] == [99_999]
    assert api.get("/Customers", email="user9999", countonly=1).json() == {"TotalCount": 11}  # 9999, 99990..99999
    assert time.monotonic() - started < 2.0


# ----- readings of unconfirmed behaviours (knobs; sandbox/profiles.py names them) ---------------


def body_kind(response: requests.Response) -> str:
    """What an answer carries: "json", "empty" or "html" (asserting each form is well-formed)."""
    if not response.content:
        assert response.headers["Content-Length"] == "0" and "Content-Type" not in response.headers
        return "empty"
    if response.headers["Content-Type"].startswith("text/html"):
        assert response.text.lstrip().lower().startswith(("<!doctype html", "<html"))
        return "html"
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    response.json()
    return "json"


def test_knob_defaults_are_the_lenient_readings() -> None:
    config = Shift4ShopState().config()
    assert {k: config[k] for k in PROFILES["lenient"].shift4shop} == PROFILES["lenient"].shift4shop
    assert set(PROFILES["strict"].shift4shop) <= set(config)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_each_profile_applies_and_shows_in_config(api: Api, s4s: Shift4ShopState, name: str) -> None:
    profile = apply_profile(name, shift4shop=s4s)
    expected = profile.shift4shop
    assert {k: s4s.config()[k] for k in expected} == expected
    over_http = requests.get(f"{api.root}/_sim/config", timeout=10).json()
    assert {k: over_http[k] for k in expected} == expected
    s4s.reset()  # data goes, the knobs stay
    assert {k: s4s.config()[k] for k in expected} == expected
    # One observable effect: how the store answers an array POST.
    response = api.post("/Customers", [customer(1)])
    assert (response.status_code, response.content == b"") == ((201, False) if name == "lenient" else (400, True))


def test_admin_config_sets_every_knob_and_refuses_bad_values(api: Api, s4s: Shift4ShopState) -> None:
    strict = PROFILES["strict"].shift4shop
    response = requests.post(f"{api.root}/_sim/config", json=strict, timeout=10)
    assert response.status_code == 200
    assert {k: response.json()[k] for k in strict} == strict
    assert {k: s4s.config()[k] for k in strict} == strict
    bad = requests.post(f"{api.root}/_sim/config", json={"error_bodies": "sometimes"}, timeout=10)
    assert bad.status_code == 400 and "error_bodies" in bad.json()[0]["Message"]  # admin errors stay JSON


@pytest.mark.parametrize(
    "change",
    [
        {"array_post": "bulk"},
        {"array_post": True},
        {"bulk_put_missing": "whole_404"},
        {"error_bodies": "html"},
        {"result_order": "random"},
        {"email_filter": "prefix"},
        {"unique_emails": "no"},
        {"normalize_crm_messages": 1},
        {"accept_array_post": "yes"},
        {"accept_array_post": True, "array_post": "reject"},
        {"accept_array_post": False, "array_post": "per_item"},
    ],
)
def test_configure_refuses_a_bad_knob_value_and_changes_nothing(s4s: Shift4ShopState, change: dict[str, Any]) -> None:
    before = s4s.config()
    with pytest.raises(ValueError, match=next(iter(change))):
        s4s.configure(**{"email_filter": "contains", **change})  # a valid change alongside is not kept
    assert s4s.config() == before


def test_accept_array_post_is_an_alias_of_array_post(s4s: Shift4ShopState) -> None:
    assert s4s.configure(accept_array_post=False)["array_post"] == "reject"
    assert s4s.accept_array_post is False
    assert s4s.configure(accept_array_post=True)["array_post"] == "per_item"
    assert s4s.configure(accept_array_post=False, array_post="reject_no_content")["array_post"] == "reject_no_content"
    assert s4s.accept_array_post is False
    assert "accept_array_post" not in s4s.config()  # array_post is the knob; the alias is not listed
    assert Shift4ShopState(accept_array_post=False).array_post == "reject"
    assert Shift4ShopState(array_post="reject_no_content", accept_array_post=False).array_post == "reject_no_content"


def test_array_post_reject_no_content_is_an_empty_400_and_creates_nothing(api: Api, s4s: Shift4ShopState) -> None:
    s4s.configure(array_post="reject_no_content")
    response = api.post("/Customers", [customer(1), customer(2)])
    assert response.status_code == 400
    assert response.content == b"" and body_kind(response) == "empty"
    assert response.headers["Cache-Control"] == "no-cache"  # still the ASP.NET headers
    assert s4s.all_customers(STORE) == []
    assert api.post("/Customers", customer(1)).status_code == 201  # one object is still fine


def test_array_post_reject_is_the_json_400_and_creates_nothing(api: Api, s4s: Shift4ShopState) -> None:
    s4s.configure(array_post="reject")
    response = api.post("/Customers", [customer(1)])
    assert response.status_code == 400
    assert response.json() == error(400, "The request body must be a single Customer object.")
    assert s4s.all_customers(STORE) == []


def _bulk_put_with_a_deleted_id(api: Api, s4s: Shift4ShopState) -> requests.Response:
    s4s.load_customers(STORE, [customer(1), customer(2), customer(3)])
    assert api.delete("/Customers/2").status_code == 200
    return api.put(
        "/Customers",
        [
            {"CustomerID": 1, "BillingCity": "Austin"},
            {"CustomerID": 2, "BillingCity": "Austin"},  # deleted
            {"CustomerID": 3, "Comments": "x" * 256},  # invalid: too long
        ],
    )


def test_bulk_put_missing_per_item(api: Api, s4s: Shift4ShopState) -> None:
    response = _bulk_put_with_a_deleted_id(api, s4s)
    assert response.status_code == 206
    assert [(r["Value"], r["Status"]) for r in response.json()] == [("1", "200"), ("2", "404"), ("3", "400")]
    assert api.get("/Customers/1").json()[0]["BillingCity"] == "Austin"
    assert api.get("/Customers/3").json()[0]["Comments"] is None


def test_bulk_put_missing_whole_404_apply_known(api: Api, s4s: Shift4ShopState) -> None:
    s4s.configure(bulk_put_missing="whole_404_apply_known")
    response = _bulk_put_with_a_deleted_id(api, s4s)
    assert response.status_code == 404
    assert response.json() == [
        {"Key": "Error", "Value": "", "Status": "404", "Message": "One or more Customer records were not found."}
    ]
    assert api.get("/Customers/1").json()[0]["BillingCity"] == "Austin"  # the known item WAS applied
    assert api.get("/Customers/3").json()[0]["Comments"] is None  # the invalid one was not
    assert api.get("/Customers/2").status_code == 404  # and nothing brought the deleted one back


def test_bulk_put_missing_whole_404_apply_none(api: Api, s4s: Shift4ShopState) -> None:
    s4s.configure(bulk_put_missing="whole_404_apply_none")
    response = _bulk_put_with_a_deleted_id(api, s4s)
    assert response.status_code == 404
    assert response.json() == error(404, CUSTOMERS_NOT_FOUND_MESSAGE)
    assert api.get("/Customers/1").json()[0]["BillingCity"] is None  # nothing applied
    assert api.get("/Customers/3").json()[0]["Comments"] is None


@pytest.mark.parametrize("mode", ["whole_404_apply_known", "whole_404_apply_none"])
def test_bulk_put_without_a_missing_id_keeps_per_item_results(api: Api, s4s: Shift4ShopState, mode: str) -> None:
    s4s.configure(bulk_put_missing=mode)
    s4s.load_customers(STORE, [customer(1), customer(2)])
    response = api.put("/Customers", [{"CustomerID": 1, "BillingCity": "Austin"}, {"CustomerID": 2, "Email": ""}])
    assert response.status_code == 206
    assert [(r["Value"], r["Status"]) for r in response.json()] == [("1", "200"), ("2", "400")]
    assert api.get("/Customers/1").json()[0]["BillingCity"] == "Austin"


def test_varied_error_bodies_rotate_json_empty_html(api: Api, s4s: Shift4ShopState) -> None:
    s4s.configure(error_bodies="varied")
    answers = [
        api.get("/Customers"),  # 404: no records
        api.get("/Customers/9"),  # 404: unknown id
        api.post("/Customers", {"Email": "a@b.c"}),  # 400: Password is required
        api.delete("/Customers/9"),  # 404 again: the rotation starts over
        api.put("/Customers", [{"CustomerID": 9}]),  # 404: every id unknown
    ]
    assert [r.status_code for r in answers] == [404, 404, 400, 404, 404]
    assert [body_kind(r) for r in answers] == ["json", "empty", "html", "json", "empty"]
    assert answers[0].json() == error(404, "No Customer records found")
    assert answers[3].json() == error(404, "The Customer record was not found.", "9")
    assert "Server Error" in answers[2].text and "400" in answers[2].text
    s4s.reset()  # the rotation starts over (and the knob stays)
    assert body_kind(api.get("/Customers/9")) == "json"
    assert body_kind(api.get("/Customers/9")) == "empty"


def test_varied_error_bodies_spare_the_offset_400_and_401_415_429_and_successes(api: Api, s4s: Shift4ShopState) -> None:
    s4s.configure(error_bodies="varied")
    s4s.load_customers(STORE, [customer(1), customer(2)])
    for _ in range(4):  # never anything but the JSON the clients key end-of-data on
        assert api.get("/Customers", offset=3).json() == error(400, OFFSET_EXCEEDS_MESSAGE, "offset")
    assert api.call("GET", "/Customers", headers={"Token": "wrong"}).json() == error(401, AUTH_FAILURE_MESSAGE)
    unsupported = api.call("POST", "/Customers", customer(3), headers={"Content-Type": "text/plain"})
    assert unsupported.status_code == 415 and unsupported.json()[0]["Status"] == "415"
    partial = api.put("/Customers", [{"CustomerID": 1, "BillingCity": "Austin"}, {"CustomerID": 9}])
    assert partial.status_code == 206 and len(partial.json()) == 2
    assert body_kind(api.get("/Customers/9")) == "json"  # none of the above used a turn
    assert body_kind(api.get("/Customers/9")) == "empty"
    s4s.configure(rate_limit=True, bucket_size=1, leak_per_s=0.05)
    assert api.get("/Customers/1").status_code == 200
    throttled = api.get("/Customers/1")
    assert throttled.status_code == 429 and throttled.json()[0]["Message"] == "Too many requests"


def test_json_error_bodies_never_vary(api: Api) -> None:
    assert [body_kind(api.get("/Customers/9")) for _ in range(4)] == ["json"] * 4


def test_shuffled_results_leave_request_order_but_keep_their_value(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(STORE, [customer(i) for i in range(1, 6)])
    items = [{"CustomerID": i, "Comments": f"note {i}"} for i in (3, 1, 5, 2, 4)]
    in_order = api.put("/Customers", items).json()
    assert [r["Value"] for r in in_order] == ["3", "1", "5", "2", "4"]  # request order by default

    s4s.configure(result_order="shuffled")
    for _ in range(3):
        shuffled = api.put("/Customers", items)
        assert shuffled.status_code == 200
        values = [r["Value"] for r in shuffled.json()]
        assert values != ["3", "1", "5", "2", "4"] and sorted(values) == ["1", "2", "3", "4", "5"]
    for _ in range(3):  # two items: the only other order
        pair = api.put("/Customers", [{"CustomerID": 1}, {"CustomerID": 2}]).json()
        assert [r["Value"] for r in pair] == ["2", "1"]

    posted = [customer(i) for i in range(10, 14)]
    created = api.post("/Customers", posted)
    assert created.status_code == 201
    new_ids = [int(r["Value"]) for r in created.json()]
    assert new_ids != sorted(new_ids)  # ids are allocated in request order; results are not in it
    emails = {api.get(f"/Customers/{i}").json()[0]["Email"] for i in new_ids}
    assert emails == {c["Email"] for c in posted}  # each Value names a customer that was posted

    s4s.load_customer_groups(STORE, [{"CustomerGroupID": 1, "Name": "A"}, {"CustomerGroupID": 2, "Name": "B"}])
    groups = api.put("/CustomerGroups", [{"CustomerGroupID": 1, "PriceLevel": 1}, {"CustomerGroupID": 2}])
    assert [r["Value"] for r in groups.json()] == ["2", "1"]


def test_shuffled_order_is_repeatable_after_reset(api: Api, s4s: Shift4ShopState) -> None:
    s4s.configure(result_order="shuffled")

    def run() -> list[str]:
        s4s.reset()
        s4s.load_customers(STORE, [customer(i) for i in range(1, 7)])
        return [r["Value"] for r in api.put("/Customers", [{"CustomerID": i} for i in range(1, 7)]).json()]

    assert run() == run()


def test_email_filter_contains_matches_partially(api: Api, s4s: Shift4ShopState) -> None:
    s4s.load_customers(
        STORE,
        [
            customer(1, Email="ann@x.com"),
            customer(2, Email="JoAnn@X.com"),
            customer(3, Email="bob@x.com"),
            customer(4, Email="anna@y.com"),
        ],
    )
    assert [c["CustomerID"] for c in api.get("/Customers", email="ann@x.com").json()] == [1]  # exact
    s4s.configure(email_filter="contains")
    assert [c["CustomerID"] for c in api.get("/Customers", email="ANN@x.com").json()] == [1, 2]
    assert [c["CustomerID"] for c in api.get("/Customers", email="ann").json()] == [1, 2, 4]
    assert api.get("/Customers", email="ann", countonly=1).json() == {"TotalCount": 3}
    assert [c["CustomerID"] for c in api.get("/Customers", email="ann", firstname="first2").json()] == [2]
    assert api.get("/Customers", email="zed").status_code == 404


def test_unique_emails_off_lets_two_customers_share_an_email(api: Api, s4s: Shift4ShopState) -> None:
    s4s.configure(unique_emails=False)
    assert api.post("/Customers", customer(1, Email="Ann@Example.com")).status_code == 201
    assert api.post("/Customers", customer(2, Email="ann@example.com")).status_code == 201
    api.post("/Customers", customer(3))
    assert api.put("/Customers/3", {"Email": "ANN@example.com"}).status_code == 200
    assert [c["CustomerID"] for c in api.get("/Customers", email="ann@example.com").json()] == [1, 2, 3]
    api.delete("/Customers/2")  # the index keeps the others
    assert [c["CustomerID"] for c in api.get("/Customers", email="ann@example.com").json()] == [1, 3]

    s4s.configure(unique_emails=True)  # the lenient reading refuses the same thing
    refused = api.post("/Customers", customer(4, Email="ann@EXAMPLE.com"))
    assert refused.json() == error(400, "Customer email already exists", "Email")
