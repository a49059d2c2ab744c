"""What the Shift4Shop (3dcart) simulator knows: stores, credentials, customers, customer groups,
the hidden per-customer last-updated time, and the leaky-bucket rate limiter.

All of it is plain Python behind one re-entrant lock (``Shift4ShopState.lock``), so the HTTP layer
(``app.py``), the ``/_sim`` admin endpoints and tests can read and change it directly. The rules of
the real API that concern data (validation, uniqueness, paging, filters, write results) live here;
``app.py`` only turns HTTP into calls on this module and results back into HTTP.

Each store (keyed by its normalised SecureURL) owns its own tables and id sequences; a CRM ticket
table and a message table can be added to ``StoreData`` as further ``Table`` instances.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sandbox.common import RequestLog

FieldKind = Literal["int", "str", "bool", "num"]

# The v1 Customer object in the order the official reference prints it (spec §2.3): every field is
# present on every response, so this tuple is also the exact key order of each returned object.
_CUSTOMER_SCHEMA: dict[str, tuple[FieldKind, int | None]] = {
    "CustomerID": ("int", None),
    "Email": ("str", 100),
    "Password": ("str", 50),
    "BillingCompany": ("str", 255),
    "BillingFirstName": ("str", 50),
    "BillingLastName": ("str", 50),
    "BillingAddress1": ("str", 255),
    "BillingAddress2": ("str", 50),
    "BillingCity": ("str", 100),
    "BillingState": ("str", 100),
    "BillingZipCode": ("str", 20),
    "BillingCountry": ("str", 100),
    "BillingPhoneNumber": ("str", 50),
    "BillingTaxID": ("str", 50),
    "ShippingCompany": ("str", 255),
    "ShippingFirstName": ("str", 50),
    "ShippingLastName": ("str", 50),
    "ShippingAddress1": ("str", 255),
    "ShippingAddress2": ("str", 50),
    "ShippingCity": ("str", 100),
    "ShippingState": ("str", 100),
    "ShippingZipCode": ("str", 20),
    "ShippingCountry": ("str", 100),
    "ShippingPhoneNumber": ("str", 50),
    "ShippingAddressType": ("int", None),
    "CustomerGroupID": ("int", None),
    "Enabled": ("bool", None),
    "MailList": ("bool", None),
    "NonTaxable": ("bool", None),
    "DisableBillingSameAsShipping": ("bool", None),
    "Comments": ("str", 255),
    "AdditionalField1": ("str", 250),
    "AdditionalField2": ("str", 250),
    "AdditionalField3": ("str", 150),
    "TotalStoreCredit": ("num", None),
    "ResetPassword": ("bool", None),
}
CUSTOMER_FIELDS: tuple[str, ...] = tuple(_CUSTOMER_SCHEMA)
FIELD_MAX_LENGTHS: dict[str, int] = {k: n for k, (_, n) in _CUSTOMER_SCHEMA.items() if n}

# The key and the computed store credit cannot be written through the API; seeds may set them.
_CUSTOMER_READ_ONLY = frozenset({"CustomerID", "TotalStoreCredit"})

_CUSTOMER_GROUP_SCHEMA: dict[str, tuple[FieldKind, int | None]] = {
    "CustomerGroupID": ("int", None),
    "Name": ("str", 150),
    "Description": ("str", 65535),
    "MinimumOrder": ("num", None),
    "NonTaxable": ("bool", None),
    "AllowRegistration": ("bool", None),
    "DisableRewardPoints": ("bool", None),
    "AutoApprove": ("bool", None),
    "RegistrationMessage": ("str", 65535),
    "PriceLevel": ("int", None),
}
CUSTOMER_GROUP_FIELDS: tuple[str, ...] = tuple(_CUSTOMER_GROUP_SCHEMA)
_GROUP_READ_ONLY = frozenset({"CustomerGroupID"})

# Query filter name -> the Customer field it matches (simulator choice: the Billing side).
CUSTOMER_FILTER_FIELDS: dict[str, str] = {
    "email": "Email",
    "firstname": "BillingFirstName",
    "lastname": "BillingLastName",
    "country": "BillingCountry",
    "state": "BillingState",
    "city": "BillingCity",
    "phone": "BillingPhoneNumber",
}

AUTH_FAILURE_MESSAGE = (
    "Authentication failure. The PrivateKey/Token/SecureURL combination is invalid, "
    "or the application scope does not have the correct read/write privileges."
)
OFFSET_EXCEEDS_MESSAGE = "Offset amount exceeds the total number of records"
NO_CUSTOMERS_MESSAGE = "No Customer records found"
CUSTOMER_NOT_FOUND_MESSAGE = "The Customer record was not found."
GROUP_MEMBERS_NOT_FOUND_MESSAGE = "The Customer Group was not found and/or contains no customer records."
NO_GROUPS_MESSAGE = "There are no Customer Groups."
GROUP_NOT_FOUND_MESSAGE = "The specified Customer Group does not exist."
DUPLICATE_EMAIL_MESSAGE = "Customer email already exists"
TOO_MANY_REQUESTS_MESSAGE = "Too many requests"

DEFAULT_SECURE_URL = "https://demo-store.3dcartstores.com"
DEFAULT_PRIVATE_KEY = "sim-private-key"
DEFAULT_TOKEN = "sim-token"

CONFIG_KEYS = (
    "rate_limit",
    "bucket_size",
    "leak_per_s",
    "send_retry_after",
    "accept_array_post",
    "latency_s",
    "default_limit",
    "max_limit",
)

_HEX32 = re.compile(r"[0-9a-f]{32}")
_FILTER_DATE_FORMATS = (
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y",
)


class ApiError(Exception):
    """A request-level failure; the app renders it as the one-element error array."""

    def __init__(self, status: int, message: str, value: str = "", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.value = value
        self.headers = headers or {}


class FieldError(ValueError):
    """One field of one submitted record is unacceptable; becomes a Status "400" result item."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


