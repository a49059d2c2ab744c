"""What the Shift4Shop (3dcart) simulator knows: stores, credentials, customers, customer groups,
the CRM module (tickets, messages, statuses, departments, saved replies), the hidden per-customer
last-updated time, the leaky-bucket rate limiter, and the knobs that pick a reading of each
behaviour the real API leaves unconfirmed (``KNOB_CHOICES``; profiles in ``sandbox/profiles.py``).

All of it is plain Python behind one re-entrant lock (``Shift4ShopState.lock``), so the HTTP layer
(``app.py``), the ``/_sim`` admin endpoints and tests can read and change it directly. The rules of
the real API that concern data (validation, uniqueness, paging, filters, write results) live here;
``app.py`` only turns HTTP into calls on this module and results back into HTTP.

Each store (keyed by its normalised SecureURL) owns its own tables and id sequences.
"""

from __future__ import annotations

import bisect
import hashlib
import html
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from html.parser import HTMLParser
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

# ----- CRM objects (official reference `_datastructures.md`, "CRM", "CrmMessage", "CrmStatus",
# "CrmDepartment", "CrmSavedReply"). The server-set dates are not in the bindable schemas: they are
# never taken from a request body (unknown properties are ignored, as Json.NET does).
_CRM_SCHEMA: dict[str, tuple[FieldKind, int | None]] = {
    "CrmID": ("int", None),
    "Subject": ("str", 50),
    "DepartmentID": ("int", None),
    "StatusID": ("int", None),
    "CustomerName": ("str", 255),
    "CustomerEmail": ("str", 100),  # "Required" on the official Help page for POST /CRM
    "CustomerPhone": ("str", 50),
    "CustomerIpAddress": ("str", 50),
    "OrderID": ("int", None),
    "CustomerID": ("int", None),
    "ProductId": ("int", None),
}
# Exact key order of a returned ticket, as the reference prints it.
CRM_FIELDS: tuple[str, ...] = (
    "CrmID",
    "DateOpened",
    "DateLastAction",
    *tuple(_CRM_SCHEMA)[1:],
    "CrmMessageList",
)
_CRM_READ_ONLY = frozenset({"CrmID"})

_CRM_MESSAGE_SCHEMA: dict[str, tuple[FieldKind, int | None]] = {
    "MessageId": ("int", None),
    "Message": ("str", 65535),
    "Sender": ("int", None),
    "SenderName": ("str", 150),
    "SenderEmail": ("str", 100),
    "CustomerIPAddress": ("str", 16),
}
CRM_MESSAGE_FIELDS: tuple[str, ...] = ("MessageId", "DateCreated", *tuple(_CRM_MESSAGE_SCHEMA)[1:], "CrmFileList")
_CRM_MESSAGE_READ_ONLY = frozenset({"MessageId"})

_CRM_STATUS_SCHEMA: dict[str, tuple[FieldKind, int | None]] = {
    "Id": ("int", None),
    "StatusId": ("int", None),
    "StatusName": ("str", 50),
}
CRM_STATUS_FIELDS: tuple[str, ...] = tuple(_CRM_STATUS_SCHEMA)
_CRM_STATUS_READ_ONLY = frozenset({"Id", "StatusId"})

_CRM_DEPARTMENT_SCHEMA: dict[str, tuple[FieldKind, int | None]] = {
    "DepartmentId": ("int", None),
    "Name": ("str", 255),
    "Visible": ("bool", None),
}
CRM_DEPARTMENT_FIELDS: tuple[str, ...] = tuple(_CRM_DEPARTMENT_SCHEMA)
_CRM_DEPARTMENT_READ_ONLY = frozenset({"DepartmentId"})

_CRM_SAVED_REPLY_SCHEMA: dict[str, tuple[FieldKind, int | None]] = {
    "Id": ("int", None),
    "Title": ("str", 100),
    "Message": ("str", 65535),
}
CRM_SAVED_REPLY_FIELDS: tuple[str, ...] = tuple(_CRM_SAVED_REPLY_SCHEMA)
_CRM_SAVED_REPLY_READ_ONLY = frozenset({"Id"})

# What a new (or reset) store holds before anyone touches its CRM settings (simulator choice).
DEFAULT_CRM_STATUSES: tuple[dict[str, Any], ...] = (
    {"Id": 1, "StatusId": 1, "StatusName": "Open"},
    {"Id": 2, "StatusId": 2, "StatusName": "In Progress"},
    {"Id": 3, "StatusId": 3, "StatusName": "Closed"},
)
DEFAULT_CRM_DEPARTMENTS: tuple[dict[str, Any], ...] = ({"DepartmentId": 1, "Name": "General", "Visible": True},)

# GET /CRM query filters -> the ticket field they match.
CRM_TEXT_FILTERS: dict[str, str] = {
    "subject": "Subject",
    "customername": "CustomerName",
    "customeremail": "CustomerEmail",
    "customerphone": "CustomerPhone",
    "customeripaddress": "CustomerIpAddress",
}
CRM_ID_FILTERS: dict[str, str] = {
    "custid": "CustomerID",
    "orderid": "OrderID",
    "productid": "ProductId",
    "statusid": "StatusID",
    "departmentid": "DepartmentID",
}
CRM_DATE_FILTERS = ("openedstartdate", "openedenddate", "lastactionstartdate", "lastactionenddate")
CRM_DATE_FORMAT = "%m/%d/%Y %H:%M"  # the reference's samples: "02/26/2019 17:01"

