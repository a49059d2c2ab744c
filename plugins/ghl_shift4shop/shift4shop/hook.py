"""Shift4Shop (3dcart) REST API v1 client on the ``shift4shop_default`` connection.

Quirks it copes with are listed in BEHAVIOR.md beside this file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from airflow.sdk.log import mask_secret

from ghl_shift4shop.settings import SHIFT4SHOP_CONN_ID
from ghl_shift4shop.transport import ApiError, ApiHook, AuthError

# Documented leaky bucket: 50 deep, drains 2 requests/s. The budget (shared by every process of
# the store, see budget.py; GHL_S4S_SHIFT4SHOP_BURST 40 and _RATE_PER_S 2 by default) allows 40 in
# any 20 s: at most 40 + 2/s × t in any span t, so the server's bucket never holds more than 40.

OFFSET_PAST_END = "Offset amount exceeds the total number of records"


@dataclass(frozen=True)
class ItemResult:
    """One element of a write response: ``{"Key","Value","Status","Message"}`` (strings)."""

    key: str
    value: str
    status: int
    message: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _item(raw: dict) -> ItemResult:
    try:
        status = int(str(raw.get("Status", "0")).strip() or 0)
    except ValueError:
        status = 0
    return ItemResult(
        str(raw.get("Key", "")), str(raw.get("Value", "") or ""), status, str(raw.get("Message", "") or "")
    )


def describe_body(resp) -> str:
    """What a non-JSON answer held, in words (never the raw HTML of an error page)."""
    text = (resp.text or "").strip()
    if not text:
        return "no response content"
    if text.startswith("<") or "html" in resp.headers.get("Content-Type", "").lower():
        return "an HTML page instead of JSON"
    return text[:200]


@dataclass(frozen=True)
class WriteAnswer:
    """The store's answer to a write: its HTTP status and the result elements it sent (any order).

    The store's error answers may come without a body or as an HTML page (the reference says "No
    response content" for 400, 404 and 500): then ``items`` is empty and ``note`` says what came.
    """

    status: int
    items: tuple[ItemResult, ...]
    note: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def whole(self) -> ItemResult:
        """One result standing for the whole answer: its first element's status where it gives one
        (a 200 whose element says 400 is a failure), else the HTTP status."""
        first = self.items[0] if self.items else None
        message = (first.message if first else "") or self.note or f"HTTP {self.status}"
        status = first.status if first and first.status else self.status
        return ItemResult(first.key if first else "Error", "", status, message)

    def single(self) -> ItemResult:
        """The result of a one-object write: its element when the answer is a success, else the whole."""
        if self.ok and self.items:
            return self.items[0]
        return self.whole


@dataclass(frozen=True)
class BulkAnswer:
    """A bulk PUT's results keyed by the id each result names (``Value``), never by position.

    ``by_id`` holds the items the store answered individually; ids it did not answer for (a
    whole-request 404 or 400, or results that cannot be told apart) are left out, and ``whole``
    says what the store said about the request as a whole.
    """

    by_id: dict[str, ItemResult]
    whole: ItemResult


class Shift4ShopHook(ApiHook):
    conn_name_attr = "shift4shop_conn_id"
    default_conn_name = SHIFT4SHOP_CONN_ID
    conn_type = "http"
    hook_name = "Shift4Shop"
    service = "shift4shop"
    base_path = "/3dCartWebAPI/v1"

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        burst: float | None = None,
        rate_per_s: float | None = None,
        **kwargs,
    ):
        if conn_id is None:  # the tenant's connection (the default tenant's: shift4shop_conn_id)
            from ghl_shift4shop.settings import load_settings

            conn_id = (kwargs.get("settings") or load_settings()).shift4shop_conn_id
        super().__init__(conn_id, **kwargs)
        self.burst = self.settings.shift4shop_burst if burst is None else burst
        self.rate_per_s = self.settings.shift4shop_rate_per_s if rate_per_s is None else rate_per_s

    def auth_headers(self, connection) -> dict[str, str]:
        extra = connection.extra_dejson
        missing = [k for k in ("secure_url", "private_key", "token") if not extra.get(k)]
        if missing:
            raise ValueError(f"connection {self.http_conn_id!r} lacks extra fields: {', '.join(missing)}")
        mask_secret(extra["private_key"])
        mask_secret(extra["token"])
        return {
            "SecureURL": extra["secure_url"],
            "PrivateKey": extra["private_key"],
            "Token": extra["token"],
            "Accept": "application/json",
            "Content-Type": "application/json",
        }

    def budget_account(self, connection) -> str:
        # The store's bucket is per store: one budget per SecureURL, however it is spelled.
        from ghl_shift4shop.preflight import store_account

        return store_account(connection.extra_dejson.get("secure_url") or "")

    # -- the one way every call goes out ------------------------------------------------------
    def _call(self, method: str, endpoint: str, *, params=None, json=None, idempotent: bool = True):
        """Send one request; a 401 (wrong credentials) fails at once, whatever the endpoint."""
        resp = self.request(method, endpoint, params=params, json=json, idempotent=idempotent)
        if resp.status_code == 401:
            raise AuthError(
                "shift4shop",
                401,
                f"{method} {endpoint.split('?')[0]}: the store refused the credentials of connection "
                f"{self.http_conn_id!r} (SecureURL/PrivateKey/Token combination invalid, or the app lacks the "
                "privilege)",
            )
        return resp

    @staticmethod
    def _answer(resp) -> WriteAnswer:
        try:
            body = resp.json() if resp.content else None
        except ValueError:
            body = None
        if isinstance(body, dict):
            body = [body]
        if isinstance(body, list):
            return WriteAnswer(resp.status_code, tuple(_item(x) for x in body if isinstance(x, dict)))
        return WriteAnswer(resp.status_code, (), describe_body(resp))

    def _fail(self, resp, what: str) -> None:
        answer = self._answer(resp)
        message = "; ".join(i.message for i in answer.items) or answer.note
        raise ApiError("shift4shop", resp.status_code, f"{what}: {message}")

    # -- reads: one paging idiom ------------------------------------------------------------
    def iter_pages(self, resource: str, *, page_limit: int = 500, **filters) -> Iterator[list[dict]]:
        """Every record of a list resource, ``page_limit`` at a time, ascending by id.

        ``offset`` is 1-based. The end is a short page, a 404 (no records) or the 400 the store
        gives for an offset past the end; any other answer is an error.
        """
        offset = 1
        while True:
            page = self.page(resource, offset=offset, limit=page_limit, **filters)
            if page:
                yield page
            if len(page) < page_limit:
                return
            offset += len(page)

    def page(self, resource: str, *, offset: int, limit: int, **filters) -> list[dict]:
        """One page of a list resource; [] past the end (a 404, or the offset-past-the-end 400)."""
        resp = self._call("GET", resource, params={**filters, "limit": limit, "offset": offset})
        if resp.status_code == 404:
            return []
        if resp.status_code == 400 and OFFSET_PAST_END in resp.text:
            return []
        if resp.status_code != 200:
            self._fail(resp, f"GET {resource}")
        page = resp.json()
        if isinstance(page, dict):
            page = [page]  # some stores answer one record as an object
        if not isinstance(page, list):
            raise ApiError("shift4shop", 200, f"GET {resource}: expected a JSON array")
        return [row for row in page if isinstance(row, dict)]

    def list_all(self, resource: str, **filters) -> list[dict]:
        return [row for page in self.iter_pages(resource, **filters) for row in page]

    def count(self, resource: str, **filters: str) -> int:
        resp = self._call("GET", resource, params={**filters, "countonly": 1})
        if resp.status_code == 404:
            return 0
        if resp.status_code != 200:
            self._fail(resp, f"GET {resource}?countonly=1")
        body = resp.json()
        return int(body.get("TotalCount", 0)) if isinstance(body, dict) else 0

    # -- customers: reads --------------------------------------------------------------------
    def count_customers(self, **filters: str) -> int:
        return self.count("/Customers", **filters)

    def iter_customer_pages(self, *, page_limit: int = 500, **filters: str) -> Iterator[list[dict]]:
        """Every customer matching ``filters``, ascending by CustomerID, ``page_limit`` at a time."""
        return self.iter_pages("/Customers", page_limit=page_limit, **filters)

    def get_customer(self, customer_id: str | int) -> dict | None:
        """One customer, or None when the store has no such id."""
        resp = self._call("GET", f"/Customers/{customer_id}")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            self._fail(resp, "GET /Customers/{id}")
        body = resp.json()
        body = body[0] if isinstance(body, list) and body else body
        return body if isinstance(body, dict) else None

    def find_customers_by_email(self, email: str, *, page_limit: int = 500) -> list[dict]:
        """Every customer whose e-mail is ``email``, compared case-insensitively.

        Whether the store's ``email`` filter is exact or partial is undocumented: every page it
        returns is read and only exact matches are kept, so an existing customer is never missed
        because partial matches filled the first page.
        """
        wanted = email.strip().lower()
        return [
            c
            for page in self.iter_pages("/Customers", page_limit=page_limit, email=email)
            for c in page
            if isinstance(c, dict) and str(c.get("Email") or "").strip().lower() == wanted
        ]

    # -- customers: writes -------------------------------------------------------------------
    def create_customers(self, customers: list[dict]) -> WriteAnswer:
        """POST an array (undocumented); the answer as the store gave it. Never re-sent on a timeout."""
        return self._answer(self._call("POST", "/Customers", json=customers, idempotent=False))

    def create_customer(self, customer: dict) -> ItemResult:
        return self.create_one("/Customers", customer)

    def update_customers(self, customers: list[dict]) -> BulkAnswer:
        """Bulk ``PUT /Customers`` (≤100 items), results matched to items by ``Value``.

        The store may answer per item (200, 206) or for the whole request (a 404 "One or more
        Customer records were not found.", a 400 without content): items without a result of
        their own are absent from ``by_id`` and the caller decides (see ``load.py``).
        """
        answer = self._answer(self._call("PUT", "/Customers", json=customers))
        sent = [str(c.get("CustomerID", "")) for c in customers]
        counts = Counter(item.value for item in answer.items)
        wanted = set(sent)
        # A result counts only when it names exactly one item of the request.
        by_id = {i.value: i for i in answer.items if i.value in wanted and counts[i.value] == 1}
        if len(sent) == 1 and not by_id:
            by_id = {sent[0]: answer.whole}
        return BulkAnswer(by_id, answer.whole)

    # -- single-object writes and lists (customer groups, CRM) ----------------------------
    def create_one(self, resource: str, body: dict) -> ItemResult:
        """POST one object; never re-sent after a timeout (:class:`AmbiguousWriteError`)."""
        return self._answer(self._call("POST", resource, json=body, idempotent=False)).single()

    def update_one(self, resource: str, body: dict) -> ItemResult:
        return self._answer(self._call("PUT", resource, json=body)).single()

    def delete_one(self, resource: str) -> ItemResult:
        resp = self._call("DELETE", resource)
        if resp.status_code == 404:
            return ItemResult("", "", 200, "already deleted")  # the outcome we wanted
        return self._answer(resp).single()

    def customer_groups(self) -> list[dict]:
        return self.list_all("/CustomerGroups")