def result_item(key: str, value: Any, status: int, message: str) -> dict[str, str]:
    """One element of a write result or error array; Value and Status are strings, as documented."""
    return {"Key": key, "Value": str(value), "Status": str(status), "Message": message}


def error_item(value: Any, status: int, message: str) -> dict[str, str]:
    return result_item("Error", value, status, message)


def normalize_secure_url(url: str | None) -> str:
    """Compare SecureURLs the way a production client does (spec §1.2, S9): case, scheme, www., /."""
    u = (url or "").strip().lower()
    for prefix in ("https://", "http://"):
        if u.startswith(prefix):
            u = u[len(prefix) :]
            break
    if u.startswith("www."):
        u = u[4:]
    return u.rstrip("/")


def hash_password(plain: str) -> str:
    return hashlib.md5(plain.encode("utf-8")).hexdigest()  # noqa: S324 - mimics the stored hash


def utc_now() -> datetime:
    # Whole seconds: the filter bounds have second resolution and are inclusive, so a sub-second
    # stored time would make "updated at 10:00:00" miss an end bound of 10:00:00.
    return datetime.now(UTC).replace(microsecond=0)


def parse_filter_date(raw: str) -> datetime:
    """Parse a lastupdatestart/end value (``MM/dd/yyyy[ HH:mm[:ss]]`` or ISO); store time is UTC."""
    text = raw.strip()
    for fmt in _FILTER_DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    parsed = datetime.fromisoformat(text)  # ValueError propagates to the caller
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse_stored_time(raw: Any) -> datetime:
    if isinstance(raw, datetime):
        moment = raw if raw.tzinfo else raw.replace(tzinfo=UTC)
    else:
        moment = parse_filter_date(str(raw))
    return moment.astimezone(UTC).replace(microsecond=0)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _coerce(name: str, kind: FieldKind, raw: Any) -> Any:
    """Bind one JSON value roughly the way Json.NET binds it to the C# model, or raise FieldError."""
    if kind == "str":
        if raw is None or raw == "":
            return None  # unset strings are null on output (simulator choice, consistent)
        if isinstance(raw, str):
            return raw
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return str(raw)
        raise FieldError(name, f"Invalid value for {name}: expected a string.")
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        raise FieldError(name, f"Invalid value for {name}: expected a boolean.")
    if kind == "int":
        if isinstance(raw, bool):
            raise FieldError(name, f"Invalid value for {name}: expected an integer.")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str) and re.fullmatch(r"\s*-?\d+\s*", raw):
            return int(raw)
        raise FieldError(name, f"Invalid value for {name}: expected an integer.")
    # "num"
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        if math.isfinite(raw):
            return float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            pass
        else:
            if math.isfinite(value):
                return value
    raise FieldError(name, f"Invalid value for {name}: expected a number.")