AUTH_FAILURE_MESSAGE = (
    "Authentication failure. The PrivateKey/Token/SecureURL combination is invalid, "
    "or the application scope does not have the correct read/write privileges."
)
OFFSET_EXCEEDS_MESSAGE = "Offset amount exceeds the total number of records"
NO_CUSTOMERS_MESSAGE = "No Customer records found"
CUSTOMER_NOT_FOUND_MESSAGE = "The Customer record was not found."
# The Customers chapter's 404 row for PUT /Customers (spec §2.1): one answer for the whole request.
CUSTOMERS_NOT_FOUND_MESSAGE = "One or more Customer records were not found."
GROUP_MEMBERS_NOT_FOUND_MESSAGE = "The Customer Group was not found and/or contains no customer records."
NO_GROUPS_MESSAGE = "There are no Customer Groups."
GROUP_NOT_FOUND_MESSAGE = "The specified Customer Group does not exist."
DUPLICATE_EMAIL_MESSAGE = "Customer email already exists"
TOO_MANY_REQUESTS_MESSAGE = "Too many requests"
# CRM wording, from the "Responses and Errors" tables of the reference's CRM chapter.
CRM_NOT_FOUND_MESSAGE = "The specified CRM does not exist."
CRM_MESSAGES_NOT_FOUND_MESSAGE = "The specified CRM does not exist, or has no messages."
CRM_MESSAGE_NOT_FOUND_MESSAGE = "The specified CRM and/or message does not exist."
NO_CRM_STATUSES_MESSAGE = "There are no Statuses."
CRM_STATUS_NOT_FOUND_MESSAGE = "The status does not exist."
NO_CRM_DEPARTMENTS_MESSAGE = "There are no departments."
CRM_DEPARTMENT_NOT_FOUND_MESSAGE = "The specified department does not exist."
CRM_SAVED_REPLY_NOT_FOUND_MESSAGE = "The specified saved reply does not exist."
CRM_UPDATED_MESSAGE = "Updated successfully"  # capital U on every CRM page (Customers use lower case)

DEFAULT_SECURE_URL = "https://demo-store.3dcartstores.com"
DEFAULT_PRIVATE_KEY = "sim-private-key"
DEFAULT_TOKEN = "sim-token"

# Readings of behaviours the sources leave unconfirmed (BEHAVIOR.md, "Readings of unconfirmed
# behaviours"); the first value of each is the lenient one and the constructor default.
KNOB_CHOICES: dict[str, tuple[str, ...]] = {
    "array_post": ("per_item", "reject", "reject_no_content"),
    "bulk_put_missing": ("per_item", "whole_404_apply_known", "whole_404_apply_none"),
    "error_bodies": ("json", "varied"),
    "result_order": ("request", "shuffled"),
    "email_filter": ("exact", "contains"),
}
_BOOL_KEYS = ("rate_limit", "send_retry_after", "crm_get_as_array", "unique_emails", "normalize_crm_messages")

CONFIG_KEYS = (
    "rate_limit",
    "bucket_size",
    "leak_per_s",
    "send_retry_after",
    "latency_s",
    "default_limit",
    "max_limit",
    "crm_get_as_array",
    *KNOB_CHOICES,
    "unique_emails",
    "normalize_crm_messages",
)
# Accepted by configure() and the constructor, not listed by config(): the older spelling of
# array_post (True -> "per_item", False -> "reject").
CONFIG_ALIASES = ("accept_array_post",)

# error_bodies="varied": what the next 400/404/500 answer carries, in turn (see next_error_body).
ERROR_BODY_ROTATION = ("json", "empty", "html")

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


def format_crm_date(moment: datetime) -> str:
    """A CRM date as the API prints it (``MM/dd/yyyy HH:mm``, store time = UTC): no seconds."""
    return moment.astimezone(UTC).strftime(CRM_DATE_FORMAT)


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


def _known_id(raw: Any) -> int | None:
    """An item's id as the model binds it, or None when it is missing or not an integer."""
    try:
        return _coerce("id", "int", raw)
    except FieldError:
        return None


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
class TicketRecord:
    """A CRM ticket as stored: the bindable fields, the two server-set times and its message ids."""

    fields: dict[str, Any]  # the _CRM_SCHEMA fields, CrmID included
    opened: datetime  # UTC, whole seconds
    last_action: datetime
    message_ids: list[int] = field(default_factory=list)  # ascending


@dataclass
class MessageRecord:
    """One CRM message. MessageIds come from one per-store sequence shared by every ticket."""

    crm_id: int
    fields: dict[str, Any]  # the _CRM_MESSAGE_SCHEMA fields, MessageId included
    created: datetime
    files: list[dict[str, Any]] = field(default_factory=list)  # CrmFileList: seeds only


@dataclass
class StoreData:
    """One merchant store: its own tables and id sequences."""

    secure_url: str  # as first registered, for dumps
    customers: Table = field(default_factory=Table)
    customer_groups: Table = field(default_factory=Table)
    emails: dict[str, set[int]] = field(default_factory=dict)  # lower-cased email -> ids
    crm_tickets: Table = field(default_factory=Table)  # CrmID -> TicketRecord
    crm_messages: Table = field(default_factory=Table)  # MessageId -> MessageRecord
    crm_statuses: Table = field(default_factory=Table)  # Id -> CrmStatus dict
    crm_departments: Table = field(default_factory=Table)  # DepartmentId -> CrmDepartment dict
    crm_saved_replies: Table = field(default_factory=Table)  # Id -> CrmSavedReply dict

    def __post_init__(self) -> None:
        self.restore_crm_defaults()

    def restore_crm_defaults(self) -> None:
        self.crm_statuses.clear()
        for status in DEFAULT_CRM_STATUSES:
            self.crm_statuses.put(status["Id"], dict(status))
        self.crm_departments.clear()
        for department in DEFAULT_CRM_DEPARTMENTS:
            self.crm_departments.put(department["DepartmentId"], dict(department))

    def clear(self) -> None:
        self.customers.clear()
        self.customer_groups.clear()
        self.emails.clear()
        self.crm_tickets.clear()
        self.crm_messages.clear()
        self.crm_saved_replies.clear()
        self.restore_crm_defaults()

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
    """The query filters of GET /Customers; text matches are case-insensitive and exact, except
    for the fields in ``partial``, which match when the value contains the filter text."""

    text: Mapping[str, str] = field(default_factory=dict)  # Customer field -> lower-cased value
    updated_from: datetime | None = None
    updated_to: datetime | None = None
    group_id: int | None = None
    partial: frozenset[str] = frozenset()

    def matches(self, record: CustomerRecord) -> bool:
        f = record.fields
        if self.group_id is not None and f["CustomerGroupID"] != self.group_id:
            return False
        if self.updated_from is not None and record.last_update < self.updated_from:
            return False
        if self.updated_to is not None and record.last_update > self.updated_to:
            return False
        return all(
            value in (f[name] or "").lower() if name in self.partial else (f[name] or "").lower() == value
            for name, value in self.text.items()
        )

    @property
    def empty(self) -> bool:
        return not self.text and self.updated_from is None and self.updated_to is None


