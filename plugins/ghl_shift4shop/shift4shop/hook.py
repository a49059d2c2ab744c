"""Shift4Shop (3dcart) REST API v1 client on the ``shift4shop_default`` connection.

Quirks it copes with are listed in BEHAVIOR.md beside this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from airflow.sdk.log import mask_secret

from ghl_shift4shop.settings import SHIFT4SHOP_CONN_ID
from ghl_shift4shop.transport import ApiError, ApiHook, AuthError, mask_email

# Documented leaky bucket: 50 deep, drains 2 requests/s. The budget (shared by every process of
# the store, see budget.py) allows 40 in any 20 s: at most 40 + 2/s × t in any span t, so the
# server's bucket never holds more than 40 of its 50.
BURST_CAPACITY = 40
RATE_PER_S = 2.0

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


class Shift4ShopHook(ApiHook):
    conn_name_attr = "shift4shop_conn_id"
    default_conn_name = SHIFT4SHOP_CONN_ID
    conn_type = "http"
    hook_name = "Shift4Shop"
    service = "shift4shop"
    base_path = "/3dCartWebAPI/v1"

    def __init__(
        self,
        conn_id: str = SHIFT4SHOP_CONN_ID,
        *,
        burst: float = BURST_CAPACITY,
        rate_per_s: float = RATE_PER_S,
        **kwargs,
    ):
        super().__init__(conn_id, **kwargs)
        self.burst, self.rate_per_s = burst, rate_per_s

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
        url = str(connection.extra_dejson.get("secure_url") or "").strip().lower()
        return url.removeprefix("https://").removeprefix("http://").rstrip("/")

    # -- plumbing ----------------------------------------------------------------------------
    def _items(self, resp, what: str) -> list[ItemResult]:
        try:
            body = resp.json()
        except ValueError:
            raise ApiError("shift4shop", resp.status_code, f"{what}: response is not JSON") from None
        if isinstance(body, dict):
            body = [body]
        if not isinstance(body, list):
            raise ApiError("shift4shop", resp.status_code, f"{what}: unexpected response shape")
        return [_item(x) for x in body if isinstance(x, dict)]

    def _fail(self, resp, what: str) -> None:
        if resp.status_code == 401:
            raise AuthError(
                "shift4shop",
                401,
                f"{what}: the store refused the credentials of connection {self.http_conn_id!r} "
                "(SecureURL/PrivateKey/Token combination invalid, or the app lacks the privilege)",
            )
        try:
            items = self._items(resp, what)
            message = "; ".join(i.message for i in items) or resp.text[:300]
        except ApiError:
            message = resp.text[:300]
        raise ApiError("shift4shop", resp.status_code, f"{what}: {message}")

    # -- customers: reads --------------------------------------------------------------------
    def count_customers(self, **filters: str) -> int:
        resp = self.request("GET", "/Customers", params={**filters, "countonly": 1})
        if resp.status_code == 404:
            return 0
        if resp.status_code != 200:
            self._fail(resp, "GET /Customers?countonly=1")
        body = resp.json()
        return int(body.get("TotalCount", 0)) if isinstance(body, dict) else 0

    def iter_customer_pages(self, *, page_limit: int = 500, **filters: str) -> Iterator[list[dict]]:
        """Every customer matching ``filters``, ascending by CustomerID, ``page_limit`` at a time."""
        return self.iter_pages("/Customers", page_limit=page_limit, **filters)

    def iter_pages(self, resource: str, *, page_limit: int = 500, **filters) -> Iterator[list[dict]]:
        """Every record of a list resource, ``page_limit`` at a time.

        ``offset`` is 1-based. The end is a short page, a 404 (no records) or the 400 the store
        gives for an offset past the end.
        """
        offset = 1
        while True:
            resp = self.request("GET", resource, params={**filters, "limit": page_limit, "offset": offset})
            if resp.status_code == 404:
                return
            if resp.status_code == 400 and OFFSET_PAST_END in resp.text:
                return
            if resp.status_code != 200:
                self._fail(resp, f"GET {resource}")
            page = resp.json()
            if not isinstance(page, list):
                raise ApiError("shift4shop", 200, f"GET {resource}: expected a JSON array")
            if page:
                yield page
            if len(page) < page_limit:
                return
            offset += len(page)

    def find_customers_by_email(self, email: str) -> list[dict]:
        resp = self.request("GET", "/Customers", params={"email": email, "limit": 10, "offset": 1})
        if resp.status_code == 404:
            return []
        if resp.status_code != 200:
            self._fail(resp, f"GET /Customers?email={mask_email(email)}")
        body = resp.json()
        wanted = email.strip().lower()
        # The filter's exact-or-partial semantics are undocumented: keep exact matches only.
        return [c for c in body if isinstance(c, dict) and str(c.get("Email") or "").strip().lower() == wanted]

    # -- customers: writes -------------------------------------------------------------------
    def create_customers(self, customers: list[dict]) -> tuple[int, list[ItemResult]]:
        """POST an array; returns (HTTP status, per-item results). Not retried after a timeout."""
        resp = self.request("POST", "/Customers", json=customers, idempotent=False)
        if resp.status_code == 401:
            self._fail(resp, "POST /Customers")
        return resp.status_code, self._items(resp, "POST /Customers")

    def create_customer(self, customer: dict) -> ItemResult:
        resp = self.request("POST", "/Customers", json=customer, idempotent=False)
        if resp.status_code == 401:
            self._fail(resp, "POST /Customers")
        items = self._items(resp, "POST /Customers")
        if not items:
            raise ApiError("shift4shop", resp.status_code, "POST /Customers: empty result")
        return items[0]

    def update_customers(self, customers: list[dict]) -> list[ItemResult]:
        """Bulk ``PUT /Customers`` (≤100 items); one result per item, in order."""
        resp = self.request("PUT", "/Customers", json=customers)
        if resp.status_code == 401:
            self._fail(resp, "PUT /Customers")
        items = self._items(resp, "PUT /Customers")
        if len(items) != len(customers):
            if resp.status_code in (200, 206):
                raise ApiError(
                    "shift4shop", resp.status_code, f"PUT /Customers: {len(items)} results for {len(customers)} items"
                )
            # A whole-request failure (e.g. 404 with one element): it applies to every item.
            first = items[0] if items else ItemResult("Error", "", resp.status_code, resp.text[:200])
            return [
                ItemResult(first.key, str(c.get("CustomerID", "")), first.status or resp.status_code, first.message)
                for c in customers
            ]
        return items

    # -- customer groups ---------------------------------------------------------------------
    def create_one(self, resource: str, body: dict) -> ItemResult:
        """POST one object to a resource; the store answers a one-element result array."""
        resp = self.request("POST", resource, json=body, idempotent=False)
        if resp.status_code == 401:
            self._fail(resp, f"POST {resource}")
        items = self._items(resp, f"POST {resource}")
        if not items:
            raise ApiError("shift4shop", resp.status_code, f"POST {resource}: empty result")
        return items[0]

    def customer_groups(self) -> list[dict]:
        return [g for page in self.iter_pages("/CustomerGroups") for g in page]

    # -- generic single-object writes and lists (CRM, groups) --------------------------------
    def list_all(self, resource: str, **filters) -> list[dict]:
        return [row for page in self.iter_pages(resource, **filters) for row in page]

    def update_one(self, resource: str, body: dict) -> ItemResult:
        resp = self.request("PUT", resource, json=body)
        if resp.status_code == 401:
            self._fail(resp, f"PUT {resource}")
        items = self._items(resp, f"PUT {resource}")
        return items[0] if items else ItemResult("Error", "", resp.status_code, resp.text[:200])

    def delete_one(self, resource: str) -> ItemResult:
        resp = self.request("DELETE", resource)
        if resp.status_code == 401:
            self._fail(resp, f"DELETE {resource}")
        if resp.status_code == 404:
            # Already gone: the outcome we wanted.
            return ItemResult("Error", "", 200, "already deleted")
        items = self._items(resp, f"DELETE {resource}")
        return items[0] if items else ItemResult("", "", resp.status_code, "")