def _bind(
    body: Mapping[str, Any],
    schema: Mapping[str, tuple[FieldKind, int | None]],
    read_only: frozenset[str],
) -> dict[str, Any]:
    """Turn a submitted object into {canonical field: value} for the fields present.

    Json.NET matches property names case-insensitively and ignores unknown ones, so do we.
    Read-only fields are dropped silently, as the server ignores them on write.
    """
    canonical = {name.lower(): name for name in schema}
    values: dict[str, Any] = {}
    for key, raw in body.items():
        name = canonical.get(str(key).lower())
        if name is None or name in read_only:
            continue
        kind, max_len = schema[name]
        value = _coerce(name, kind, raw)
        if max_len is not None and value is not None and len(value) > max_len:
            raise FieldError(name, f"{name} exceeds the maximum length of {max_len} characters.")
        values[name] = value
    return values


def _get_ci(body: Mapping[str, Any], name: str) -> Any:
    """Read one property the way Json.NET binds it: name matched case-insensitively."""
    lowered = name.lower()
    return next((v for k, v in body.items() if str(k).lower() == lowered), None)


def _defaults(schema: Mapping[str, tuple[FieldKind, int | None]]) -> dict[str, Any]:
    # The C# model's defaults: null strings, 0, false, 0.0.
    zero: dict[FieldKind, Any] = {"str": None, "int": 0, "bool": False, "num": 0.0}
    return {name: zero[kind] for name, (kind, _) in schema.items()}


@dataclass
class Table:
    """Rows keyed by an auto-increment integer id, kept listable in ascending id order.

    Ascending primary key is the only order the API returns, so ``ids`` stays sorted and a page
    without filters is a slice.
    """

    rows: dict[int, Any] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)
    next_id: int = 1

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, row_id: int) -> Any:
        return self.rows.get(row_id)

    def allocate_id(self) -> int:
        row_id = self.next_id
        self.next_id += 1
        return row_id

    def put(self, row_id: int, row: Any) -> None:
        if row_id not in self.rows:
            if not self.ids or row_id > self.ids[-1]:
                self.ids.append(row_id)
            else:
                bisect.insort(self.ids, row_id)
        self.rows[row_id] = row
        self.next_id = max(self.next_id, row_id + 1)

    def remove(self, row_id: int) -> Any:
        row = self.rows.pop(row_id)
        del self.ids[bisect.bisect_left(self.ids, row_id)]
        return row

    def clear(self) -> None:
        self.rows.clear()
        self.ids.clear()
        self.next_id = 1


@dataclass
class CustomerRecord:
    """A customer as stored: the 36 API fields plus what the API never returns."""

    fields: dict[str, Any]  # Password already hashed
    last_update: datetime  # UTC, whole seconds; only visible through lastupdatestart/end
    password_set: bool


@dataclass
class StoreData:
    """One merchant store: its own tables and id sequences (CRM tickets/messages would go here)."""

    secure_url: str  # as first registered, for dumps
    customers: Table = field(default_factory=Table)
    customer_groups: Table = field(default_factory=Table)
    emails: dict[str, set[int]] = field(default_factory=dict)  # lower-cased email -> ids

    def clear(self) -> None:
        self.customers.clear()
        self.customer_groups.clear()
        self.emails.clear()

    def index_email(self, customer_id: int, email: str | None) -> None:
        if email:
            self.emails.setdefault(email.lower(), set()).add(customer_id)

    def unindex_email(self, customer_id: int, email: str | None) -> None:
        if email:
            ids = self.emails.get(email.lower())
            if ids:
                ids.discard(customer_id)
                if not ids:
                    del self.emails[email.lower()]

    def email_taken(self, email: str, by_other_than: int | None = None) -> bool:
        return any(i != by_other_than for i in self.emails.get(email.lower(), ()))