@dataclass(frozen=True)
class TicketFilter:
    """The query filters of GET /CRM: text exact and case-insensitive, ids exact, dates inclusive."""

    text: Mapping[str, str] = field(default_factory=dict)  # ticket field -> lower-cased value
    ids: Mapping[str, int] = field(default_factory=dict)  # ticket field -> value (0 = not given)
    opened_from: datetime | None = None
    opened_to: datetime | None = None
    last_action_from: datetime | None = None
    last_action_to: datetime | None = None

    def matches(self, record: TicketRecord) -> bool:
        f = record.fields
        for low, moment, high in (
            (self.opened_from, record.opened, self.opened_to),
            (self.last_action_from, record.last_action, self.last_action_to),
        ):
            if (low is not None and moment < low) or (high is not None and moment > high):
                return False
        if any(f[name] != value for name, value in self.ids.items()):
            return False
        return all((f[name] or "").lower() == value for name, value in self.text.items())

    @property
    def empty(self) -> bool:
        bounds = (self.opened_from, self.opened_to, self.last_action_from, self.last_action_to)
        return not self.text and not self.ids and all(b is None for b in bounds)


def _message_out(message: MessageRecord, hidden: bool = False) -> dict[str, Any]:
    f = message.fields
    out: dict[str, Any] = {"MessageId": f["MessageId"], "DateCreated": format_crm_date(message.created)}
    out.update({name: f[name] for name in CRM_MESSAGE_FIELDS[2:-1]})
    out["CrmFileList"] = [dict(item) for item in message.files]
    if hidden:
        out["_dateCreated"] = format_time(message.created)
    return out


def _ticket_out(store: StoreData, ticket: TicketRecord, hidden: bool = False) -> dict[str, Any]:
    """A ticket in the reference's key order, every message embedded (ascending MessageId)."""
    f = ticket.fields
    out: dict[str, Any] = {
        "CrmID": f["CrmID"],
        "DateOpened": format_crm_date(ticket.opened),
        "DateLastAction": format_crm_date(ticket.last_action),
    }
    out.update({name: f[name] for name in CRM_FIELDS[3:-1]})
    out["CrmMessageList"] = [_message_out(store.crm_messages.rows[i], hidden) for i in ticket.message_ids]
    if hidden:
        out["_dateOpened"] = format_time(ticket.opened)
        out["_dateLastAction"] = format_time(ticket.last_action)
    return out


# Elements without content: re-serialised self-closed, XHTML style (`<br>` -> `<br />`).
_VOID_ELEMENTS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
)


class _HtmlReserializer(HTMLParser):
    """Re-emit parsed HTML the way a server-side sanitiser does: lower-case tag and attribute
    names, every attribute value double-quoted and escaped, void elements self-closed, text
    re-escaped with non-breaking spaces as ``&#160;``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []

    @staticmethod
    def _text(data: str) -> str:
        return html.escape(data, quote=False).replace("\xa0", "&#160;")

    def _tag(self, tag: str, attrs: list[tuple[str, str | None]], close: bool) -> str:
        parts = [tag]
        for name, value in attrs:
            quoted = html.escape(name if value is None else value, quote=True).replace("\xa0", "&#160;")
            parts.append(f'{name}="{quoted}"')
        return "<" + " ".join(parts) + (" />" if close else ">")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.out.append(self._tag(tag, attrs, tag in _VOID_ELEMENTS))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.out.append(self._tag(tag, attrs, True))

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID_ELEMENTS:  # `</br>` and friends have nothing to close
            self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.out.append(self._text(data))

    def handle_comment(self, data: str) -> None:
        self.out.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.out.append(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self.out.append(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self.out.append(f"<![{data}]>")


def normalize_crm_message(text: str) -> str:
    """CRM message text as a normalising store keeps it (``normalize_crm_messages=True``).

    HTML is re-serialised (``_HtmlReserializer``), then every run of whitespace, newlines included,
    becomes one space and the ends are stripped. Rendered, it reads as before; byte-wise it
    differs for any text with a newline, a ``<br>``, an upper-case tag or an ``&nbsp;``.
    """
    parser = _HtmlReserializer()
    parser.feed(text)
    parser.close()
    # After re-serialisation a non-breaking space is `&#160;`, so `\s` no longer matches it.
    return re.sub(r"\s+", " ", "".join(parser.out)).strip()


def _bind_message(body: Any, where: str = "") -> dict[str, Any]:
    """Bind one submitted CrmMessage; ``Message`` is required (non-empty) and stored as sent."""
    if not isinstance(body, dict):
        raise FieldError("CrmMessageList", f"{where}each message must be a JSON object.")
    try:
        values = _bind(body, _CRM_MESSAGE_SCHEMA, _CRM_MESSAGE_READ_ONLY)
        if values.get("Message") is None:
            raise FieldError("Message", "Message is required.")
    except FieldError as exc:
        raise FieldError(exc.field, where + exc.message) from None
    return values


def _bind_message_list(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise FieldError("CrmMessageList", "CrmMessageList must be an array of CrmMessage objects.")
    return [_bind_message(item, f"CrmMessageList[{i}]: ") for i, item in enumerate(raw)]


def _load_row(raw: Mapping[str, Any], schema: Mapping[str, tuple[FieldKind, int | None]]) -> dict[str, Any]:
    """Seed data: the schema's fields coerced, the rest defaulted; no length or required checks."""
    row = _defaults(schema)
    for name, (kind, _) in schema.items():
        value = _get_ci(raw, name)
        if value is not None:
            row[name] = _coerce(name, kind, value)
    return row