@dataclass(frozen=True)
class CustomerFilter:
    """The query filters of GET /Customers; text matches are exact and case-insensitive."""

    text: Mapping[str, str] = field(default_factory=dict)  # Customer field -> lower-cased value
    updated_from: datetime | None = None
    updated_to: datetime | None = None
    group_id: int | None = None

    def matches(self, record: CustomerRecord) -> bool:
        f = record.fields
        if self.group_id is not None and f["CustomerGroupID"] != self.group_id:
            return False
        if self.updated_from is not None and record.last_update < self.updated_from:
            return False
        if self.updated_to is not None and record.last_update > self.updated_to:
            return False
        return all((f[name] or "").lower() == value for name, value in self.text.items())

    @property
    def empty(self) -> bool:
        return not self.text and self.updated_from is None and self.updated_to is None


@dataclass
class LeakyBucket:
    """Documented limiter: holds ``size`` requests and leaks ``leak_per_s`` of them per second."""

    level: float = 0.0
    updated: float = 0.0

    def offer(self, size: int, leak_per_s: float, now: float) -> float | None:
        """Admit one request (None) or say how many seconds until one would fit."""
        self.level = max(0.0, self.level - (now - self.updated) * leak_per_s)
        self.updated = now
        if self.level + 1 <= size:
            self.level += 1
            return None
        return (self.level + 1 - size) / leak_per_s


class Shift4ShopState:
    """Every store the simulator serves, its data, the simulator's knobs, and the request log."""

    def __init__(
        self,
        stores: Mapping[str, Mapping[str, str]] | None = None,
        *,
        rate_limit: bool = True,
        bucket_size: int = 50,
        leak_per_s: float = 2.0,
        send_retry_after: bool = True,
        accept_array_post: bool = True,
        latency_s: float = 0.0,
        default_limit: int = 10,
        max_limit: int = 500,
    ):
        self.lock = threading.RLock()
        self.request_log = RequestLog()
        self.credentials: dict[str, set[tuple[str, str]]] = {}
        self.data: dict[str, StoreData] = {}
        self.buckets: dict[tuple[str, str], LeakyBucket] = {}
        self.rate_limit = rate_limit
        self.bucket_size = bucket_size
        self.leak_per_s = leak_per_s
        self.send_retry_after = send_retry_after
        self.accept_array_post = accept_array_post
        self.latency_s = latency_s
        self.default_limit = default_limit
        self.max_limit = max_limit
        self.configure()  # validate the knobs once
        for url, cred in (stores or {}).items():
            self.add_store(url, cred["private_key"], cred["token"])

    # ----- configuration, stores, auth, rate limit -------------------------------------------

    def config(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in CONFIG_KEYS}

    def configure(self, **changes: Any) -> dict[str, Any]:
        unknown = set(changes) - set(CONFIG_KEYS)
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        merged = {**self.config(), **changes}
        for key in ("rate_limit", "send_retry_after", "accept_array_post"):
            if not isinstance(merged[key], bool):
                raise ValueError(f"{key} must be a boolean")
        for key in ("bucket_size", "default_limit", "max_limit"):
            if isinstance(merged[key], bool) or not isinstance(merged[key], int) or merged[key] < 1:
                raise ValueError(f"{key} must be a positive integer")
        for key in ("leak_per_s", "latency_s"):
            if isinstance(merged[key], bool) or not isinstance(merged[key], int | float):
                raise ValueError(f"{key} must be a number")
        if merged["leak_per_s"] <= 0 or merged["latency_s"] < 0:
            raise ValueError("leak_per_s must be > 0 and latency_s >= 0")
        with self.lock:
            for key, value in merged.items():
                setattr(self, key, value)
            return self.config()

    def add_store(self, secure_url: str, private_key: str, token: str) -> str:
        """Register a store (if new) and one app credential pair for it; return its key."""
        key = normalize_secure_url(secure_url)
        if not key or not private_key or not token:
            raise ValueError("secure_url, private_key and token are all required")
        with self.lock:
            self.credentials.setdefault(key, set()).add((private_key, token))
            self.data.setdefault(key, StoreData(secure_url=secure_url))
            return key

    def resolve_store(self, secure_url: str | None) -> str:
        """The store key for an admin call; with one store, the URL may be omitted."""
        with self.lock:
            if not secure_url:
                if len(self.data) == 1:
                    return next(iter(self.data))
                raise KeyError("secure_url is required when the simulator has several stores")
            key = normalize_secure_url(secure_url)
            if key not in self.data:
                raise KeyError(f"unknown store {secure_url!r}")
            return key

    def authenticate(self, secure_url: str | None, private_key: str | None, token: str | None) -> str | None:
        key = normalize_secure_url(secure_url)
        with self.lock:
            if key and (private_key, token) in self.credentials.get(key, ()):
                return key
        return None

    def throttle(self, store: str, private_key: str, now: float | None = None) -> float | None:
        """Charge one request to the (store, app) bucket; None if admitted, else seconds to wait."""
        if not self.rate_limit:
            return None
        moment = time.monotonic() if now is None else now
        with self.lock:
            bucket = self.buckets.get((store, private_key))
            if bucket is None:
                bucket = self.buckets[(store, private_key)] = LeakyBucket(updated=moment)
            return bucket.offer(self.bucket_size, self.leak_per_s, moment)

    def reset(self) -> None:
        """Empty every store (credentials and config stay), the buckets and the request log."""
        with self.lock:
            for store in self.data.values():
                store.clear()
            self.buckets.clear()
        self.request_log.clear()

    # ----- paging shared by every list endpoint --------------------------------------------

    def _page(self, ids: Sequence[int], limit: int | None, offset: int | None, empty_message: str) -> Sequence[int]:
        """Apply limit/offset the way the real API does: 1-based offset, 0 treated as 1, capped limit."""
        if not ids:
            raise ApiError(404, empty_message)
        size = self.default_limit if not limit else min(limit, self.max_limit)
        start = max(offset or 1, 1) - 1
        if start >= len(ids):
            raise ApiError(400, OFFSET_EXCEEDS_MESSAGE, "offset")
        return ids[start : start + size]

    # ----- customers -------------------------------------------------------------------------

    def _matching_customer_ids(self, store: StoreData, flt: CustomerFilter) -> Sequence[int]:
        table = store.customers
        if flt.empty and flt.group_id is None:
            return table.ids
        email = flt.text.get("Email")
        # An email filter is answered from the index, so per-contact look-ups stay cheap at 100k.
        candidates = sorted(store.emails.get(email, ())) if email is not None else table.ids
        return [i for i in candidates if flt.matches(table.rows[i])]

    def list_customers(
        self,
        store_key: str,
        flt: CustomerFilter,
        limit: int | None = None,
        offset: int | None = None,
        countonly: bool = False,
    ) -> list[dict[str, Any]] | dict[str, int]:
        with self.lock:
            store = self.data[store_key]
            if flt.group_id is not None and store.customer_groups.get(flt.group_id) is None:
                raise ApiError(404, GROUP_MEMBERS_NOT_FOUND_MESSAGE)
            ids = self._matching_customer_ids(store, flt)
            if countonly:
                return {"TotalCount": len(ids)}
            empty = NO_CUSTOMERS_MESSAGE if flt.group_id is None else GROUP_MEMBERS_NOT_FOUND_MESSAGE
            page = self._page(ids, limit, offset, empty)
            return [dict(store.customers.rows[i].fields) for i in page]

    def get_customer(self, store_key: str, customer_id: int) -> dict[str, Any]:
        with self.lock:
            record = self.data[store_key].customers.get(customer_id)
            if record is None:
                raise ApiError(404, CUSTOMER_NOT_FOUND_MESSAGE, str(customer_id))
            return dict(record.fields)

    def create_customer(self, store_key: str, body: Any) -> dict[str, str]:
        """POST one Customer; returns its result item (Status "201" or an error Status)."""
        if not isinstance(body, dict):
            return error_item("", 400, "Each customer must be a JSON object.")
        try:
            values = _bind(body, _CUSTOMER_SCHEMA, _CUSTOMER_READ_ONLY)
            for required in ("Email", "Password"):
                if values.get(required) is None:
                    raise FieldError(required, f"{required} is required.")
        except FieldError as exc:
            return error_item(exc.field, 400, exc.message)
        with self.lock:
            store = self.data[store_key]
            if store.email_taken(values["Email"]):
                return error_item("Email", 400, DUPLICATE_EMAIL_MESSAGE)
            customer_id = store.customers.allocate_id()
            fields = {**_defaults(_CUSTOMER_SCHEMA), **values, "CustomerID": customer_id}
            fields["Password"] = hash_password(values["Password"])
            store.customers.put(customer_id, CustomerRecord(fields, utc_now(), password_set=True))
            store.index_email(customer_id, fields["Email"])
        return result_item("CustomerID", customer_id, 201, "Created successfully")

    def update_customer(self, store_key: str, customer_id: Any, body: Any) -> dict[str, str]:
        """PUT one Customer by id with partial-update semantics; returns its result item."""
        if not isinstance(body, dict):
            return error_item("", 400, "Each customer must be a JSON object.")
        try:
            cid = _coerce("CustomerID", "int", customer_id)
        except FieldError:
            message = "CustomerID is required." if customer_id is None else "Invalid value for CustomerID."
            return error_item("" if customer_id is None else customer_id, 400, message)
        with self.lock:
            store = self.data[store_key]
            record: CustomerRecord | None = store.customers.get(cid)
            if record is None:
                return error_item(cid, 404, CUSTOMER_NOT_FOUND_MESSAGE)
            try:
                values = _bind(body, _CUSTOMER_SCHEMA, _CUSTOMER_READ_ONLY)
                for required in ("Email", "Password"):
                    if required in values and values[required] is None:
                        raise FieldError(required, f"{required} cannot be empty.")
            except FieldError as exc:
                return error_item(cid, 400, exc.message)
            new_email = values.get("Email")
            if new_email is not None and store.email_taken(new_email, by_other_than=cid):
                return error_item(cid, 400, DUPLICATE_EMAIL_MESSAGE)
            if "Password" in values:
                values["Password"] = hash_password(values["Password"])
                record.password_set = True
            store.unindex_email(cid, record.fields["Email"])
            record.fields.update(values)
            store.index_email(cid, record.fields["Email"])
            record.last_update = utc_now()
        return result_item("CustomerID", cid, 200, "updated successfully")

    def update_customers(self, store_key: str, items: Iterable[Any]) -> list[dict[str, str]]:
        """Bulk PUT: each item carries its CustomerID; items are applied in order, one result each."""
        return [
            self.update_customer(store_key, _get_ci(item, "CustomerID") if isinstance(item, dict) else None, item)
            for item in items
        ]

    def delete_customer(self, store_key: str, customer_id: int) -> dict[str, str]:
        with self.lock:
            store = self.data[store_key]
            if store.customers.get(customer_id) is None:
                raise ApiError(404, CUSTOMER_NOT_FOUND_MESSAGE, str(customer_id))
            record = store.customers.remove(customer_id)
            store.unindex_email(customer_id, record.fields["Email"])
        return result_item("CustomerID", customer_id, 200, "Deleted successfully")

    # ----- customer groups ---------------------------------------------------------------------

    def list_customer_groups(
        self, store_key: str, limit: int | None = None, offset: int | None = None, countonly: bool = False
    ) -> list[dict[str, Any]] | dict[str, int]:
        with self.lock:
            table = self.data[store_key].customer_groups
            if countonly:
                return {"TotalCount": len(table)}
            return [dict(table.rows[i]) for i in self._page(table.ids, limit, offset, NO_GROUPS_MESSAGE)]

    def get_customer_group(self, store_key: str, group_id: int) -> dict[str, Any]:
        with self.lock:
            group = self.data[store_key].customer_groups.get(group_id)
            if group is None:
                raise ApiError(404, GROUP_NOT_FOUND_MESSAGE, str(group_id))
            return dict(group)

    def create_customer_group(self, store_key: str, body: Any) -> dict[str, str]:
        if not isinstance(body, dict):
            return error_item("", 400, "Each customer group must be a JSON object.")
        try:
            values = _bind(body, _CUSTOMER_GROUP_SCHEMA, _GROUP_READ_ONLY)
            if values.get("Name") is None:
                raise FieldError("Name", "Name is required.")
        except FieldError as exc:
            return error_item(exc.field, 400, exc.message)
        with self.lock:
            table = self.data[store_key].customer_groups
            group_id = table.allocate_id()
            table.put(group_id, {**_defaults(_CUSTOMER_GROUP_SCHEMA), **values, "CustomerGroupID": group_id})
        return result_item("CustomerGroupID", group_id, 201, "Created successfully")

    def update_customer_group(self, store_key: str, group_id: Any, body: Any) -> dict[str, str]:
        if not isinstance(body, dict):
            return error_item("", 400, "Each customer group must be a JSON object.")
        try:
            gid = _coerce("CustomerGroupID", "int", group_id)
        except FieldError:
            message = "CustomerGroupID is required." if group_id is None else "Invalid value for CustomerGroupID."
            return error_item("" if group_id is None else group_id, 400, message)
        with self.lock:
            group = self.data[store_key].customer_groups.get(gid)
            if group is None:
                return error_item(gid, 404, GROUP_NOT_FOUND_MESSAGE)
            try:
                values = _bind(body, _CUSTOMER_GROUP_SCHEMA, _GROUP_READ_ONLY)
                if "Name" in values and values["Name"] is None:
                    raise FieldError("Name", "Name cannot be empty.")
            except FieldError as exc:
                return error_item(gid, 400, exc.message)
            group.update(values)
        return result_item("CustomerGroupID", gid, 200, "updated successfully")

    def update_customer_groups(self, store_key: str, items: Iterable[Any]) -> list[dict[str, str]]:
        return [
            self.update_customer_group(
                store_key, _get_ci(item, "CustomerGroupID") if isinstance(item, dict) else None, item
            )
            for item in items
        ]

    def delete_customer_group(self, store_key: str, group_id: int) -> dict[str, str]:
        # Members keep their CustomerGroupID (no cascade); nothing documents one either way.
        with self.lock:
            table = self.data[store_key].customer_groups
            if table.get(group_id) is None:
                raise ApiError(404, GROUP_NOT_FOUND_MESSAGE, str(group_id))
            table.remove(group_id)
        return result_item("CustomerGroupID", group_id, 200, "Deleted successfully")

    # ----- seeding and inspection (no API rules: raw data goes in as given) --------------------

    def load_customers(self, secure_url: str, customers: Iterable[Mapping[str, Any]]) -> list[int]:
        """Insert API-shaped customers, keeping CustomerID when given (replacing that id).

        ``Password`` is hashed unless it already is a 32-hex hash (so dumps reload unchanged);
        ``_lastUpdate`` (ISO or MM/dd/yyyy HH:mm:ss, UTC) sets the hidden time, default now.
        Duplicate emails are accepted here: real stores hold dirty data the API would refuse.
        """
        ids: list[int] = []
        with self.lock:
            store = self.data[self.resolve_store(secure_url)]
            for raw in customers:
                fields = _defaults(_CUSTOMER_SCHEMA)
                for name, (kind, _) in _CUSTOMER_SCHEMA.items():
                    if raw.get(name) is not None:
                        fields[name] = _coerce(name, kind, raw[name])
                password = fields["Password"]
                if password is not None and not _HEX32.fullmatch(password):
                    fields["Password"] = hash_password(password)
                customer_id = fields["CustomerID"] or store.customers.allocate_id()
                fields["CustomerID"] = customer_id
                old = store.customers.get(customer_id)
                if old is not None:
                    store.unindex_email(customer_id, old.fields["Email"])
                last_update = raw.get("_lastUpdate")
                moment = _parse_stored_time(last_update) if last_update else utc_now()
                store.customers.put(customer_id, CustomerRecord(fields, moment, password is not None))
                store.index_email(customer_id, fields["Email"])
                ids.append(customer_id)
        return ids

    def load_customer_groups(self, secure_url: str, groups: Iterable[Mapping[str, Any]]) -> list[int]:
        """Insert API-shaped customer groups, keeping CustomerGroupID when given."""
        ids: list[int] = []
        with self.lock:
            table = self.data[self.resolve_store(secure_url)].customer_groups
            for raw in groups:
                group = _defaults(_CUSTOMER_GROUP_SCHEMA)
                for name, (kind, _) in _CUSTOMER_GROUP_SCHEMA.items():
                    if raw.get(name) is not None:
                        group[name] = _coerce(name, kind, raw[name])
                group_id = group["CustomerGroupID"] or table.allocate_id()
                group["CustomerGroupID"] = group_id
                table.put(group_id, group)
                ids.append(group_id)
        return ids

    def all_customers(self, secure_url: str | None = None) -> list[dict[str, Any]]:
        """Every customer of a store with the hidden ``_lastUpdate`` and ``_passwordSet``."""
        with self.lock:
            table = self.data[self.resolve_store(secure_url)].customers
            return [
                {
                    **table.rows[i].fields,
                    "_lastUpdate": format_time(table.rows[i].last_update),
                    "_passwordSet": table.rows[i].password_set,
                }
                for i in table.ids
            ]

    def all_customer_groups(self, secure_url: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            table = self.data[self.resolve_store(secure_url)].customer_groups
            return [dict(table.rows[i]) for i in table.ids]

    def dump_seed(self, path: str | Path, secure_url: str | None = None) -> None:
        """Write one store as a seed file that ``from_seed_file`` reloads to the same state."""
        with self.lock:
            key = self.resolve_store(secure_url)
            seed = {
                "secureUrl": self.data[key].secure_url,
                "customers": self.all_customers(key),
                "customerGroups": self.all_customer_groups(key),
            }
        Path(path).write_text(json.dumps(seed, indent=1), encoding="utf-8")

    @classmethod
    def from_seed_file(
        cls,
        path: str | Path,
        *,
        secure_url: str | None = None,
        private_key: str | None = None,
        token: str | None = None,
        **kw: Any,
    ) -> Shift4ShopState:
        """Build a state from ``{"secureUrl", "customers", "customerGroups"}`` or a bare list.

        The data goes to ``secure_url`` if given, else to the seed's ``secureUrl``; but when
        ``stores`` names exactly one store and the seed's URL is not among them, the caller's
        store wins (it chose the credentials the data is to be served under). A target store not
        yet registered gets (private_key, token) from the arguments, else the seed's
        ``privateKey``/``token``, else ``DEFAULT_PRIVATE_KEY``/``DEFAULT_TOKEN``. Other keyword
        arguments go to the constructor.
        """
        seed = json.loads(Path(path).read_text(encoding="utf-8"))
        if isinstance(seed, list):
            seed = {"customers": seed}
        state = cls(**kw)
        url = secure_url or seed.get("secureUrl") or DEFAULT_SECURE_URL
        if not secure_url and normalize_secure_url(url) not in state.data and len(state.data) == 1:
            url = next(iter(state.data.values())).secure_url
        if normalize_secure_url(url) not in state.data or private_key or token:
            state.add_store(
                url,
                private_key or seed.get("privateKey") or DEFAULT_PRIVATE_KEY,
                token or seed.get("token") or DEFAULT_TOKEN,
            )
        state.load_customer_groups(url, seed.get("customerGroups") or [])
        state.load_customers(url, seed.get("customers") or [])
        return state