def _seed_time(raw: Mapping[str, Any], hidden: str, visible: str) -> datetime:
    value = raw.get(hidden) or _get_ci(raw, visible)
    return _parse_stored_time(value) if value else utc_now()


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
        latency_s: float = 0.0,
        default_limit: int = 10,
        max_limit: int = 500,
        crm_get_as_array: bool = False,
        array_post: str = "per_item",
        bulk_put_missing: str = "per_item",
        error_bodies: str = "json",
        result_order: str = "request",
        email_filter: str = "exact",
        unique_emails: bool = True,
        normalize_crm_messages: bool = False,
        accept_array_post: bool | None = None,
    ):
        """Knob defaults are the lenient readings (``sandbox.profiles.LENIENT``). ``accept_array_post``
        is the older spelling of ``array_post``: given alone it decides (True -> per_item, False ->
        reject); given with a non-default ``array_post`` the two must agree."""
        self.lock = threading.RLock()
        self.request_log = RequestLog()
        self.credentials: dict[str, set[tuple[str, str]]] = {}
        self.data: dict[str, StoreData] = {}
        self.buckets: dict[tuple[str, str], LeakyBucket] = {}
        self.rate_limit = rate_limit
        self.bucket_size = bucket_size
        self.leak_per_s = leak_per_s
        self.send_retry_after = send_retry_after
        self.latency_s = latency_s
        self.default_limit = default_limit
        self.max_limit = max_limit
        self.crm_get_as_array = crm_get_as_array
        self.array_post = array_post
        self.bulk_put_missing = bulk_put_missing
        self.error_bodies = error_bodies
        self.result_order = result_order
        self.email_filter = email_filter
        self.unique_emails = unique_emails
        self.normalize_crm_messages = normalize_crm_messages
        # Deterministic "randomness": both restart on reset() and when their knob is configured.
        self._error_body_turn = 0  # index into ERROR_BODY_ROTATION of the next varied error answer
        self._result_rng = random.Random(0)  # result_order="shuffled"
        alias: dict[str, Any] = {}
        if accept_array_post is not None:
            if array_post == "per_item":  # array_post left at its default: the alias decides
                self.array_post = "per_item" if accept_array_post else "reject"
            alias = {"accept_array_post": accept_array_post, "array_post": self.array_post}
        self.configure(**alias)  # validates every knob (and that the two spellings agree)
        for url, cred in (stores or {}).items():
            self.add_store(url, cred["private_key"], cred["token"])

    # ----- configuration, stores, auth, rate limit -------------------------------------------

    @property
    def accept_array_post(self) -> bool:
        """The older boolean spelling of ``array_post``: True iff arrays are created per item."""
        return self.array_post == "per_item"

    def config(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in CONFIG_KEYS}

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change any of ``CONFIG_KEYS`` (or the ``accept_array_post`` alias); ValueError, and no
        change at all, on an unknown key or a bad value. Returns the new ``config()``."""
        unknown = set(changes) - set(CONFIG_KEYS) - set(CONFIG_ALIASES)
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        changes = dict(changes)
        if "accept_array_post" in changes:
            alias = changes.pop("accept_array_post")
            if not isinstance(alias, bool):
                raise ValueError("accept_array_post must be a boolean")
            if "array_post" not in changes:
                changes["array_post"] = "per_item" if alias else "reject"
            elif (changes["array_post"] == "per_item") != alias:
                raise ValueError(
                    f"accept_array_post={alias} contradicts array_post={changes['array_post']!r} "
                    "(accept_array_post is an alias: True = per_item, False = reject or reject_no_content)"
                )
        merged = {**self.config(), **changes}
        for key in _BOOL_KEYS:
            if not isinstance(merged[key], bool):
                raise ValueError(f"{key} must be a boolean")
        for key, choices in KNOB_CHOICES.items():
            if not isinstance(merged[key], str) or merged[key] not in choices:
                raise ValueError(f"{key} must be one of {', '.join(map(repr, choices))}, not {merged[key]!r}")
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
            if "error_bodies" in changes:
                self._error_body_turn = 0
            if "result_order" in changes:
                self._result_rng = random.Random(0)
            return self.config()

    def next_error_body(self) -> str:
        """The body the next varied error answer carries (``ERROR_BODY_ROTATION``, in turn).

        The HTTP layer calls this once per 400/404/500 answer it varies (``error_bodies="varied"``),
        so after ``reset()`` (or configuring ``error_bodies``) the answers go json, empty, html,
        json, ... in the order the requests are answered.
        """
        with self.lock:
            body = ERROR_BODY_ROTATION[self._error_body_turn % len(ERROR_BODY_ROTATION)]
            self._error_body_turn += 1
            return body

    def _in_result_order(self, results: list[dict[str, str]]) -> list[dict[str, str]]:
        """Per-item results of a multi-item write in the configured order.

        ``shuffled``: a permutation from a seeded RNG that is never the identity, so with two or
        more items at least one result is out of place (a client matching by position breaks; one
        matching by ``Value`` does not).
        """
        if self.result_order == "request" or len(results) < 2:
            return results
        with self.lock:
            order = list(range(len(results)))
            self._result_rng.shuffle(order)
        if order == sorted(order):
            order = order[1:] + order[:1]
        return [results[i] for i in order]

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
        """Empty every store (credentials and config stay), the buckets and the request log.

        CRM statuses and departments go back to the defaults; tickets and saved replies are emptied.
        The error-body rotation and the result shuffle start over, so what follows is predictable.
        """
        with self.lock:
            for store in self.data.values():
                store.clear()
            self.buckets.clear()
            self._error_body_turn = 0
            self._result_rng = random.Random(0)
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
        # An email filter is answered from the index (lower-cased address -> ids), so per-contact
        # look-ups stay cheap at 100k: one dict hit when exact, one pass over the keys when partial.
        if email is None:
            candidates: Iterable[int] = table.ids
        elif self.email_filter == "contains":
            flt = replace(flt, partial=flt.partial | {"Email"})
            candidates = sorted(i for address, ids in store.emails.items() if email in address for i in ids)
        else:
            candidates = sorted(store.emails.get(email, ()))
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
            if self.unique_emails and store.email_taken(values["Email"]):
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
            if self.unique_emails and new_email is not None and store.email_taken(new_email, by_other_than=cid):
                return error_item(cid, 400, DUPLICATE_EMAIL_MESSAGE)
            if "Password" in values:
                values["Password"] = hash_password(values["Password"])
                record.password_set = True
            store.unindex_email(cid, record.fields["Email"])
            record.fields.update(values)
            store.index_email(cid, record.fields["Email"])
            record.last_update = utc_now()
        return result_item("CustomerID", cid, 200, "updated successfully")

    def create_customers(self, store_key: str, items: Iterable[Any]) -> list[dict[str, str]]:
        """Array POST read per item (``array_post="per_item"``): each item created or refused on its
        own, one result each (in ``result_order``)."""
        with self.lock:
            return self._in_result_order([self.create_customer(store_key, item) for item in items])

    def update_customers(self, store_key: str, items: Iterable[Any]) -> list[dict[str, str]]:
        """Bulk PUT: each item carries its CustomerID; items are applied in order, one result each
        (returned in ``result_order``).

        When an item names a CustomerID the store does not hold, ``bulk_put_missing`` decides:
        ``per_item`` gives that item its own 404 result; ``whole_404_apply_known`` applies the other
        items and then fails the whole request (ApiError 404, ``CUSTOMERS_NOT_FOUND_MESSAGE``);
        ``whole_404_apply_none`` checks every id first and fails the request with nothing applied.
        Items failing for other reasons (validation, duplicate email) never change anything.
        """
        items = list(items)
        ids = [_get_ci(item, "CustomerID") if isinstance(item, dict) else None for item in items]
        with self.lock:  # held throughout, so "check every id, then apply" is one step
            customers = self.data[store_key].customers
            if self.bulk_put_missing == "whole_404_apply_none" and any(
                _known_id(raw) is not None and customers.get(_known_id(raw)) is None for raw in ids
            ):
                raise ApiError(404, CUSTOMERS_NOT_FOUND_MESSAGE)
            results = [self.update_customer(store_key, raw, item) for raw, item in zip(ids, items, strict=True)]
            if self.bulk_put_missing != "per_item" and any(r["Status"] == "404" for r in results):
                raise ApiError(404, CUSTOMERS_NOT_FOUND_MESSAGE)
            return self._in_result_order(results)

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
        """Bulk PUT /CustomerGroups: applied in order, one result each (returned in ``result_order``)."""
        with self.lock:
            return self._in_result_order(
                [
                    self.update_customer_group(
                        store_key, _get_ci(item, "CustomerGroupID") if isinstance(item, dict) else None, item
                    )
                    for item in items
                ]
            )

    def delete_customer_group(self, store_key: str, group_id: int) -> dict[str, str]:
        # Members keep their CustomerGroupID (no cascade); nothing documents one either way.
        with self.lock:
            table = self.data[store_key].customer_groups
            if table.get(group_id) is None:
                raise ApiError(404, GROUP_NOT_FOUND_MESSAGE, str(group_id))
            table.remove(group_id)
        return result_item("CustomerGroupID", group_id, 200, "Deleted successfully")

    # ----- CRM: tickets --------------------------------------------------------------------------

    def _resolve_crm_refs(self, store: StoreData, values: dict[str, Any], creating: bool) -> None:
        """Check the references a ticket write carries (simulator choice: all checked, 400 if dangling).

        CustomerID 0 is a guest ticket; any other value must be an existing customer. On POST a
        StatusID/DepartmentID of 0 (or omitted) becomes the store's first status/department (lowest
        Id); otherwise it must name one (statuses are referenced by ``StatusId``).
        """
        customer_id = values.get("CustomerID")
        if customer_id and store.customers.get(customer_id) is None:
            raise FieldError("CustomerID", f"CustomerID {customer_id} does not exist.")
        statuses = [store.crm_statuses.rows[i]["StatusId"] for i in store.crm_statuses.ids]
        departments = list(store.crm_departments.ids)
        for name, known in (("StatusID", statuses), ("DepartmentID", departments)):
            if creating and not values.get(name):
                values[name] = known[0] if known else 0
                continue
            if name in values and values[name] not in known:
                raise FieldError(name, f"{name} {values[name]} does not exist.")

    def _add_message(self, store: StoreData, ticket: TicketRecord, values: dict[str, Any], now: datetime) -> int:
        """Store one validated message; its text as sent, or normalised (``normalize_crm_messages``)."""
        if self.normalize_crm_messages and values.get("Message") is not None:
            values = {**values, "Message": normalize_crm_message(values["Message"])}
        message_id = store.crm_messages.allocate_id()
        fields = {**_defaults(_CRM_MESSAGE_SCHEMA), **values, "MessageId": message_id}
        store.crm_messages.put(message_id, MessageRecord(ticket.fields["CrmID"], fields, now))
        bisect.insort(ticket.message_ids, message_id)
        return message_id

    def list_tickets(
        self,
        store_key: str,
        flt: TicketFilter,
        limit: int | None = None,
        offset: int | None = None,
        countonly: bool = False,
    ) -> list[dict[str, Any]] | dict[str, int]:
        with self.lock:
            store = self.data[store_key]
            table = store.crm_tickets
            ids = table.ids if flt.empty else [i for i in table.ids if flt.matches(table.rows[i])]
            if countonly:
                return {"TotalCount": len(ids)}
            page = self._page(ids, limit, offset, CRM_NOT_FOUND_MESSAGE)
            return [_ticket_out(store, table.rows[i]) for i in page]

    def get_ticket(self, store_key: str, crm_id: int) -> dict[str, Any]:
        with self.lock:
            store = self.data[store_key]
            ticket = store.crm_tickets.get(crm_id)
            if ticket is None:
                raise ApiError(404, CRM_NOT_FOUND_MESSAGE, str(crm_id))
            return _ticket_out(store, ticket)

    def create_ticket(self, store_key: str, body: Any) -> dict[str, str]:
        """POST one CRM ticket (with optional ``CrmMessageList``); returns its result item."""
        if not isinstance(body, dict):
            return error_item("", 400, "The request body must be a single CRM object.")
        try:
            values = _bind(body, _CRM_SCHEMA, _CRM_READ_ONLY)
            if values.get("CustomerEmail") is None:
                raise FieldError("CustomerEmail", "CustomerEmail is required.")
            messages = _bind_message_list(_get_ci(body, "CrmMessageList"))
        except FieldError as exc:
            return error_item(exc.field, 400, exc.message)
        with self.lock:
            store = self.data[store_key]
            try:
                self._resolve_crm_refs(store, values, creating=True)
            except FieldError as exc:
                return error_item(exc.field, 400, exc.message)
            now = utc_now()
            crm_id = store.crm_tickets.allocate_id()
            ticket = TicketRecord({**_defaults(_CRM_SCHEMA), **values, "CrmID": crm_id}, now, now)
            store.crm_tickets.put(crm_id, ticket)
            for message in messages:
                self._add_message(store, ticket, message, now)
        return result_item("CrmID", crm_id, 201, "Created successfully")

    def update_ticket(self, store_key: str, crm_id: int, body: Any) -> dict[str, str]:
        """PUT one ticket by id, partial; ``CrmMessageList`` and the dates are ignored."""
        if not isinstance(body, dict):
            return error_item(crm_id, 400, "The request body must be a single CRM object.")
        with self.lock:
            store = self.data[store_key]
            ticket = store.crm_tickets.get(crm_id)
            if ticket is None:
                return error_item(crm_id, 404, CRM_NOT_FOUND_MESSAGE)
            try:
                values = _bind(body, _CRM_SCHEMA, _CRM_READ_ONLY)
                if "CustomerEmail" in values and values["CustomerEmail"] is None:
                    raise FieldError("CustomerEmail", "CustomerEmail cannot be empty.")
                self._resolve_crm_refs(store, values, creating=False)
            except FieldError as exc:
                return error_item(crm_id, 400, exc.message)
            ticket.fields.update(values)
            ticket.last_action = utc_now()
        return result_item("CrmID", crm_id, 200, CRM_UPDATED_MESSAGE)

    def delete_ticket(self, store_key: str, crm_id: int) -> dict[str, str]:
        with self.lock:
            store = self.data[store_key]
            if store.crm_tickets.get(crm_id) is None:
                raise ApiError(404, CRM_NOT_FOUND_MESSAGE, str(crm_id))
            ticket = store.crm_tickets.remove(crm_id)
            for message_id in ticket.message_ids:
                store.crm_messages.remove(message_id)
        return result_item("CrmID", crm_id, 200, "Deleted successfully")

    # ----- CRM: messages -------------------------------------------------------------------------

    def list_messages(
        self, store_key: str, crm_id: int, limit: int | None = None, offset: int | None = None
    ) -> list[dict[str, Any]]:
        with self.lock:
            store = self.data[store_key]
            ticket = store.crm_tickets.get(crm_id)
            if ticket is None:
                raise ApiError(404, CRM_MESSAGES_NOT_FOUND_MESSAGE, str(crm_id))
            page = self._page(ticket.message_ids, limit, offset, CRM_MESSAGES_NOT_FOUND_MESSAGE)
            return [_message_out(store.crm_messages.rows[i]) for i in page]

    def _message(self, store: StoreData, crm_id: int, message_id: int) -> MessageRecord:
        message = store.crm_messages.get(message_id)
        if message is None or message.crm_id != crm_id:
            raise ApiError(404, CRM_MESSAGE_NOT_FOUND_MESSAGE, str(message_id))
        return message

    def get_message(self, store_key: str, crm_id: int, message_id: int) -> dict[str, Any]:
        with self.lock:
            return _message_out(self._message(self.data[store_key], crm_id, message_id))

    def create_message(self, store_key: str, crm_id: int, body: Any) -> dict[str, str]:
        """POST one message to a ticket; moves the ticket's DateLastAction."""
        if not isinstance(body, dict):
            return error_item("", 400, "The request body must be a single CrmMessage object.")
        try:
            values = _bind_message(body)
        except FieldError as exc:
            return error_item(exc.field, 400, exc.message)
        with self.lock:
            store = self.data[store_key]
            ticket = store.crm_tickets.get(crm_id)
            if ticket is None:
                return error_item(crm_id, 404, CRM_NOT_FOUND_MESSAGE)
            now = utc_now()
            message_id = self._add_message(store, ticket, values, now)
            ticket.last_action = now
        return result_item("MessageId", message_id, 201, "Created successfully")

    def delete_message(self, store_key: str, crm_id: int, message_id: int) -> dict[str, str]:
        with self.lock:
            store = self.data[store_key]
            self._message(store, crm_id, message_id)
            store.crm_messages.remove(message_id)
            ticket: TicketRecord = store.crm_tickets.rows[crm_id]
            ticket.message_ids.remove(message_id)
            ticket.last_action = utc_now()
        return result_item("MessageId", message_id, 200, "Deleted successfully")

    # ----- CRM: statuses, departments, saved replies -------------------------------------------

    def _list_rows(
        self,
        table: Table,
        limit: int | None,
        offset: int | None,
        countonly: bool,
        empty_message: str,
        keep: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]] | dict[str, int]:
        ids = table.ids if keep is None else [i for i in table.ids if keep(table.rows[i])]
        if countonly:
            return {"TotalCount": len(ids)}
        return [dict(table.rows[i]) for i in self._page(ids, limit, offset, empty_message)]

    def _update_row(
        self,
        table: Table,
        row_id: int,
        body: Any,
        schema: Mapping[str, tuple[FieldKind, int | None]],
        read_only: frozenset[str],
        required: str,
        key: str,
        not_found: str,
    ) -> dict[str, str]:
        """PUT by id on a small CRM table: partial update, ``required`` may not be emptied."""
        if not isinstance(body, dict):
            return error_item(row_id, 400, "The request body must be a single JSON object.")
        row = table.get(row_id)
        if row is None:
            return error_item(row_id, 404, not_found)
        try:
            values = _bind(body, schema, read_only)
            if required in values and values[required] is None:
                raise FieldError(required, f"{required} cannot be empty.")
        except FieldError as exc:
            return error_item(row_id, 400, exc.message)
        row.update(values)
        return result_item(key, row_id, 200, CRM_UPDATED_MESSAGE)

    def list_crm_statuses(
        self, store_key: str, limit: int | None = None, offset: int | None = None, countonly: bool = False
    ) -> list[dict[str, Any]] | dict[str, int]:
        with self.lock:
            table = self.data[store_key].crm_statuses
            return self._list_rows(table, limit, offset, countonly, NO_CRM_STATUSES_MESSAGE)

    def get_crm_status(self, store_key: str, status_id: int) -> dict[str, Any]:
        with self.lock:
            row = self.data[store_key].crm_statuses.get(status_id)
            if row is None:
                raise ApiError(404, CRM_STATUS_NOT_FOUND_MESSAGE, str(status_id))
            return dict(row)

    def update_crm_status(self, store_key: str, status_id: int, body: Any) -> dict[str, str]:
        """PUT /CRM/status/{Id}: only StatusName can change (Id and StatusId are read-only)."""
        with self.lock:
            table = self.data[store_key].crm_statuses
            return self._update_row(
                table,
                status_id,
                body,
                _CRM_STATUS_SCHEMA,
                _CRM_STATUS_READ_ONLY,
                "StatusName",
                "StatusId",
                CRM_STATUS_NOT_FOUND_MESSAGE,
            )

    def list_crm_departments(
        self, store_key: str, limit: int | None = None, offset: int | None = None, countonly: bool = False
    ) -> list[dict[str, Any]] | dict[str, int]:
        with self.lock:
            table = self.data[store_key].crm_departments
            return self._list_rows(table, limit, offset, countonly, NO_CRM_DEPARTMENTS_MESSAGE)

    def update_crm_department(self, store_key: str, department_id: int, body: Any) -> dict[str, str]:
        with self.lock:
            table = self.data[store_key].crm_departments
            return self._update_row(
                table,
                department_id,
                body,
                _CRM_DEPARTMENT_SCHEMA,
                _CRM_DEPARTMENT_READ_ONLY,
                "Name",
                "DepartmentId",
                CRM_DEPARTMENT_NOT_FOUND_MESSAGE,
            )

    def list_crm_saved_replies(
        self,
        store_key: str,
        title: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        countonly: bool = False,
    ) -> list[dict[str, Any]] | dict[str, int]:
        wanted = None if title is None else title.strip().lower()

        def keep(row: dict[str, Any]) -> bool:
            return (row["Title"] or "").lower() == wanted

        with self.lock:
            table = self.data[store_key].crm_saved_replies
            return self._list_rows(
                table, limit, offset, countonly, CRM_SAVED_REPLY_NOT_FOUND_MESSAGE, None if wanted is None else keep
            )

    def get_crm_saved_reply(self, store_key: str, reply_id: int) -> dict[str, Any]:
        with self.lock:
            row = self.data[store_key].crm_saved_replies.get(reply_id)
            if row is None:
                raise ApiError(404, CRM_SAVED_REPLY_NOT_FOUND_MESSAGE, str(reply_id))
            return dict(row)

    def create_crm_saved_reply(self, store_key: str, body: Any) -> dict[str, str]:
        if not isinstance(body, dict):
            return error_item("", 400, "The request body must be a single CrmSavedReply object.")
        try:
            values = _bind(body, _CRM_SAVED_REPLY_SCHEMA, _CRM_SAVED_REPLY_READ_ONLY)
            if values.get("Title") is None:
                raise FieldError("Title", "Title is required.")
        except FieldError as exc:
            return error_item(exc.field, 400, exc.message)
        with self.lock:
            table = self.data[store_key].crm_saved_replies
            reply_id = table.allocate_id()
            table.put(reply_id, {**_defaults(_CRM_SAVED_REPLY_SCHEMA), **values, "Id": reply_id})
        return result_item("SavedReplyID", reply_id, 201, "Created successfully")

    def update_crm_saved_reply(self, store_key: str, reply_id: int, body: Any) -> dict[str, str]:
        with self.lock:
            table = self.data[store_key].crm_saved_replies
            return self._update_row(
                table,
                reply_id,
                body,
                _CRM_SAVED_REPLY_SCHEMA,
                _CRM_SAVED_REPLY_READ_ONLY,
                "Title",
                "SavedReplyID",
                CRM_SAVED_REPLY_NOT_FOUND_MESSAGE,
            )

    def delete_crm_saved_reply(self, store_key: str, reply_id: int) -> dict[str, str]:
        with self.lock:
            table = self.data[store_key].crm_saved_replies
            if table.get(reply_id) is None:
                raise ApiError(404, CRM_SAVED_REPLY_NOT_FOUND_MESSAGE, str(reply_id))
            table.remove(reply_id)
        return result_item("SavedReplyID", reply_id, 200, "Deleted successfully")

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

    # ----- CRM seeding and inspection ----------------------------------------------------------

    def load_tickets(self, secure_url: str | None, tickets: Iterable[Mapping[str, Any]]) -> list[int]:
        """Insert API-shaped tickets (``CrmMessageList`` included), keeping CrmID/MessageId when given.

        No validation: lengths, required fields and references are not checked. ``_dateOpened`` /
        ``_dateLastAction`` (ISO or MM/dd/yyyy HH:mm[:ss], UTC) win over ``DateOpened`` /
        ``DateLastAction``; both default to now. Each message takes ``_dateCreated`` or
        ``DateCreated`` (default: the ticket's DateOpened) and keeps its ``CrmFileList`` as given.
        Loading an existing CrmID replaces that ticket and its messages.
        """
        ids: list[int] = []
        with self.lock:
            store = self.data[self.resolve_store(secure_url)]
            for raw in tickets:
                fields = _load_row(raw, _CRM_SCHEMA)
                crm_id = fields["CrmID"] or store.crm_tickets.allocate_id()
                fields["CrmID"] = crm_id
                old = store.crm_tickets.get(crm_id)
                if old is not None:
                    for message_id in old.message_ids:
                        store.crm_messages.remove(message_id)
                opened = _seed_time(raw, "_dateOpened", "DateOpened")
                ticket = TicketRecord(fields, opened, _seed_time(raw, "_dateLastAction", "DateLastAction"))
                store.crm_tickets.put(crm_id, ticket)
                for raw_message in _get_ci(raw, "CrmMessageList") or []:
                    message = _load_row(raw_message, _CRM_MESSAGE_SCHEMA)
                    message_id = message["MessageId"] or store.crm_messages.allocate_id()
                    message["MessageId"] = message_id
                    created = raw_message.get("_dateCreated") or _get_ci(raw_message, "DateCreated")
                    files = [dict(f) for f in _get_ci(raw_message, "CrmFileList") or []]
                    moment = _parse_stored_time(created) if created else opened
                    store.crm_messages.put(message_id, MessageRecord(crm_id, message, moment, files))
                    bisect.insort(ticket.message_ids, message_id)
                ids.append(crm_id)
        return ids

    def _load_simple(
        self,
        secure_url: str | None,
        rows: Iterable[Mapping[str, Any]],
        table_name: str,
        schema: Mapping[str, tuple[FieldKind, int | None]],
        key: str,
        replace: bool,
    ) -> list[int]:
        ids: list[int] = []
        with self.lock:
            table: Table = getattr(self.data[self.resolve_store(secure_url)], table_name)
            if replace:
                table.clear()
            for raw in rows:
                row = _load_row(raw, schema)
                row[key] = row[key] or table.allocate_id()
                table.put(row[key], row)
                ids.append(row[key])
        return ids

    def load_crm_statuses(
        self, secure_url: str | None, statuses: Iterable[Mapping[str, Any]], replace: bool = False
    ) -> list[int]:
        """Insert CrmStatus rows keeping ``Id``; ``StatusId`` defaults to the Id. ``replace`` drops
        the existing statuses (the defaults included) first."""
        rows = [{**raw, "StatusId": _get_ci(raw, "StatusId") or _get_ci(raw, "Id")} for raw in statuses]
        ids = self._load_simple(secure_url, rows, "crm_statuses", _CRM_STATUS_SCHEMA, "Id", replace)
        with self.lock:  # rows given without any id got theirs just now
            table = self.data[self.resolve_store(secure_url)].crm_statuses
            for row_id in ids:
                table.rows[row_id]["StatusId"] = table.rows[row_id]["StatusId"] or row_id
        return ids

    def load_crm_departments(
        self, secure_url: str | None, departments: Iterable[Mapping[str, Any]], replace: bool = False
    ) -> list[int]:
        """Insert CrmDepartment rows keeping ``DepartmentId``; ``replace`` drops the existing ones."""
        return self._load_simple(
            secure_url, departments, "crm_departments", _CRM_DEPARTMENT_SCHEMA, "DepartmentId", replace
        )

    def load_crm_saved_replies(
        self, secure_url: str | None, replies: Iterable[Mapping[str, Any]], replace: bool = False
    ) -> list[int]:
        return self._load_simple(secure_url, replies, "crm_saved_replies", _CRM_SAVED_REPLY_SCHEMA, "Id", replace)

    def all_tickets(self, secure_url: str | None = None) -> list[dict[str, Any]]:
        """Every ticket of a store, API-shaped with all its messages, plus the exact times:
        ``_dateOpened``/``_dateLastAction`` on tickets and ``_dateCreated`` on messages (ISO, Z)."""
        with self.lock:
            store = self.data[self.resolve_store(secure_url)]
            return [_ticket_out(store, store.crm_tickets.rows[i], hidden=True) for i in store.crm_tickets.ids]

    def _all_rows(self, secure_url: str | None, table_name: str) -> list[dict[str, Any]]:
        with self.lock:
            table: Table = getattr(self.data[self.resolve_store(secure_url)], table_name)
            return [dict(table.rows[i]) for i in table.ids]

    def all_crm_statuses(self, secure_url: str | None = None) -> list[dict[str, Any]]:
        return self._all_rows(secure_url, "crm_statuses")

    def all_crm_departments(self, secure_url: str | None = None) -> list[dict[str, Any]]:
        return self._all_rows(secure_url, "crm_departments")

    def all_crm_saved_replies(self, secure_url: str | None = None) -> list[dict[str, Any]]:
        return self._all_rows(secure_url, "crm_saved_replies")

    def all_crm(self, secure_url: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """One store's whole CRM module, in the shape ``load_crm`` (and ``POST /_sim/crm``) takes."""
        with self.lock:
            return {
                "tickets": self.all_tickets(secure_url),
                "statuses": self.all_crm_statuses(secure_url),
                "departments": self.all_crm_departments(secure_url),
                "savedReplies": self.all_crm_saved_replies(secure_url),
            }

    def load_crm(self, secure_url: str | None, crm: Mapping[str, Any], replace: bool = False) -> dict[str, list[int]]:
        """Load ``{"tickets", "statuses", "departments", "savedReplies"}`` (each optional).

        With ``replace`` the statuses/departments/saved replies given replace the existing ones
        (a dump holds them all); without it they are added or overwrite by id.
        """

        def rows(name: str) -> tuple[list[Any], bool]:
            return list(crm.get(name) or []), replace and name in crm

        with self.lock:
            return {
                "statusIds": self.load_crm_statuses(secure_url, *rows("statuses")),
                "departmentIds": self.load_crm_departments(secure_url, *rows("departments")),
                "savedReplyIds": self.load_crm_saved_replies(secure_url, *rows("savedReplies")),
                "ticketIds": self.load_tickets(secure_url, crm.get("tickets") or []),
            }

    def dump_seed(self, path: str | Path, secure_url: str | None = None) -> None:
        """Write one store as a seed file that ``from_seed_file`` reloads to the same state."""
        with self.lock:
            key = self.resolve_store(secure_url)
            seed = {
                "secureUrl": self.data[key].secure_url,
                "customers": self.all_customers(key),
                "customerGroups": self.all_customer_groups(key),
                "crm": self.all_crm(key),
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
        """Build a state from ``{"secureUrl", "customers", "customerGroups", "crm"}`` or a bare list.

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
        state.load_crm(url, seed.get("crm") or {}, replace=True)
        return state
