"""In-memory state of the GHL simulator and every rule that does not depend on HTTP.

Owns: the token store with the OAuth clients, grants and token rotation, the per-(client, location)
rate limiter, the fault plan (``sandbox/faults.py``), contact storage (with the derived
name/email fields and duplicate detection), the search index (a possibly lagging copy of the
contacts with sorted ``(epoch_ms, id)`` lists for ``dateAdded``/``dateUpdated``), and the search,
list and business-listing engines. It also owns the contacts' child objects (tasks, notes) and the
calendars with their events (appointments), with the task search and the calendar-event window.
``app.py`` only turns HTTP into calls on this object.

Every public method takes ``self.lock``; the lock is re-entrant so methods may call each other.
Rule violations are raised as ``ApiError`` carrying the exact GHL error body.
"""

from __future__ import annotations

import json
import math
import random
import re
import secrets
import string
import threading
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from sandbox.common import RequestLog
from sandbox.faults import FaultPlan

__all__ = [
    "ALL_SCOPES",
    "APPOINTMENT_STATUSES",
    "CONFIG_KEYS",
    "MAX_TASK_SEARCH_CONTACTS",
    "MAX_TASK_SEARCH_LIMIT",
    "OAuthClient",
    "PUBLISHED_VERSIONS",
    "SORTABLE_FIELDS",
    "ApiError",
    "GhlState",
    "RateDecision",
    "Token",
    "iso_ms",
    "parse_ms",
]

ALL_SCOPES: frozenset[str] = frozenset(
    {
        "contacts.readonly",
        "contacts.write",
        "locations.readonly",
        "locations/tasks.readonly",
        "calendars.readonly",
        "calendars.write",
        "calendars/events.readonly",
        "calendars/events.write",
    }
)
# Values the Versioning page publishes and live probes confirmed on v2 paths ("legacy" is the v1 API).
PUBLISHED_VERSIONS: frozenset[str] = frozenset({"v3", "2023-02-21", "2021-07-28", "2021-04-15"})
SORTABLE_FIELDS: tuple[str, ...] = (
    "firstNameLowerCase",
    "lastNameLowerCase",
    "businessName",
    "dateAdded",
    "dateUpdated",
    "email",
    "dnd",
    "source",
)
CONFIG_KEYS: tuple[str, ...] = (
    "rate_limit",
    "burst_max",
    "burst_window_ms",
    "daily_limit",
    "send_retry_after",
    "index_lag_s",
    "latency_s",
    "allow_duplicates",
    "touch_contact_on_child_write",
    "location_timezone",
    "access_token_ttl_s",
    "refresh_reuse_window_s",
)
_CONFIG_TYPES: dict[str, type] = {
    "rate_limit": bool,
    "burst_max": int,
    "burst_window_ms": int,
    "daily_limit": int,
    "send_retry_after": bool,
    "index_lag_s": float,
    "latency_s": float,
    "allow_duplicates": bool,
    "touch_contact_on_child_write": bool,
    "location_timezone": str,
    "access_token_ttl_s": float,
    "refresh_reuse_window_s": float,
}
DAY_S = 86_400.0
PAGE_PAGING_CAP = 10_000  # page * pageLimit may not go past this many records
MAX_PAGE_LIMIT = 500
MAX_FILTER_VALUE_LEN = 75
DEFAULT_SORT: tuple[tuple[str, str], ...] = (("dateAdded", "asc"),)

# Tasks, notes, calendars, events (contacts.json, locations.json, calendars.json).
APPOINTMENT_STATUSES: tuple[str, ...] = ("new", "confirmed", "cancelled", "showed", "noshow", "invalid")
MEETING_LOCATION_TYPES: tuple[str, ...] = ("custom", "zoom", "gmeet", "phone", "address", "ms_teams", "google")
# The spec caps neither; these are the simulator's choices (BEHAVIOR.md).
MAX_TASK_SEARCH_LIMIT = 100
MAX_TASK_SEARCH_CONTACTS = 100
DEFAULT_TASK_SEARCH_LIMIT = 25
TASK_KEYS: tuple[str, ...] = ("id", "title", "body", "assignedTo", "dueDate", "completed", "contactId")
NOTE_KEYS: tuple[str, ...] = ("id", "body", "userId", "dateAdded", "contactId", "title", "color", "pinned")

_ALNUM = string.ascii_letters + string.digits


# --------------------------------------------------------------------------------------------------
# errors, time helpers


class ApiError(Exception):
    """A GHL error response: ``statusCode`` + ``message`` (+ ``error`` / ``meta``)."""

    def __init__(
        self,
        status: int,
        message: str | list[str],
        *,
        error: str | None = None,
        meta: dict | None = None,
        extra: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error
        self.meta = meta
        self.extra = extra

    def body(self) -> dict:
        out: dict[str, Any] = {"statusCode": self.status, "message": self.message}
        if self.error is not None:
            out["error"] = self.error
        if self.meta is not None:
            out["meta"] = self.meta
        if self.extra:
            out.update(self.extra)
        return out


def oauth_error(status: int, error: str, description: str) -> ApiError:
    """A ``/oauth/token`` failure: the spec's envelope (``statusCode``, ``message``) carrying the
    RFC 6749 §5.2 fields (``error``, ``error_description``) too, so either kind of client can read it."""
    return ApiError(status, description, error=error, extra={"error_description": description})


def unprocessable(*messages: str) -> ApiError:
    """422 with the NestJS ValidationPipe shape: ``message`` is always an array."""
    return ApiError(422, list(messages), error="Unprocessable Entity")


def not_found(contact_id: str) -> ApiError:
    # Third parties saw 400 (not 404) for unknown contact ids on v2.
    return ApiError(400, f"Contact with id {contact_id} not found")


def iso_ms(ms: int) -> str:
    """Epoch ms -> ``YYYY-MM-DDTHH:mm:ss.sssZ`` (the API's timestamp format)."""
    dt = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_ms(value: Any) -> int | None:
    """ISO-8601 string (``Z``/offset/date-only) or epoch-ms number -> epoch ms; None if unparseable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(math.floor(value)) if math.isfinite(value) else None
    if not isinstance(value, str) or not value:
        return None
    s = value.strip()
    if s.lstrip("-").isdigit():
        return int(s)
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(milliseconds=1)


_ID_RNG = random.Random(secrets.randbits(64))  # ids need uniqueness, not secrecy; urandom per char is slow


def new_id() -> str:
    """A 20-char alphanumeric id like the API's (``seD4PfOuKoVMLkEZqohJ``)."""
    return "".join(_ID_RNG.choices(_ALNUM, k=20))


def _secret_token() -> str:
    """An unguessable token value (32 hex, the form of the spec's ``access_token`` example)."""
    return secrets.token_hex(16)


# --------------------------------------------------------------------------------------------------
# tokens and rate limits


@dataclass(frozen=True)
class Token:
    """One bearer token. PITs have ``expires_at=None``; OAuth access tokens get a wall-clock expiry.

    ``subject`` is the rate-limit client identity (a Marketplace app's client id for OAuth tokens);
    it defaults to the token itself, so every PIT is its own client.
    """

    token: str
    location_id: str
    scopes: frozenset[str] = ALL_SCOPES
    expires_at: float | None = None
    subject: str = ""

    @property
    def client(self) -> str:
        return self.subject or self.token

    def expired(self, at: float | None = None) -> bool:
        return self.expires_at is not None and (at if at is not None else time.time()) >= self.expires_at


@dataclass
class OAuthClient:
    """A Marketplace app: its credentials and the scopes it asks for. Installs (grants) are per location."""

    client_id: str
    client_secret: str
    scopes: frozenset[str]
    company_id: str
    user_id: str


@dataclass
class _Grant:
    """What a refresh token or authorization code stands for: one app installed in one location."""

    client_id: str
    location_id: str
    scopes: frozenset[str]
    redirect_uri: str | None = None


@dataclass
class _Bucket:
    window_start: float
    window_count: int = 0
    day_start: float = 0.0
    day_count: int = 0


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    headers: dict[str, str]
    retry_after: int | None = None


# --------------------------------------------------------------------------------------------------
# contact normalisation

_NAME_KEYS = ("firstNameLowerCase", "lastNameLowerCase", "fullNameLowerCase", "emailLowerCase")
# Fields CreateContactDto / UpdateContactDto / UpsertContactDto accept (contacts.json).
_UPDATE_FIELDS = frozenset(
    {
        "firstName", "lastName", "name", "email", "phone", "address1", "city", "state", "postalCode",
        "website", "timezone", "dnd", "dndSettings", "inboundDndSettings", "tags", "customFields",
        "source", "dateOfBirth", "country", "assignedTo",
    }
)  # fmt: skip
CREATE_FIELDS = _UPDATE_FIELDS | {"locationId", "gender", "companyName"}
UPDATE_FIELDS = _UPDATE_FIELDS
UPSERT_FIELDS = CREATE_FIELDS | {"createNewIfDuplicateAllowed"}
_STRING_FIELDS = frozenset(
    {
        "firstName", "lastName", "name", "email", "phone", "address1", "city", "state", "postalCode",
        "website", "timezone", "source", "country", "companyName", "assignedTo", "gender", "locationId",
    }
)  # fmt: skip
_NON_NULLABLE = frozenset({"locationId", "gender", "postalCode", "country"})
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DOB_FORMATS = (
    "%Y/%m/%d", "%m/%d/%Y", "%Y-%m-%d", "%m-%d-%Y", "%Y.%m.%d", "%m.%d.%Y", "%Y_%m_%d", "%m_%d_%Y",
)  # fmt: skip
# Key order of a stored contact, so responses read like the API's examples.
_KEY_ORDER = (
    "id", "locationId", "name", "contactName", "firstName", "lastName", "firstNameLowerCase",
    "lastNameLowerCase", "fullNameLowerCase", "email", "emailLowerCase", "phone", "companyName",
    "address1", "city", "state", "postalCode", "country", "timezone", "website", "type", "source",
    "assignedTo", "businessId", "tags", "customFields", "dnd", "dndSettings", "inboundDndSettings",
    "dateOfBirth", "gender", "dateAdded", "dateUpdated",
)  # fmt: skip


def _ordered(doc: dict) -> dict:
    out = {k: doc[k] for k in _KEY_ORDER if k in doc}
    for k, v in doc.items():
        if k not in out:
            out[k] = v
    return out


def derive(doc: dict) -> dict:
    """Set the derived fields (lower-case copies, ``name``, ``contactName``) from the source fields."""
    first, last = doc.get("firstName") or "", doc.get("lastName") or ""
    for key in _NAME_KEYS:
        doc.pop(key, None)
    if first:
        doc["firstNameLowerCase"] = first.lower()
    if last:
        doc["lastNameLowerCase"] = last.lower()
    full = f"{first} {last}".strip() or (doc.get("name") or "")
    if full:
        doc["name"] = full
        doc["fullNameLowerCase"] = full.lower()
    else:
        doc.pop("name", None)
    # contactName falls back to email/phone like the live list endpoint does for nameless contacts.
    contact_name = full or doc.get("email") or doc.get("phone")
    if contact_name:
        doc["contactName"] = contact_name
    else:
        doc.pop("contactName", None)
    if doc.get("email"):
        doc["emailLowerCase"] = str(doc["email"]).lower()
    return doc


def normalize_phone(raw: str, country: str | None) -> str:
    """E.164 when the number parses (input like ``+1 888-888-8888``); otherwise kept as sent."""
    try:
        parsed = phonenumbers.parse(raw, (country or "US").upper())
    except phonenumbers.NumberParseException:
        return raw.strip()
    if phonenumbers.is_possible_number(parsed):
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return raw.strip()


def _phone_key(phone: str | None) -> str | None:
    if not phone:
        return None
    digits = re.sub(r"\D", "", phone)
    return digits or None


def _parse_dob(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    s = value.strip()[:10] if "T" in value else value.strip()
    for fmt in _DOB_FORMATS:
        try:
            return datetime.strptime(s, fmt).strftime("%Y-%m-%d")
        except ValueError:
            continue
    return None


# --------------------------------------------------------------------------------------------------
# search index


class _Rec:
    """An indexed contact: the document as search sees it plus its date keys in epoch ms."""

    __slots__ = ("added", "doc", "id", "updated")

    def __init__(self, doc: dict) -> None:
        self.doc = doc
        self.id: str = doc["id"]
        self.added: int = parse_ms(doc.get("dateAdded")) or 0
        self.updated: int = parse_ms(doc.get("dateUpdated")) or self.added


class _Index:
    """Contacts as search sees them, with ``(ms, id)`` lists kept sorted for the date hot paths."""

    def __init__(self, home_location: str) -> None:
        self.home = home_location
        self.recs: dict[str, _Rec] = {}
        self.by_added: list[tuple[int, str]] = []
        self.by_updated: list[tuple[int, str]] = []
        # Contacts of other locations (admin loads, tokens for other locations). While this is 0,
        # searches of the home location need no per-contact location check: the O(log n) path.
        self.foreign = 0

    def clear(self) -> None:
        self.recs.clear()
        self.by_added.clear()
        self.by_updated.clear()
        self.foreign = 0

    def only_home(self, location_id: str) -> bool:
        return location_id == self.home and self.foreign == 0

    def put(self, doc: dict) -> None:
        self.remove(doc["id"])
        rec = _Rec(doc)
        self.recs[rec.id] = rec
        self.foreign += doc.get("locationId") != self.home
        self._insert(self.by_added, (rec.added, rec.id))
        self._insert(self.by_updated, (rec.updated, rec.id))

    def remove(self, cid: str) -> None:
        rec = self.recs.pop(cid, None)
        if rec is None:
            return
        self.foreign -= rec.doc.get("locationId") != self.home
        for lst, key in ((self.by_added, (rec.added, cid)), (self.by_updated, (rec.updated, cid))):
            i = bisect_left(lst, key)
            if i < len(lst) and lst[i] == key:
                del lst[i]

    def bulk_put(self, docs: Iterable[dict]) -> None:
        """Insert many documents, then re-sort once (bisect inserts would be quadratic)."""
        for doc in docs:
            self.recs[doc["id"]] = _Rec(doc)
        self.by_added = sorted((r.added, r.id) for r in self.recs.values())
        self.by_updated = sorted((r.updated, r.id) for r in self.recs.values())
        self.foreign = sum(r.doc.get("locationId") != self.home for r in self.recs.values())

    @staticmethod
    def _insert(lst: list[tuple[int, str]], key: tuple[int, str]) -> None:
        lst.insert(bisect_left(lst, key), key)


# --------------------------------------------------------------------------------------------------
# search filters

_EQ_EXISTS = frozenset({"eq", "not_eq", "exists", "not_exists"})
_TEXT_OPS = frozenset({"eq", "not_eq", "contains", "not_contains", "exists", "not_exists"})
_DATE_OPS = frozenset({"range", "exists", "not_exists"})
_ALL_OPS = _TEXT_OPS | {"range"}

# search field -> (document key, allowed operators, kind); per the Contacts Search API doc (S6).
FILTER_FIELDS: dict[str, tuple[str, frozenset[str], str]] = {
    "id": ("id", frozenset({"eq", "not_eq"}), "str"),
    "contactName": ("contactName", _EQ_EXISTS, "str"),
    "country": ("country", _EQ_EXISTS, "str"),
    "assignedTo": ("assignedTo", _EQ_EXISTS, "str"),
    "followers": ("followers", _EQ_EXISTS, "list"),
    "dnd": ("dnd", _EQ_EXISTS, "bool"),
    "email": ("email", _EQ_EXISTS, "email"),
    "timezone": ("timezone", _EQ_EXISTS, "str"),
    "type": ("type", _EQ_EXISTS, "str"),
    "validEmail": ("validEmail", _EQ_EXISTS, "bool"),
    "website": ("website", _EQ_EXISTS, "str"),
    "isValidWhatsapp": ("isValidWhatsapp", _EQ_EXISTS, "bool"),
    "activeWorkflows": ("activeWorkflows", _EQ_EXISTS, "list"),
    "finishedWorkflows": ("finishedWorkflows", _EQ_EXISTS, "list"),
    "address": ("address1", _TEXT_OPS, "str"),
    "businessName": ("businessName", _TEXT_OPS, "str"),
    "city": ("city", _TEXT_OPS, "str"),
    "companyName": ("companyName", _TEXT_OPS, "str"),
    "firstNameLowerCase": ("firstNameLowerCase", _TEXT_OPS, "str"),
    "lastNameLowerCase": ("lastNameLowerCase", _TEXT_OPS, "str"),
    "phone": ("phone", _TEXT_OPS, "str"),
    "postalCode": ("postalCode", _TEXT_OPS, "str"),
    "source": ("source", _TEXT_OPS, "str"),
    "state": ("state", _TEXT_OPS, "str"),
    "tags": ("tags", _TEXT_OPS, "list"),
    "dateAdded": ("dateAdded", _DATE_OPS, "date"),
    "dateUpdated": ("dateUpdated", _DATE_OPS, "date"),
    "dateOfBirth": ("dateOfBirth", _DATE_OPS, "date"),
    "lastEmailClickedDate": ("lastEmailClickedDate", _DATE_OPS, "date"),
    "lastEmailOpenedDate": ("lastEmailOpenedDate", _DATE_OPS, "date"),
    "lastAppointment": ("lastAppointment", _DATE_OPS, "date"),
}

Pred = Callable[[_Rec], bool]


def _present(v: Any) -> bool:
    return v is not None and v != "" and v != []


def _doc_value(rec: _Rec, key: str) -> Any:
    if key == "dateAdded":
        return rec.added
    if key == "dateUpdated":
        return rec.updated
    if key.startswith("customFields."):
        cf_id = key.split(".", 1)[1]
        for item in rec.doc.get("customFields") or ():
            if item.get("id") == cf_id:
                return item.get("value")
        return None
    return rec.doc.get(key)


@dataclass
class _Range:
    lo: float = -math.inf  # inclusive
    hi: float = math.inf  # inclusive

    def contains(self, v: float) -> bool:
        return self.lo <= v <= self.hi


def _parse_range(value: Any, where: str) -> _Range:
    if not isinstance(value, dict) or not value:
        raise unprocessable(f"{where}.value must be an object with any of gte, gt, lte, lt")
    bad = sorted(set(value) - {"gte", "gt", "lte", "lt"})
    if bad:
        raise unprocessable(f"{where}.value.{bad[0]} is not a valid range operator (use gte, gt, lte, lt)")
    out = _Range()
    for op, raw in value.items():
        ms: float | None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            ms = float(raw)
        else:
            parsed = parse_ms(raw)
            ms = None if parsed is None else float(parsed)
        if ms is None:
            raise unprocessable(f"{where}.value.{op} must be an ISO-8601 date or epoch milliseconds")
        # Stored values are whole milliseconds, so strict bounds become inclusive integer bounds.
        if op == "gte":
            out.lo = max(out.lo, math.ceil(ms))
        elif op == "gt":
            out.lo = max(out.lo, math.floor(ms) + 1)
        elif op == "lte":
            out.hi = min(out.hi, math.floor(ms))
        else:
            out.hi = min(out.hi, math.ceil(ms) - 1)
    return out


def _compile_filter(item: Any, where: str) -> Pred:
    if not isinstance(item, dict):
        raise unprocessable(f"{where} must be an object")
    if "group" in item:
        group = item["group"]
        subs = item.get("filters")
        if group not in ("AND", "OR"):
            raise unprocessable(f"{where}.group must be one of the following values: AND, OR")
        if not isinstance(subs, list) or not subs:
            raise unprocessable(f"{where}.filters must be a non-empty array")
        preds = [_compile_filter(sub, f"{where}.filters.{i}") for i, sub in enumerate(subs)]
        if group == "AND":
            return lambda r: all(p(r) for p in preds)
        return lambda r: any(p(r) for p in preds)

    name, op = item.get("field"), item.get("operator")
    if not isinstance(name, str) or not name:
        raise unprocessable(f"{where}.field must be a string")
    if name.startswith("customFields.") and len(name) > len("customFields."):
        key, ops, kind = name, _ALL_OPS, "custom"
    elif name in FILTER_FIELDS:
        key, ops, kind = FILTER_FIELDS[name]
    else:
        raise unprocessable(f"{where}.field {name} is not a searchable contact field")
    if op not in ops:
        raise unprocessable(
            f"{where}.operator {op} is not supported for field {name} (allowed: {', '.join(sorted(ops))})"
        )

    if op == "exists":
        return lambda r: _present(_doc_value(r, key))
    if op == "not_exists":
        return lambda r: not _present(_doc_value(r, key))
    if "value" not in item:
        raise unprocessable(f"{where}.value should not be empty")
    value = item["value"]
    if op == "range":
        rng = _parse_range(value, where)
        if kind == "date":
            if key in ("dateAdded", "dateUpdated"):
                return lambda r: rng.contains(_doc_value(r, key))

            def date_in(r: _Rec) -> bool:
                ms = parse_ms(_doc_value(r, key))
                return ms is not None and rng.contains(ms)

            return date_in

        def num_in(r: _Rec) -> bool:
            v = _doc_value(r, key)
            try:
                return v is not None and not isinstance(v, bool) and rng.contains(float(v))
            except (TypeError, ValueError):
                ms = parse_ms(v)
                return ms is not None and rng.contains(ms)

        return num_in

    values = value if isinstance(value, list) else [value]
    if not values:
        raise unprocessable(f"{where}.value should not be empty")
    for v in values:
        if isinstance(v, str) and len(v) > MAX_FILTER_VALUE_LEN:
            raise unprocessable(f"{where}.value must be shorter than or equal to {MAX_FILTER_VALUE_LEN} characters")
    if kind == "bool":
        wanted = set()
        for v in values:
            if isinstance(v, bool):
                wanted.add(v)
            elif v in ("true", "false"):
                wanted.add(v == "true")
            else:
                raise unprocessable(f"{where}.value must be a boolean value")
        positive: Pred = lambda r: _doc_value(r, key) in wanted  # noqa: E731
    elif op in ("eq", "not_eq"):
        if kind == "email":  # emails compare case-insensitively (the index keeps emailLowerCase)
            wanted_l = {str(v).lower() for v in values}
            positive = lambda r: str(r.doc.get("email") or "").lower() in wanted_l  # noqa: E731
        else:
            wanted_s = {v if isinstance(v, str) else json.dumps(v) for v in values}

            def positive(r: _Rec) -> bool:
                v = _doc_value(r, key)
                items = v if isinstance(v, list) else [v]
                return any((x if isinstance(x, str) else json.dumps(x)) in wanted_s for x in items if x is not None)
    else:  # contains / not_contains: case-insensitive substring, like a wildcard on a lower-cased keyword
        needles = [str(v).lower() for v in values]

        def positive(r: _Rec) -> bool:
            v = _doc_value(r, key)
            items = v if isinstance(v, list) else [v]
            return any(isinstance(x, str) and n in x.lower() for x in items for n in needles)

    if op in ("not_eq", "not_contains"):
        return lambda r: not positive(r)
    return positive


def _range_bounds(filters: list, field_name: str) -> _Range:
    """Intersection of the top-level (AND-ed) ``range`` filters on ``field_name``."""
    out = _Range()
    for i, item in enumerate(filters):
        if isinstance(item, dict) and item.get("field") == field_name and item.get("operator") == "range":
            r = _parse_range(item.get("value"), f"filters.{i}")
            out.lo, out.hi = max(out.lo, r.lo), min(out.hi, r.hi)
    return out


# --------------------------------------------------------------------------------------------------
# sort keys


def _sort_value(rec: _Rec, field_name: str) -> Any:
    """The value a contact exposes for a sort field (also what goes into its ``searchAfter``)."""
    if field_name == "dateAdded":
        return rec.added
    if field_name == "dateUpdated":
        return rec.updated
    if field_name == "dnd":
        v = rec.doc.get("dnd")
        return None if v is None else int(bool(v))  # Elasticsearch reports booleans as 0/1 sort values
    if field_name == "email":
        v = rec.doc.get("email")
        return v.lower() if isinstance(v, str) else None
    v = rec.doc.get(field_name)
    return v if isinstance(v, str) else None


def _coerce_cursor(value: Any, field_name: str, i: int) -> Any:
    if value is None and field_name not in ("dateAdded", "dateUpdated"):
        return None
    if field_name in ("dateAdded", "dateUpdated"):
        ms = parse_ms(value)
        if ms is None:
            raise unprocessable(f"searchAfter.{i} must be epoch milliseconds for sort field {field_name}")
        return ms
    if field_name == "dnd":
        if isinstance(value, bool | int):
            return int(bool(value))
        raise unprocessable(f"searchAfter.{i} must be 0/1 or a boolean for sort field dnd")
    if not isinstance(value, str):
        raise unprocessable(f"searchAfter.{i} must be a string for sort field {field_name}")
    return value.lower() if field_name == "email" else value


def _missing_last_key(value: Any) -> tuple:
    # Missing values sort last in both directions (Elasticsearch's default "missing": "_last").
    return (1, 0) if value is None else (0, value)


def _missing_last_key_desc(value: Any) -> tuple:
    # Used with reverse=True: present values (1, v) descend first, missing ones (0, 0) end up last.
    return (0, 0) if value is None else (1, value)


def _position_cmp(rec: _Rec, sort: list[tuple[str, str]], cursor: list[Any], cursor_id: str) -> int:
    """-1/0/1: is ``rec`` before, at, or after the cursor position in the result order?"""
    for (f, d), c in zip(sort, cursor, strict=True):
        v = _sort_value(rec, f)
        if v == c:
            continue
        if v is None:
            return 1
        if c is None:
            return -1
        before = v < c if d == "asc" else v > c
        return -1 if before else 1
    if rec.id == cursor_id:
        return 0
    return -1 if rec.id < cursor_id else 1


# --------------------------------------------------------------------------------------------------
# the state


@dataclass
class _Pending:
    written_at: float  # time.monotonic() of the write
    cid: str
    doc: dict | None  # None = deleted


@dataclass
class SearchParams:
    """A validated ``POST /contacts/search`` body."""

    location_id: str
    page_limit: int
    page: int | None = None
    search_after: list | None = None
    filters: list = field(default_factory=list)
    sort: list[tuple[str, str]] = field(default_factory=list)
    query: str | None = None
    compiled: list[tuple[Any, Pred]] = field(default_factory=list)  # (top-level filter item, predicate)


class GhlState:
    """Everything the simulator knows; see the module docstring."""

    def __init__(
        self,
        location_id: str,
        tokens: dict[str, dict] | None = None,
        *,
        rate_limit: bool = True,
        burst_max: int = 100,
        burst_window_ms: int = 10_000,
        daily_limit: int = 200_000,
        send_retry_after: bool = True,
        index_lag_s: float = 0.0,
        latency_s: float = 0.0,
        allow_duplicates: bool = False,
        touch_contact_on_child_write: bool = False,
        location_timezone: str = "America/New_York",
        access_token_ttl_s: float = 86_399.0,
        refresh_reuse_window_s: float = 30.0,
    ) -> None:
        self.location_id = location_id
        self.rate_limit = rate_limit
        self.burst_max = burst_max
        self.burst_window_ms = burst_window_ms
        self.daily_limit = daily_limit
        self.send_retry_after = send_retry_after
        self.index_lag_s = index_lag_s
        self.latency_s = latency_s
        self.allow_duplicates = allow_duplicates
        # Unknown on the live API (ghl-api.md is silent): does a task/note/appointment write move
        # the contact's dateUpdated? False = no (default); True = the child write stamps it to now.
        self.touch_contact_on_child_write = touch_contact_on_child_write
        # The location's time zone: calendar event times are rendered with its UTC offset.
        self.location_timezone = _check_timezone(location_timezone)
        # OAuth (§1.2): access-token lifetime, and how long identical refreshes get the same pair.
        self.access_token_ttl_s = access_token_ttl_s
        self.refresh_reuse_window_s = refresh_reuse_window_s

        self.lock = threading.RLock()
        self.request_log = RequestLog()
        self.faults = FaultPlan()
        self.tokens: dict[str, Token] = {}
        self.oauth_clients: dict[str, OAuthClient] = {}
        self._refresh_tokens: dict[str, _Grant] = {}  # live refresh tokens
        self._auth_codes: dict[str, _Grant] = {}  # unused authorization codes
        # (client_id, client_secret, old refresh token) -> (monotonic time of the refresh, its answer)
        self._recent_refreshes: dict[tuple[str, str, str], tuple[float, dict]] = {}
        for tok, info in (tokens or {}).items():
            self.add_token(tok, **info)
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._docs: dict[str, dict] = {}  # fresh contacts (what GET /contacts/{id} returns)
        self._by_email: dict[str, dict[str, None]] = {}  # lower email -> ids (insertion-ordered)
        self._by_phone: dict[str, dict[str, None]] = {}  # phone digits -> ids
        self._custom_keys: dict[str, str] = {}  # custom field key -> id, for writes by key
        self._index = _Index(location_id)
        self._pending: deque[_Pending] = deque()
        # Children of contacts and calendars. Docs are kept in API read shape, except that event
        # times (startTime, endTime, dateAdded, dateUpdated) are epoch-ms ints, rendered per route.
        self._tasks: dict[str, dict] = {}
        self._task_loc: dict[str, str] = {}  # task id -> location (its contact's, when loaded)
        self._tasks_by_contact: dict[str, dict[str, None]] = {}
        self._task_order: list[tuple[str, bool, int, str]] | None = None  # cached search order
        self._notes: dict[str, dict] = {}
        self._notes_by_contact: dict[str, dict[str, None]] = {}
        self._calendars: dict[str, dict] = {}
        self._events: dict[str, dict] = {}
        self._events_by_contact: dict[str, dict[str, None]] = {}

    # ---- construction / persistence -------------------------------------------------------------

    @classmethod
    def from_seed_file(cls, path: str | Path, **kw: Any) -> GhlState:
        """Load ``{"locationId", "contacts", "calendars", "events", "tasks", "notes"}`` (or a bare contact list)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        contacts = data if isinstance(data, list) else data.get("contacts", [])
        location_id = kw.pop("location_id", None)
        if location_id is None:
            location_id = (data.get("locationId") if isinstance(data, dict) else None) or (
                contacts[0].get("locationId") if contacts else None
            )
        if not location_id:
            raise ValueError("seed file has no locationId; pass location_id=")
        state = cls(location_id, **kw)
        state.load_contacts(contacts)
        if isinstance(data, dict):
            state.load_calendars(data.get("calendars") or [])
            state.load_events(data.get("events") or [])
            state.load_tasks(data.get("tasks") or [])
            state.load_notes(data.get("notes") or [])
        return state

    def dump_seed(self, path: str | Path) -> None:
        with self.lock:
            data = {
                "locationId": self.location_id,
                "contacts": self.all_contacts(),
                "calendars": self.all_calendars(),
                "events": self.all_events(),
                "tasks": self.all_tasks(),
                "notes": self.all_notes(),
            }
        Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")

    # ---- config / tokens ------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in CONFIG_KEYS}

    def configure(self, **changes: Any) -> dict[str, Any]:
        unknown = sorted(set(changes) - set(CONFIG_KEYS))
        if unknown:
            raise ApiError(400, f"unknown config key(s): {', '.join(unknown)}")
        if "location_timezone" in changes:
            _check_timezone(changes["location_timezone"])
        with self.lock:
            for k, v in changes.items():
                setattr(self, k, _CONFIG_TYPES[k](v))
            return self.config()

    def add_token(
        self,
        token: str,
        location_id: str | None = None,
        scopes: Iterable[str] | str | None = None,
        expires_at: float | None = None,
        subject: str = "",
    ) -> Token:
        """Register a bearer token (a PIT when ``expires_at`` is None, else an expiring OAuth token)."""
        if isinstance(scopes, str):
            scopes = scopes.split()
        tok = Token(
            token=token,
            location_id=location_id or self.location_id,
            scopes=frozenset(scopes) if scopes is not None else ALL_SCOPES,
            expires_at=expires_at,
            subject=subject,
        )
        with self.lock:
            self.tokens[token] = tok
        return tok

    def resolve_token(self, token: str | None) -> Token | None:
        if not token:
            return None
        with self.lock:
            tok = self.tokens.get(token)
        if tok is None or tok.expired():
            return None
        return tok

    # ---- OAuth 2.0 (§1.2, §9.3) -----------------------------------------------------------------

    def add_oauth_client(
        self,
        client_id: str,
        client_secret: str,
        *,
        location_id: str | None = None,
        scopes: Iterable[str] | str | None = None,
        company_id: str | None = None,
        user_id: str | None = None,
    ) -> str:
        """Register (or update) a Marketplace app, install it in ``location_id`` (default: the state's)
        and return that install's first refresh token, as the authorization-code exchange would.

        Calling it again for the same client installs it in another (or the same) location; the new
        secret and scopes replace the old ones, and earlier refresh tokens stay valid.
        """
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret are required")
        if isinstance(scopes, str):
            scopes = scopes.split()
        with self.lock:
            old = self.oauth_clients.get(client_id)
            client = OAuthClient(
                client_id=client_id,
                client_secret=client_secret,
                scopes=frozenset(scopes) if scopes is not None else ALL_SCOPES,
                company_id=company_id or (old.company_id if old else new_id()),
                user_id=user_id or (old.user_id if old else new_id()),
            )
            self.oauth_clients[client_id] = client
            refresh = _secret_token()
            self._refresh_tokens[refresh] = _Grant(client_id, location_id or self.location_id, client.scopes)
            return refresh

    def issue_auth_code(
        self,
        client_id: str,
        *,
        location_id: str | None = None,
        scopes: Iterable[str] | str | None = None,
        redirect_uri: str | None = None,
    ) -> str:
        """A single-use ``code`` for ``grant_type=authorization_code`` (what the callback would receive).

        ``scopes`` default to the client's; a ``redirect_uri`` given here must be sent again with the code.
        """
        if isinstance(scopes, str):
            scopes = scopes.split()
        with self.lock:
            client = self.oauth_clients.get(client_id)
            if client is None:
                raise KeyError(f"unknown OAuth client {client_id}")
            code = _secret_token()
            granted = frozenset(scopes) if scopes is not None else client.scopes
            self._auth_codes[code] = _Grant(client_id, location_id or self.location_id, granted, redirect_uri)
            return code

    def expire_access_tokens(self) -> int:
        """Expire every token that has an expiry (OAuth access tokens) now; PITs are untouched."""
        now = time.time()
        with self.lock:
            expiring = [t for t in self.tokens.values() if t.expires_at is not None and t.expires_at > now]
            for tok in expiring:
                self.tokens[tok.token] = replace(tok, expires_at=now)
            return len(expiring)

    def oauth_token(self, form: dict[str, str]) -> dict[str, Any]:
        """``POST /oauth/token``: the token response, or an ``ApiError`` (422 / 401 / 400)."""
        errors = [f"{name} should not be empty" for name in ("client_id", "client_secret") if not form.get(name)]
        grant_type = form.get("grant_type") or ""
        if grant_type not in ("authorization_code", "refresh_token", "client_credentials"):
            errors.append(
                "grant_type must be one of the following values: authorization_code, refresh_token, client_credentials"
            )
        if form.get("user_type") not in (None, "", "Company", "Location"):
            errors.append("user_type must be one of the following values: Company, Location")
        if grant_type == "refresh_token" and not form.get("refresh_token"):
            errors.append("refresh_token should not be empty")
        if grant_type == "authorization_code" and not form.get("code"):
            errors.append("code should not be empty")
        if errors:
            raise unprocessable(*errors)
        client_id, secret = form["client_id"], form["client_secret"]
        with self.lock:
            client = self.oauth_clients.get(client_id)
            if client is None or not secrets.compare_digest(client.client_secret, secret):
                raise oauth_error(401, "invalid_client", "Invalid client credentials")
            if grant_type == "client_credentials":
                raise oauth_error(400, "unsupported_grant_type", "grant_type client_credentials is not supported")
            if form.get("user_type") == "Company":
                raise oauth_error(400, "invalid_request", "Company tokens are not simulated; use user_type=Location")
            if grant_type == "authorization_code":
                grant = self._auth_codes.get(form["code"])
                if grant is None or grant.client_id != client_id:
                    raise oauth_error(400, "invalid_grant", "Invalid authorization code")
                if grant.redirect_uri is not None and form.get("redirect_uri") != grant.redirect_uri:
                    raise oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization request")
                del self._auth_codes[form["code"]]
                return self._issue(client, grant)
            return self._refresh(client, secret, form["refresh_token"])

    def _refresh(self, client: OAuthClient, secret: str, refresh: str) -> dict[str, Any]:
        now = time.monotonic()
        window = self.refresh_reuse_window_s
        for key, (at, _) in list(self._recent_refreshes.items()):
            if now - at >= window:
                del self._recent_refreshes[key]
        key = (client.client_id, secret, refresh)
        recent = self._recent_refreshes.get(key)
        if recent is not None:  # an identical refresh within the window: the same pair again (§1.2)
            body = dict(recent[1])
            tok = self.tokens.get(body["access_token"])
            if tok is not None and tok.expires_at is not None:
                body["expires_in"] = max(0, math.ceil(tok.expires_at - time.time()))
            return body
        grant = self._refresh_tokens.get(refresh)
        if grant is None or grant.client_id != client.client_id:
            raise oauth_error(400, "invalid_grant", "Invalid refresh token")
        del self._refresh_tokens[refresh]  # rotation: the old refresh token is spent
        body = self._issue(client, grant)
        self._recent_refreshes[key] = (now, body)
        return dict(body)

    def _issue(self, client: OAuthClient, grant: _Grant) -> dict[str, Any]:
        """A new access token (expiring) and refresh token for ``grant``."""
        ttl = float(self.access_token_ttl_s)
        access = _secret_token()
        self.add_token(
            access,
            location_id=grant.location_id,
            scopes=grant.scopes,
            expires_at=time.time() + ttl,
            subject=client.client_id,
        )
        refresh = _secret_token()
        self._refresh_tokens[refresh] = _Grant(client.client_id, grant.location_id, grant.scopes)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": math.ceil(ttl),
            "refresh_token": refresh,
            "scope": " ".join(sorted(grant.scopes)),
            "userType": "Location",
            "locationId": grant.location_id,
            "companyId": client.company_id,
            "userId": client.user_id,
        }

    # ---- rate limits ----------------------------------------------------------------------------

    def _headers(self, bucket: _Bucket | None) -> dict[str, str]:
        used_window = bucket.window_count if bucket and self.rate_limit else 0
        used_day = bucket.day_count if bucket and self.rate_limit else 0
        return {
            "X-RateLimit-Limit-Daily": str(self.daily_limit),
            "X-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - used_day)),
            "X-RateLimit-Interval-Milliseconds": str(self.burst_window_ms),
            "X-RateLimit-Max": str(self.burst_max),
            "X-RateLimit-Remaining": str(max(0, self.burst_max - used_window)),
        }

    def _bucket(self, token: Token, now: float) -> _Bucket:
        key = (token.client, token.location_id)
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(window_start=now, day_start=now)
        # Fixed windows that start at the first request after the previous one ended.
        if now - b.window_start >= self.burst_window_ms / 1000:
            b.window_start, b.window_count = now, 0
        if now - b.day_start >= DAY_S:
            b.day_start, b.day_count = now, 0
        return b

    def hit(self, token: Token | None) -> RateDecision:
        """Count one request for the token's (client, location) and decide whether it may proceed."""
        with self.lock:
            if token is None:
                return RateDecision(True, self._headers(None))
            if not self.rate_limit:
                return RateDecision(True, self._headers(None))
            now = time.monotonic()
            b = self._bucket(token, now)
            if b.day_count >= self.daily_limit:
                wait = b.day_start + DAY_S - now
                return RateDecision(False, self._headers(b), max(1, math.ceil(wait)))
            if b.window_count >= self.burst_max:
                wait = b.window_start + self.burst_window_ms / 1000 - now
                return RateDecision(False, self._headers(b), max(1, math.ceil(wait)))
            b.window_count += 1
            b.day_count += 1
            return RateDecision(True, self._headers(b))

    # ---- storage primitives -----------------------------------------------------------------------

    @staticmethod
    def _dup_keys(doc: dict) -> list[tuple[dict[str, dict[str, None]] | None, str]]:
        """(index selector, key) pairs; keys are per location, since duplicates are per location."""
        loc = doc.get("locationId") or ""
        out: list = []
        email = doc.get("email")
        if isinstance(email, str) and email:
            out.append(("email", f"{loc}\x00{email.lower()}"))
        phone = doc.get("phone")
        pk = _phone_key(phone) if isinstance(phone, str) else None
        if pk:
            out.append(("phone", f"{loc}\x00{pk}"))
        return out

    def _unindex_dups(self, doc: dict) -> None:
        for kind, key in self._dup_keys(doc):
            table = self._by_email if kind == "email" else self._by_phone
            ids = table.get(key)
            if ids is not None:
                ids.pop(doc["id"], None)
                if not ids:
                    del table[key]

    def _index_dups(self, doc: dict) -> None:
        for kind, key in self._dup_keys(doc):
            table = self._by_email if kind == "email" else self._by_phone
            table.setdefault(key, {})[doc["id"]] = None

    def _store(self, doc: dict) -> None:
        """Write a contact to the fresh store; search sees it after ``index_lag_s``."""
        old = self._docs.get(doc["id"])
        if old is not None:
            self._unindex_dups(old)
        self._docs[doc["id"]] = doc
        self._index_dups(doc)
        self._to_index(doc["id"], doc)

    def _delete(self, cid: str) -> None:
        old = self._docs.pop(cid, None)
        if old is not None:
            self._unindex_dups(old)
            self._to_index(cid, None)

    def _to_index(self, cid: str, doc: dict | None) -> None:
        if self.index_lag_s > 0:
            self._pending.append(_Pending(time.monotonic(), cid, doc))
        else:
            self._apply(cid, doc)

    def _apply(self, cid: str, doc: dict | None) -> None:
        if doc is None:
            self._index.remove(cid)
        else:
            self._index.put(doc)

    def _drain(self) -> None:
        """Make writes older than ``index_lag_s`` visible to search (lag read at drain time)."""
        if not self._pending:
            return
        cutoff = time.monotonic() - max(0.0, self.index_lag_s)
        while self._pending and self._pending[0].written_at <= cutoff:
            p = self._pending.popleft()
            self._apply(p.cid, p.doc)

    # ---- bulk / admin ---------------------------------------------------------------------------

    def load_contacts(self, contacts: Iterable[dict]) -> int:
        """Insert or replace contacts in API read shape, keeping their ids and dates.

        Loads bypass the index lag: they model data that existed before the run. Missing ids are
        generated, a missing ``locationId`` becomes the state's location, missing dates become now.
        """
        stamp = iso_ms(now_ms())
        docs = []
        for raw in contacts:
            if not isinstance(raw, dict):
                raise ApiError(400, "each contact must be a JSON object")
            doc = dict(raw)
            if not doc.get("id"):
                doc["id"] = new_id()
            doc.setdefault("locationId", self.location_id)
            doc.setdefault("dateAdded", doc.get("dateUpdated") or stamp)
            doc.setdefault("dateUpdated", doc["dateAdded"])
            doc.setdefault("tags", [])
            doc.setdefault("customFields", [])
            docs.append(derive(doc))  # key order kept as given: loads model existing data
        with self.lock:
            loaded = {d["id"] for d in docs}
            if self._pending:
                self._pending = deque(p for p in self._pending if p.cid not in loaded)
            for doc in docs:
                old = self._docs.get(doc["id"])
                if old is not None:
                    self._unindex_dups(old)
                self._docs[doc["id"]] = doc
                self._index_dups(doc)
            if len(docs) > 64:
                self._index.bulk_put(docs)
            else:
                for doc in docs:
                    self._index.put(doc)
        return len(docs)

    def reset(self) -> None:
        """Drop all contacts, their tasks/notes, calendars, events, pending index writes, rate-limit
        counters and the fault plan (tokens, OAuth clients and their grants, and config stay)."""
        with self.lock:
            for table in (
                self._tasks, self._task_loc, self._tasks_by_contact, self._notes, self._notes_by_contact,
                self._calendars, self._events, self._events_by_contact,
            ):  # fmt: skip
                table.clear()
            self._task_order = None
            self._docs.clear()
            self._by_email.clear()
            self._by_phone.clear()
            self._index.clear()
            self._pending.clear()
            self._buckets.clear()
            self.faults.clear()

    def reset_rate_limits(self) -> None:
        with self.lock:
            self._buckets.clear()

    def raw_contact(self, cid: str) -> dict | None:
        with self.lock:
            doc = self._docs.get(cid)
            return dict(doc) if doc is not None else None

    def all_contacts(self, offset: int = 0, limit: int | None = None) -> list[dict]:
        with self.lock:
            docs = sorted(self._docs.values(), key=lambda d: (parse_ms(d.get("dateAdded")) or 0, d["id"]))
        end = None if limit is None else offset + limit
        return [dict(d) for d in docs[offset:end]]

    def count(self) -> int:
        with self.lock:
            return len(self._docs)

    # ---- single-contact reads / writes ----------------------------------------------------------

    def get_contact(self, cid: str, location_id: str | None = None) -> dict:
        """Fresh read; ``location_id`` (the caller's) must own the contact."""
        with self.lock:
            doc = self._docs.get(cid)
            if doc is None:
                raise not_found(cid)
            self._check_owner(doc, location_id)
            return dict(doc)

    @staticmethod
    def _check_owner(doc: dict, location_id: str | None) -> None:
        if location_id is not None and doc.get("locationId") != location_id:
            raise ApiError(403, "The token does not have access to this location.")

    def _validate_write(self, body: dict, allowed: frozenset[str]) -> None:
        errors = [f"property {k} should not exist" for k in body if k not in allowed]
        if "locationId" in allowed and not body.get("locationId"):
            errors.append("locationId should not be empty")
        for k, v in body.items():
            if k not in allowed:
                continue
            if k in _STRING_FIELDS:
                if v is None and k not in _NON_NULLABLE:
                    continue
                if not isinstance(v, str):
                    errors.append(f"{k} must be a string")
            elif k in ("dnd", "createNewIfDuplicateAllowed"):
                if not isinstance(v, bool):
                    errors.append(f"{k} must be a boolean value")
            elif k == "tags":
                if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
                    errors.append("each value in tags must be a string")
            elif k == "customFields":
                errors.extend(self._custom_field_errors(v))
            elif k in ("dndSettings", "inboundDndSettings"):
                if not isinstance(v, dict):
                    errors.append(f"{k} must be an object")
            elif k == "dateOfBirth" and v is not None and _parse_dob(v) is None:
                errors.append("dateOfBirth must be a valid date (YYYY-MM-DD, MM/DD/YYYY, ...)")
        email = body.get("email")
        if isinstance(email, str) and email and not _EMAIL_RE.match(email):
            errors.append("email must be an email")
        if errors:
            raise unprocessable(*errors)

    @staticmethod
    def _custom_field_errors(value: Any) -> list[str]:
        if not isinstance(value, list):
            return ["customFields must be an array"]
        errors = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                errors.append(f"customFields.{i} must be an object")
                continue
            for k in item:
                if k not in ("id", "key", "field_value", "fieldValue"):
                    errors.append(f"customFields.{i}.property {k} should not exist")
            if not item.get("id") and not item.get("key"):
                errors.append(f"customFields.{i} must have an id or a key")
        return errors

    def _custom_field_id(self, key: str) -> str:
        if key not in self._custom_keys:
            self._custom_keys[key] = new_id()
        return self._custom_keys[key]

    def _apply_fields(self, doc: dict, body: dict) -> None:
        """Apply a validated write body to ``doc`` (write shapes -> read shapes)."""
        names_given = "firstName" in body or "lastName" in body
        if names_given:
            doc.pop("name", None)  # recomputed from the parts by derive()
        for k, v in body.items():
            if k in ("createNewIfDuplicateAllowed", "locationId"):
                continue
            if k == "tags":
                doc["tags"] = list(dict.fromkeys(t.strip() for t in v if t.strip()))  # replaces
            elif k == "customFields":
                current = {cf["id"]: cf for cf in doc.get("customFields") or []}
                for item in v:
                    cf_id = item.get("id") or self._custom_field_id(item["key"])
                    val = item.get("field_value", item.get("fieldValue"))
                    if val is None or val == "" or val == []:
                        current.pop(cf_id, None)  # an empty value clears the field
                    else:
                        current[cf_id] = {"id": cf_id, "value": val}
                doc["customFields"] = list(current.values())
            elif k == "dateOfBirth":
                if v is None:
                    doc.pop(k, None)
                else:
                    doc[k] = _parse_dob(v)
            elif k == "phone":
                if v is None or v == "":
                    doc.pop(k, None)
                else:
                    doc[k] = normalize_phone(v, body.get("country") or doc.get("country"))
            elif k == "name":
                if v is None:
                    doc.pop("name", None)
                elif not names_given:
                    # Only a full name given: split it the way the UI does (first word / rest).
                    first, _, last = v.strip().partition(" ")
                    doc["firstName"], doc["lastName"] = first, last
                    if not last:
                        doc.pop("lastName")
                    doc["name"] = v.strip()
            elif v is None:
                doc.pop(k, None)
            else:
                doc[k] = v
        derive(doc)

    def find_duplicate(
        self, location_id: str, email: str | None, phone: str | None, exclude: str | None = None
    ) -> tuple[dict, str] | None:
        """The oldest-inserted contact of the location matching by email (case-insensitive), then phone."""
        with self.lock:
            candidates = (
                ("email", self._by_email.get(f"{location_id}\x00{email.lower()}") if email else None),
                ("phone", self._by_phone.get(f"{location_id}\x00{_phone_key(phone)}") if phone else None),
            )
            for matching, ids in candidates:
                for cid in ids or ():
                    if cid != exclude:
                        return self._docs[cid], matching
            return None

    def _duplicate_error(self, dup: tuple[dict, str]) -> ApiError:
        doc, matching = dup
        return ApiError(
            400,
            "This location does not allow duplicated contacts.",
            meta={
                "contactId": doc["id"],
                "contactName": doc.get("contactName") or doc.get("name") or "",
                "matchingField": matching,
            },
        )

    def _phone_of(self, body: dict, fallback_country: str | None = None) -> str | None:
        phone = body.get("phone")
        if not isinstance(phone, str) or not phone:
            return None
        return normalize_phone(phone, body.get("country") or fallback_country)

    def create_contact(self, body: dict) -> dict:
        """``POST /contacts/``: validated body -> stored contact (raises 400 on duplicates)."""
        self._validate_write(body, CREATE_FIELDS)
        with self.lock:
            if not self.allow_duplicates:
                dup = self.find_duplicate(body["locationId"], body.get("email"), self._phone_of(body))
                if dup:
                    raise self._duplicate_error(dup)
            return self._insert_new(body)

    def _insert_new(self, body: dict) -> dict:
        cid = new_id()
        while cid in self._docs:
            cid = new_id()
        stamp = iso_ms(now_ms())
        doc: dict[str, Any] = {
            "id": cid,
            "locationId": body["locationId"],
            "type": "lead",
            "tags": [],
            "customFields": [],
            "dnd": False,
        }
        self._apply_fields(doc, body)
        doc["dateAdded"] = doc["dateUpdated"] = stamp
        doc = _ordered(doc)
        self._store(doc)
        return dict(doc)

    def update_contact(self, cid: str, body: dict, location_id: str | None = None) -> dict:
        """``PUT /contacts/{id}``: ``tags`` replaces, customFields merge by id, ``null`` clears."""
        self._validate_write(body, UPDATE_FIELDS)
        with self.lock:
            old = self._docs.get(cid)
            if old is None:
                raise not_found(cid)
            self._check_owner(old, location_id)
            if not self.allow_duplicates:
                dup = self.find_duplicate(
                    old["locationId"], body.get("email"), self._phone_of(body, old.get("country")), exclude=cid
                )
                if dup:
                    raise self._duplicate_error(dup)
            return self._write_update(old, body)

    def _write_update(self, old: dict, body: dict) -> dict:
        doc = dict(old)  # copy-on-write: the index may still hold ``old``
        doc["tags"] = list(old.get("tags") or [])
        doc["customFields"] = [dict(cf) for cf in old.get("customFields") or []]
        self._apply_fields(doc, body)
        doc["dateUpdated"] = self._next_stamp(old)
        doc = _ordered(doc)
        self._store(doc)
        return dict(doc)

    @staticmethod
    def _next_stamp(old: dict) -> str:
        # dateUpdated never goes backwards, even for seeded contacts dated in the future.
        ms = max(now_ms(), parse_ms(old.get("dateUpdated")) or 0)
        return iso_ms(ms)

    def upsert_contact(self, body: dict) -> tuple[bool, dict]:
        """``POST /contacts/upsert``: update the email match, else the phone match, else create."""
        self._validate_write(body, UPSERT_FIELDS)
        with self.lock:
            if not (self.allow_duplicates and body.get("createNewIfDuplicateAllowed")):
                dup = self.find_duplicate(body["locationId"], body.get("email"), self._phone_of(body))
                if dup:
                    return False, self._write_update(dup[0], body)
            return True, self._insert_new(body)

    def delete_contact(self, cid: str, location_id: str | None = None) -> None:
        with self.lock:
            doc = self._docs.get(cid)
            if doc is None:
                raise not_found(cid)
            self._check_owner(doc, location_id)
            self._delete(cid)
            # Choice: a contact's tasks and notes go with it; calendar events stay on their calendar.
            for tid in list(self._tasks_by_contact.get(cid, ())):
                self._drop_task(tid)
            for nid in list(self._notes_by_contact.get(cid, ())):
                self._drop_note(nid)

    def change_tags(self, cid: str, tags: list[str], *, add: bool, location_id: str | None = None) -> list[str]:
        """Tags endpoints: add (union, order kept) or remove; returns the contact's tags afterwards."""
        with self.lock:
            old = self._docs.get(cid)
            if old is None:
                raise not_found(cid)
            self._check_owner(old, location_id)
            current = list(old.get("tags") or [])
            clean = [t.strip() for t in tags if t.strip()]
            if add:
                new = list(dict.fromkeys(current + clean))
            else:
                drop = set(clean)
                new = [t for t in current if t not in drop]
            if new != current:
                self._write_update(old, {"tags": new})
            return new

    # ---- search -----------------------------------------------------------------------------------

    def parse_search(self, body: dict) -> SearchParams:
        """Validate a ``POST /contacts/search`` body (422 with all problems found)."""
        known = {"locationId", "page", "pageLimit", "searchAfter", "filters", "sort", "query"}
        errors = [f"property {k} should not exist" for k in body if k not in known]
        location_id = body.get("locationId")
        if not isinstance(location_id, str) or not location_id:
            errors += ["locationId should not be empty", "locationId must be a string"]
        page_limit = body.get("pageLimit")
        if page_limit is None:
            errors += [
                "pageLimit should not be empty",
                "pageLimit must be a number conforming to the specified constraints",
            ]
        elif not _is_int(page_limit):
            errors.append("pageLimit must be a number conforming to the specified constraints")
        elif page_limit < 1:
            errors.append("pageLimit must not be less than 1")
        elif page_limit > MAX_PAGE_LIMIT:
            errors.append(f"pageLimit must not be greater than {MAX_PAGE_LIMIT}")
        page = body.get("page")
        search_after = body.get("searchAfter")
        if page is not None:
            if not _is_int(page):
                errors.append("page must be a number conforming to the specified constraints")
            elif page < 1:
                errors.append("page must not be less than 1")
        if page is not None and search_after is not None:
            errors.append("page and searchAfter cannot be used together; omit page when using searchAfter")
        if search_after is not None and (not isinstance(search_after, list) or not search_after):
            errors.append("searchAfter must be a non-empty array")
        query = body.get("query")
        if query is not None and (not isinstance(query, str) or len(query) > MAX_FILTER_VALUE_LEN):
            errors.append(f"query must be a string shorter than or equal to {MAX_FILTER_VALUE_LEN} characters")
        filters = body.get("filters")
        if filters is not None and not isinstance(filters, list):
            errors.append("filters must be an array")
        sort_raw = body.get("sort")
        sort: list[tuple[str, str]] = []
        if sort_raw is not None:
            if not isinstance(sort_raw, list):
                errors.append("sort must be an array")
            elif len(sort_raw) > 2:
                errors.append("sort must contain no more than 2 elements")
            else:
                for i, s in enumerate(sort_raw):
                    f = s.get("field") if isinstance(s, dict) else None
                    d = s.get("direction", "asc") if isinstance(s, dict) else None
                    if f not in SORTABLE_FIELDS:
                        errors.append(
                            f"sort.{i}.field must be one of the following values: {', '.join(SORTABLE_FIELDS)}"
                        )
                    if d not in ("asc", "desc"):
                        errors.append(f"sort.{i}.direction must be one of the following values: asc, desc")
                    if f in SORTABLE_FIELDS and d in ("asc", "desc"):
                        sort.append((f, d))
        if errors:
            raise unprocessable(*errors)
        assert isinstance(location_id, str)
        page_limit = int(page_limit)  # 20.0 is the same JSON number as 20
        page = None if page is None else int(page)
        if page is not None and page * page_limit > PAGE_PAGING_CAP:
            raise unprocessable(
                f"page * pageLimit must not exceed {PAGE_PAGING_CAP}; "
                f"use searchAfter to page beyond {PAGE_PAGING_CAP} records"
            )
        sort = sort or list(DEFAULT_SORT)
        if search_after is not None and len(search_after) != len(sort) + 1:
            raise unprocessable(
                f"searchAfter must have {len(sort) + 1} values: one per sort field and then the contact id"
            )
        filters = filters or []
        compiled: list[tuple[Any, Pred]] = [
            (item, _compile_filter(item, f"filters.{i}")) for i, item in enumerate(filters)
        ]
        if query:
            needle = query.lower()
            compiled.append((None, lambda r: _query_match(r.doc, needle)))
        return SearchParams(
            location_id=location_id,
            page_limit=page_limit,
            page=page,
            search_after=search_after,
            filters=filters,
            sort=sort,
            query=query or None,
            compiled=compiled,
        )

    def search(self, params: SearchParams | dict) -> dict:
        """Run a search; returns ``{"contacts": [...], "total": n}`` with ``searchAfter`` per contact."""
        if isinstance(params, dict):
            params = self.parse_search(params)
        with self.lock:
            self._drain()
            if len(params.sort) == 1 and params.sort[0][0] in ("dateAdded", "dateUpdated"):
                recs, total = self._search_by_date(params)
            else:
                recs, total = self._search_general(params)
            contacts = []
            for rec in recs:
                out = {k: v for k, v in rec.doc.items() if k != "dndSettings"}  # live search omits it (#43)
                out["searchAfter"] = [_sort_value(rec, f) for f, _ in params.sort] + [rec.id]
                contacts.append(out)
        return {"contacts": contacts, "total": total}

    def _residual_pred(self, params: SearchParams, skip_range_on: str | None = None) -> Pred | None:
        """AND of the filters still to check per contact (None = every contact in range matches).

        Top-level ``range`` filters on ``skip_range_on`` are left out: the caller already applied
        them by bisecting the sorted list. The location check is left out while the index holds only
        the home location's contacts.
        """
        preds = [
            pred
            for item, pred in params.compiled
            if not (
                skip_range_on
                and isinstance(item, dict)
                and item.get("field") == skip_range_on
                and item.get("operator") == "range"
            )
        ]
        if not self._index.only_home(params.location_id):
            loc = params.location_id
            preds.insert(0, lambda r: r.doc.get("locationId") == loc)
        if not preds:
            return None
        if len(preds) == 1:
            return preds[0]
        return lambda r: all(p(r) for p in preds)

    def _search_by_date(self, params: SearchParams) -> tuple[list[_Rec], int]:
        """Hot path: one date sort; narrow by top-level ranges with bisect, walk the sorted list."""
        field_name, direction = params.sort[0]
        lst = self._index.by_updated if field_name == "dateUpdated" else self._index.by_added
        recs = self._index.recs
        bounds = _range_bounds(params.filters, field_name)
        lo = 0 if bounds.lo == -math.inf else bisect_left(lst, (int(bounds.lo),))
        hi = len(lst) if bounds.hi == math.inf else bisect_left(lst, (int(bounds.hi) + 1,))
        hi = max(lo, hi)
        pred = self._residual_pred(params, skip_range_on=field_name)
        total = hi - lo if pred is None else sum(1 for _, cid in lst[lo:hi] if pred(recs[cid]))

        cursor = None
        if params.search_after is not None:
            cursor = (
                _coerce_cursor(params.search_after[0], field_name, 0),
                _cursor_id(params.search_after[-1], len(params.search_after) - 1),
            )
        skip = (params.page - 1) * params.page_limit if params.page else 0
        if direction == "asc":
            start = lo if cursor is None else max(lo, bisect_right(lst, cursor))
            if pred is None:  # O(log n + page): no per-contact work at all
                return [recs[cid] for _, cid in lst[start + skip : min(hi, start + skip + params.page_limit)]], total
            order: Iterable[tuple[int, str]] = (lst[i] for i in range(start, hi))
        else:
            order = _desc_order(lst, lo, hi, cursor)
        out: list[_Rec] = []
        for _, cid in order:
            rec = recs[cid]
            if pred is not None and not pred(rec):
                continue
            if skip:
                skip -= 1
                continue
            out.append(rec)
            if len(out) >= params.page_limit:
                break
        return out, total

    def _search_general(self, params: SearchParams) -> tuple[list[_Rec], int]:
        """Any sort: filter everything, sort with the id tiebreaker, then cursor/page (O(n log n)).

        Sorting is done as stable passes from the last key to the first (id first), which keeps
        native comparisons; missing values go last in both directions, like Elasticsearch.
        """
        pred = self._residual_pred(params)
        recs = self._index.recs.values()
        matches = list(recs) if pred is None else [r for r in recs if pred(r)]
        matches.sort(key=lambda r: r.id)
        for f, d in reversed(params.sort):
            if d == "asc":
                matches.sort(key=lambda r, f=f: _missing_last_key(_sort_value(r, f)))
            else:
                matches.sort(key=lambda r, f=f: _missing_last_key_desc(_sort_value(r, f)), reverse=True)
        start = 0
        if params.search_after is not None:
            cursor = [
                _coerce_cursor(v, f, i)
                for i, ((f, _), v) in enumerate(zip(params.sort, params.search_after[:-1], strict=True))
            ]
            cursor_id = _cursor_id(params.search_after[-1], len(params.sort))
            # Binary search for the first contact strictly after the cursor position.
            lo_i, hi_i = 0, len(matches)
            while lo_i < hi_i:
                mid = (lo_i + hi_i) // 2
                if _position_cmp(matches[mid], params.sort, cursor, cursor_id) > 0:
                    hi_i = mid
                else:
                    lo_i = mid + 1
            start = lo_i
        if params.page:
            start += (params.page - 1) * params.page_limit
        return matches[start : start + params.page_limit], len(matches)

    # ---- deprecated list + business listing -------------------------------------------------------

    def list_contacts(
        self,
        location_id: str,
        *,
        limit: int = 20,
        start_after: int | None = None,
        start_after_id: str | None = None,
        query: str | None = None,
    ) -> dict:
        """``GET /contacts/``: dateAdded asc, id asc; cursor = contacts strictly after (startAfter, id)."""
        with self.lock:
            self._drain()
            lst = self._index.by_added
            recs = self._index.recs
            if start_after is None and start_after_id:
                rec = recs.get(start_after_id)
                start_after = rec.added if rec else None
            if start_after is None:
                start = 0
            elif start_after_id:
                start = bisect_right(lst, (start_after, start_after_id))
            else:
                start = bisect_left(lst, (start_after + 1,))
            needle = query.lower() if query else None
            same_location = self._index.only_home(location_id)

            def match(rec: _Rec) -> bool:
                if not same_location and rec.doc.get("locationId") != location_id:
                    return False
                return needle is None or _query_match(rec.doc, needle)

            if same_location and needle is None:
                total, before = len(lst), start
                page = [recs[cid] for _, cid in lst[start : start + limit]]
                more = start + limit < len(lst)
            else:
                flags = [match(recs[cid]) for _, cid in lst]
                total, before = sum(flags), sum(flags[:start])
                page, more = [], False
                for i in range(start, len(lst)):
                    if flags[i]:
                        if len(page) == limit:
                            more = True
                            break
                        page.append(recs[lst[i][1]])
            return {
                "contacts": [dict(r.doc) for r in page],
                "total": total,
                "position": before,
                "more": more and bool(page),
                "last": (page[-1].added, page[-1].id) if page else None,
            }

    def business_contacts(
        self, business_id: str, location_id: str, *, limit: int, skip: int, query: str | None
    ) -> dict:
        """``GET /contacts/business/{id}``: dateAdded asc, id asc; skip/limit paging."""
        with self.lock:
            self._drain()
            needle = query.lower() if query else None
            recs = self._index.recs
            matches = [
                recs[cid]
                for _, cid in self._index.by_added
                if recs[cid].doc.get("businessId") == business_id
                and recs[cid].doc.get("locationId") == location_id
                and (needle is None or _query_match(recs[cid].doc, needle))
            ]
            return {"contacts": [dict(r.doc) for r in matches[skip : skip + limit]], "count": len(matches)}

    # ---- contact children: shared -------------------------------------------------------------------

    def _owned_contact(self, cid: str, location_id: str | None) -> dict:
        """The fresh contact for a nested route: unknown -> 400, another location's -> 403."""
        doc = self._docs.get(cid)
        if doc is None:
            raise not_found(cid)
        self._check_owner(doc, location_id)
        return doc

    def _touch_contact(self, cid: str | None) -> None:
        """With ``touch_contact_on_child_write``, a child write stamps the contact's dateUpdated."""
        if not self.touch_contact_on_child_write or not cid:
            return
        doc = self._docs.get(cid)
        if doc is not None:
            self._write_update(doc, {})

    @staticmethod
    def _link(table: dict[str, dict[str, None]], parent: str, child: str) -> None:
        table.setdefault(parent, {})[child] = None

    @staticmethod
    def _unlink(table: dict[str, dict[str, None]], parent: str | None, child: str) -> None:
        ids = table.get(parent or "")
        if ids is not None:
            ids.pop(child, None)
            if not ids:
                del table[parent or ""]

    # ---- tasks ----------------------------------------------------------------------------------------

    def _put_task(self, doc: dict, location_id: str) -> None:
        old = self._tasks.get(doc["id"])
        if old is not None:
            self._unlink(self._tasks_by_contact, old.get("contactId"), doc["id"])
        self._tasks[doc["id"]] = doc
        self._task_loc[doc["id"]] = location_id
        self._link(self._tasks_by_contact, doc["contactId"], doc["id"])
        self._task_order = None

    def _drop_task(self, tid: str) -> None:
        doc = self._tasks.pop(tid, None)
        if doc is not None:
            self._task_loc.pop(tid, None)
            self._unlink(self._tasks_by_contact, doc.get("contactId"), tid)
            self._task_order = None

    def _owned_task(self, cid: str, tid: str, location_id: str | None) -> dict:
        self._owned_contact(cid, location_id)
        doc = self._tasks.get(tid)
        if doc is None or doc.get("contactId") != cid:
            raise ApiError(400, f"Task with id {tid} not found")
        return doc

    def list_tasks(self, cid: str, location_id: str | None = None) -> list[dict]:
        """``GET /contacts/{id}/tasks``: the contact's tasks by dueDate, then id (choice)."""
        with self.lock:
            self._owned_contact(cid, location_id)
            docs = [self._tasks[t] for t in self._tasks_by_contact.get(cid, ())]
            docs.sort(key=_task_sort_key)
            return [dict(d) for d in docs]

    def get_task(self, cid: str, tid: str, location_id: str | None = None) -> dict:
        with self.lock:
            return dict(self._owned_task(cid, tid, location_id))

    def create_task(self, cid: str, body: dict, location_id: str | None = None) -> dict:
        """``POST /contacts/{id}/tasks`` (CreateTaskParams: title*, dueDate*, completed*, body, assignedTo)."""
        errors = _dto_errors(
            body, _TASK_FIELDS, required=("title", "dueDate", "completed"), nullable=("body", "assignedTo")
        )
        with self.lock:
            contact = self._owned_contact(cid, location_id)
            if errors:
                raise unprocessable(*errors)
            tid = new_id()
            while tid in self._tasks:
                tid = new_id()
            doc: dict[str, Any] = {"id": tid}
            _apply_task(doc, body)
            doc["contactId"] = cid
            doc = {k: doc[k] for k in TASK_KEYS if k in doc}
            self._put_task(doc, contact.get("locationId") or self.location_id)
            self._touch_contact(cid)
            return dict(doc)

    def update_task(self, cid: str, tid: str, body: dict, location_id: str | None = None) -> dict:
        """``PUT /contacts/{id}/tasks/{taskId}`` (UpdateTaskBody: any of the create fields)."""
        errors = _dto_errors(body, _TASK_FIELDS, nullable=("body", "assignedTo"))
        with self.lock:
            old = self._owned_task(cid, tid, location_id)
            if errors:
                raise unprocessable(*errors)
            doc = dict(old)
            _apply_task(doc, body)
            self._put_task(doc, self._task_loc.get(tid, self.location_id))
            self._touch_contact(cid)
            return dict(doc)

    def complete_task(self, cid: str, tid: str, body: dict, location_id: str | None = None) -> dict:
        """``PUT .../tasks/{taskId}/completed`` (UpdateTaskStatusParams: completed*)."""
        errors = _dto_errors(body, {"completed": "boolean"}, required=("completed",))
        with self.lock:
            old = self._owned_task(cid, tid, location_id)
            if errors:
                raise unprocessable(*errors)
            doc = {**old, "completed": body["completed"]}
            self._put_task(doc, self._task_loc.get(tid, self.location_id))
            self._touch_contact(cid)
            return dict(doc)

    def delete_task(self, cid: str, tid: str, location_id: str | None = None) -> None:
        with self.lock:
            self._owned_task(cid, tid, location_id)
            self._drop_task(tid)
            self._touch_contact(cid)

    def parse_task_search(self, body: dict) -> dict:
        """Validate a ``POST /locations/{id}/tasks/search`` body (TaskSearchParamsDto); 422 lists every problem."""
        errors = _dto_errors(body, _TASK_SEARCH_FIELDS)
        contact_ids = body.get("contactId")
        if isinstance(contact_ids, list) and len(contact_ids) > MAX_TASK_SEARCH_CONTACTS:
            errors.append(f"contactId must contain no more than {MAX_TASK_SEARCH_CONTACTS} elements")
        limit = body.get("limit")
        if limit is not None and _is_int(limit):
            if limit < 1:
                errors.append("limit must not be less than 1")
            elif limit > MAX_TASK_SEARCH_LIMIT:
                errors.append(f"limit must not be greater than {MAX_TASK_SEARCH_LIMIT}")
        skip = body.get("skip")
        if skip is not None and _is_int(skip) and skip < 0:
            errors.append("skip must not be less than 0")
        if errors:
            raise unprocessable(*errors)
        return {
            "contact_ids": list(dict.fromkeys(contact_ids)) if contact_ids else None,
            "completed": body.get("completed"),
            "assigned_to": set(body["assignedTo"]) if body.get("assignedTo") else None,
            "query": body["query"].lower() if body.get("query") else None,
            "business_id": body.get("businessId") or None,
            "limit": DEFAULT_TASK_SEARCH_LIMIT if limit is None else int(limit),
            "skip": 0 if skip is None else int(skip),
        }

    def search_tasks(self, location_id: str, body: dict) -> dict:
        """Tasks of ``location_id`` matching the filters, ordered by contactId, dueDate, id; skip/limit."""
        p = self.parse_task_search(body)
        with self.lock:
            if p["contact_ids"] is not None:
                order = sorted(
                    _task_sort_key(self._tasks[t])
                    for cid in p["contact_ids"]
                    for t in self._tasks_by_contact.get(cid, ())
                )
            else:
                if self._task_order is None:
                    self._task_order = sorted(_task_sort_key(d) for d in self._tasks.values())
                order = self._task_order
            completed, assigned, needle = p["completed"], p["assigned_to"], p["query"]
            business = p["business_id"]
            skip, limit, out = p["skip"], p["limit"], []
            for *_, tid in order:
                doc = self._tasks[tid]
                if self._task_loc.get(tid) != location_id:
                    continue
                if completed is not None and bool(doc.get("completed")) != completed:
                    continue
                if assigned is not None and doc.get("assignedTo") not in assigned:
                    continue
                if needle is not None and not any(
                    isinstance(doc.get(k), str) and needle in doc[k].lower() for k in ("title", "body")
                ):
                    continue
                if business is not None and (self._docs.get(doc["contactId"]) or {}).get("businessId") != business:
                    continue
                if skip:
                    skip -= 1
                    continue
                out.append(dict(doc))
                if len(out) >= limit:
                    break
            return {"tasks": out}

    # ---- notes ----------------------------------------------------------------------------------------

    def _put_note(self, doc: dict) -> None:
        old = self._notes.get(doc["id"])
        if old is not None:
            self._unlink(self._notes_by_contact, old.get("contactId"), doc["id"])
        self._notes[doc["id"]] = doc
        self._link(self._notes_by_contact, doc["contactId"], doc["id"])

    def _drop_note(self, nid: str) -> None:
        doc = self._notes.pop(nid, None)
        if doc is not None:
            self._unlink(self._notes_by_contact, doc.get("contactId"), nid)

    def _owned_note(self, cid: str, nid: str, location_id: str | None) -> dict:
        self._owned_contact(cid, location_id)
        doc = self._notes.get(nid)
        if doc is None or doc.get("contactId") != cid:
            raise ApiError(400, f"Note with id {nid} not found")
        return doc

    def list_notes(self, cid: str, location_id: str | None = None) -> list[dict]:
        """``GET /contacts/{id}/notes``: all of them (no paging), newest dateAdded first, then id (choice)."""
        with self.lock:
            self._owned_contact(cid, location_id)
            docs = sorted((self._notes[n] for n in self._notes_by_contact.get(cid, ())), key=lambda d: d["id"])
            docs.sort(key=lambda d: parse_ms(d.get("dateAdded")) or 0, reverse=True)
            return [dict(d) for d in docs]

    def get_note(self, cid: str, nid: str, location_id: str | None = None) -> dict:
        with self.lock:
            return dict(self._owned_note(cid, nid, location_id))

    def create_note(self, cid: str, body: dict, location_id: str | None = None) -> dict:
        """``POST /contacts/{id}/notes`` (NotesDTO: body*, userId, title, color, pinned). Bodies are kept verbatim."""
        errors = _dto_errors(body, _NOTE_FIELDS, required=("body",), nullable=("userId", "title", "color"))
        with self.lock:
            self._owned_contact(cid, location_id)
            if errors:
                raise unprocessable(*errors)
            nid = new_id()
            while nid in self._notes:
                nid = new_id()
            doc: dict[str, Any] = {"id": nid, "pinned": False}
            _apply_plain(doc, body)
            doc["dateAdded"] = iso_ms(now_ms())
            doc["contactId"] = cid
            doc = {k: doc[k] for k in NOTE_KEYS if k in doc}
            self._put_note(doc)
            self._touch_contact(cid)
            return dict(doc)

    def update_note(self, cid: str, nid: str, body: dict, location_id: str | None = None) -> dict:
        """``PUT /contacts/{id}/notes/{noteId}`` (UpdateNoteDTO: any of the create fields)."""
        errors = _dto_errors(body, _NOTE_FIELDS, nullable=("userId", "title", "color"))
        with self.lock:
            old = self._owned_note(cid, nid, location_id)
            if errors:
                raise unprocessable(*errors)
            doc = dict(old)
            _apply_plain(doc, body)
            self._put_note(doc)
            self._touch_contact(cid)
            return dict(doc)

    def delete_note(self, cid: str, nid: str, location_id: str | None = None) -> None:
        with self.lock:
            self._owned_note(cid, nid, location_id)
            self._drop_note(nid)
            self._touch_contact(cid)

    # ---- calendars and events ---------------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.location_timezone)

    def list_calendars(self, location_id: str, *, group_id: str | None = None, show_drafted: bool = True) -> list[dict]:
        """``GET /calendars/``: the location's calendars by name, then id (choice)."""
        with self.lock:
            docs = [
                c
                for c in self._calendars.values()
                if c.get("locationId") == location_id
                and (group_id is None or c.get("groupId") == group_id)
                and (show_drafted or c.get("isActive", True))
            ]
            docs.sort(key=lambda c: (str(c.get("name") or ""), c["id"]))
            return [json.loads(json.dumps(c)) for c in docs]

    def _render_event(self, ev: dict, *, zoneless: bool = False) -> dict:
        """Stored event -> CalendarEventDTO (ISO with the location's offset) or GetEventSchema (zone-less)."""
        tz = self.tz
        out = dict(ev)
        for k in _EVENT_TIME_KEYS:
            if isinstance(out.get(k), int):
                dt = datetime.fromtimestamp(out[k] // 1000, tz)
                out[k] = f"{dt:%Y-%m-%d %H:%M:%S}" if zoneless else dt.isoformat()
        out["users"] = list(ev.get("users") or [])
        return out

    def _contact_event(self, ev: dict) -> dict:
        """GetEventSchema (``GET /contacts/{id}/appointments``): its key set, zone-less times."""
        r = self._render_event(ev, zoneless=True)
        status = r.get("appointmentStatus") or "new"
        out: dict[str, Any] = {
            "id": r["id"],
            "calendarId": r.get("calendarId", ""),
            # Choice: the legacy status reads "booked" for new/confirmed, else the appointment status.
            "status": "booked" if status in ("new", "confirmed") else status,
            "title": r.get("title", ""),
            "assignedUserId": r.get("assignedUserId", ""),
        }
        if r.get("notes"):
            out["notes"] = r["notes"]
        out["startTime"], out["endTime"] = r["startTime"], r["endTime"]
        if r.get("address"):
            out["address"] = r["address"]
        for k in ("locationId", "contactId", "groupId"):
            out[k] = r.get(k, "")
        out["appointmentStatus"] = status
        out["users"] = r["users"]
        out["dateAdded"], out["dateUpdated"] = r["dateAdded"], r["dateUpdated"]
        out["assignedResources"] = list(r.get("assignedResources") or [])
        return out

    def _appointment_response(self, ev: dict) -> dict:
        """AppointmentSchemaResponse (create/update appointment): flat, ISO times with offset."""
        r = self._render_event(ev)
        keys = (
            "id", "calendarId", "locationId", "contactId", "startTime", "endTime", "title",
            "meetingLocationType", "appointmentStatus", "assignedUserId", "address", "isRecurring", "rrule",
        )  # fmt: skip
        return {k: r[k] for k in keys if k in r}

    def contact_appointments(self, cid: str, location_id: str | None = None) -> list[dict]:
        """``GET /contacts/{id}/appointments``: every event of the contact by startTime, then id."""
        with self.lock:
            self._owned_contact(cid, location_id)
            evs = sorted(
                (self._events[e] for e in self._events_by_contact.get(cid, ())),
                key=lambda ev: (ev["startTime"], ev["id"]),
            )
            return [self._contact_event(ev) for ev in evs]

    def calendar_events(
        self,
        location_id: str,
        *,
        start_ms: int,
        end_ms: int,
        calendar_id: str | None = None,
        user_id: str | None = None,
        group_id: str | None = None,
    ) -> list[dict]:
        """``GET /calendars/events``: events overlapping ``[start_ms, end_ms]`` (filters AND-ed)."""
        with self.lock:
            hits = []
            for ev in self._events.values():
                if ev.get("locationId") != location_id:
                    continue
                if calendar_id is not None and ev.get("calendarId") != calendar_id:
                    continue
                if group_id is not None and ev.get("groupId") != group_id:
                    continue
                if (
                    user_id is not None
                    and ev.get("assignedUserId") != user_id
                    and user_id not in (ev.get("users") or ())
                ):
                    continue
                start, end = ev["startTime"], ev["endTime"]
                # An event [start, end) overlaps the closed window; a zero-length one counts at its start.
                if start <= end_ms and max(end, start + 1) > start_ms:
                    hits.append(ev)
            hits.sort(key=lambda ev: (ev["startTime"], ev["id"]))
            return [self._render_event(ev) for ev in hits]

    def _owned_event(self, eid: str, location_id: str | None) -> dict:
        ev = self._events.get(eid)
        if ev is None:
            raise ApiError(400, f"Event with id {eid} not found")
        self._check_owner(ev, location_id)
        return ev

    def get_event(self, eid: str, location_id: str | None = None) -> dict:
        """``GET /calendars/events/appointments/{eventId}`` -> CalendarEventDTO."""
        with self.lock:
            return self._render_event(self._owned_event(eid, location_id))

    def _put_event(self, ev: dict) -> None:
        old = self._events.get(ev["id"])
        if old is not None:
            self._unlink(self._events_by_contact, old.get("contactId"), ev["id"])
        self._events[ev["id"]] = ev
        if ev.get("contactId"):
            self._link(self._events_by_contact, ev["contactId"], ev["id"])

    def _calendar_in(self, calendar_id: str, location_id: str) -> dict:
        cal = self._calendars.get(calendar_id)
        if cal is None or cal.get("locationId") != location_id:
            raise ApiError(400, f"Calendar with id {calendar_id} not found")
        return cal

    def _appointment_errors(self, body: dict, *, create: bool) -> list[str]:
        fields = _APPOINTMENT_CREATE_FIELDS if create else _APPOINTMENT_EDIT_FIELDS
        required = ("calendarId", "locationId", "contactId", "startTime") if create else ()
        errors = _dto_errors(body, fields, required=required)
        start = _event_ms(body.get("startTime"), self.tz) if isinstance(body.get("startTime"), str) else None
        end = _event_ms(body.get("endTime"), self.tz) if isinstance(body.get("endTime"), str) else None
        if start is not None and end is not None and end <= start:
            errors.append("endTime must be later than startTime")
        return errors

    def create_appointment(self, body: dict) -> dict:
        """``POST /calendars/events/appointments`` (AppointmentCreateSchema) -> AppointmentSchemaResponse.

        Free-slot, date-range and notification rules are not simulated (any time books).
        """
        errors = self._appointment_errors(body, create=True)
        if errors:
            raise unprocessable(*errors)
        with self.lock:
            loc = body["locationId"]
            cal = self._calendar_in(body["calendarId"], loc)
            contact = self._docs.get(body["contactId"])
            if contact is None or contact.get("locationId") != loc:
                raise not_found(body["contactId"])
            eid = new_id()
            while eid in self._events:
                eid = new_id()
            stamp = now_ms()
            start = _event_ms(body["startTime"], self.tz)
            assert start is not None
            ev: dict[str, Any] = {
                "id": eid,
                "title": body.get("title") or contact.get("contactName") or contact.get("name") or "Appointment",
                "calendarId": cal["id"],
                "locationId": loc,
                "contactId": contact["id"],
                "groupId": cal.get("groupId") or "",
                "appointmentStatus": body.get("appointmentStatus")
                or ("confirmed" if cal.get("autoConfirm", True) else "new"),
                "assignedUserId": body.get("assignedUserId") or _first_member(cal),
                "users": [],
                "startTime": start,
                "endTime": _event_ms(body["endTime"], self.tz) if body.get("endTime") else start + _slot_ms(cal),
                "dateAdded": stamp,
                "dateUpdated": stamp,
                "isRecurring": bool(body.get("rrule")),
            }
            self._apply_appointment_extras(ev, body)
            self._put_event(ev)
            self._touch_contact(ev["contactId"])
            return self._appointment_response(ev)

    @staticmethod
    def _apply_appointment_extras(ev: dict, body: dict) -> None:
        for k in ("address", "description", "rrule", "meetingLocationType", "meetingLocationId"):
            if body.get(k):
                ev[k] = body[k]
        if body.get("address") and not body.get("meetingLocationType") and not ev.get("meetingLocationType"):
            ev["meetingLocationType"] = "custom"  # the spec's documented default when an address is given
        if body.get("rrule"):
            ev["isRecurring"] = True

    def update_appointment(self, eid: str, body: dict, location_id: str | None = None) -> dict:
        """``PUT /calendars/events/appointments/{eventId}`` (AppointmentEditSchema) -> AppointmentSchemaResponse."""
        with self.lock:
            old = self._owned_event(eid, location_id)
            errors = self._appointment_errors(body, create=False)
            if errors:
                raise unprocessable(*errors)
            ev = dict(old)
            if body.get("calendarId"):
                cal = self._calendar_in(body["calendarId"], old["locationId"])
                ev["calendarId"], ev["groupId"] = cal["id"], cal.get("groupId") or ev.get("groupId", "")
            for k in ("title", "appointmentStatus", "assignedUserId"):
                if body.get(k):
                    ev[k] = body[k]
            if body.get("startTime"):
                duration = old["endTime"] - old["startTime"]
                ev["startTime"] = _event_ms(body["startTime"], self.tz)
                ev["endTime"] = ev["startTime"] + duration  # a moved appointment keeps its length
            if body.get("endTime"):
                ev["endTime"] = _event_ms(body["endTime"], self.tz)
            if ev["endTime"] <= ev["startTime"]:
                raise unprocessable("endTime must be later than startTime")
            self._apply_appointment_extras(ev, body)
            ev["dateUpdated"] = max(now_ms(), old.get("dateUpdated") or 0)
            self._put_event(ev)
            self._touch_contact(ev.get("contactId"))
            return self._appointment_response(ev)

    def delete_event(self, eid: str, location_id: str | None = None) -> None:
        """``DELETE /calendars/events/{eventId}``: hard delete."""
        with self.lock:
            ev = self._owned_event(eid, location_id)
            del self._events[eid]
            self._unlink(self._events_by_contact, ev.get("contactId"), eid)
            self._touch_contact(ev.get("contactId"))

    # ---- children: bulk / admin -------------------------------------------------------------------

    def load_tasks(self, tasks: Iterable[dict]) -> int:
        """Insert or replace tasks in API read shape, keeping ids and due dates (``contactId`` required).

        A task's location is its contact's (else its own ``locationId`` key, else the state's).
        ``dueDate`` is normalised to ``YYYY-MM-DDTHH:mm:ss.sssZ`` when it parses.
        """
        docs = []
        for raw in tasks:
            if not isinstance(raw, dict) or not raw.get("contactId"):
                raise ApiError(400, "each task must be a JSON object with a contactId")
            doc = dict(raw)
            doc["id"] = doc.get("id") or new_id()
            due = parse_ms(doc.get("dueDate"))
            if due is not None:
                doc["dueDate"] = iso_ms(due)
            doc["completed"] = bool(doc.get("completed", False))
            docs.append(doc)
        with self.lock:
            for doc in docs:
                contact = self._docs.get(doc["contactId"])
                loc = (contact or {}).get("locationId") or doc.get("locationId") or self.location_id
                self._put_task(doc, loc)
        return len(docs)

    def load_notes(self, notes: Iterable[dict]) -> int:
        """Insert or replace notes in API read shape, keeping ids and ``dateAdded`` (``contactId`` required)."""
        stamp = iso_ms(now_ms())
        docs = []
        for raw in notes:
            if not isinstance(raw, dict) or not raw.get("contactId"):
                raise ApiError(400, "each note must be a JSON object with a contactId")
            doc = dict(raw)
            doc["id"] = doc.get("id") or new_id()
            doc.setdefault("dateAdded", stamp)
            doc.setdefault("pinned", False)
            docs.append(doc)
        with self.lock:
            for doc in docs:
                self._put_note(doc)
        return len(docs)

    def load_calendars(self, calendars: Iterable[dict]) -> int:
        """Insert or replace calendars (CalendarDTO shape); a missing ``locationId`` is the state's."""
        docs = []
        for raw in calendars:
            if not isinstance(raw, dict):
                raise ApiError(400, "each calendar must be a JSON object")
            doc = dict(raw)
            doc["id"] = doc.get("id") or new_id()
            doc.setdefault("locationId", self.location_id)
            doc.setdefault("name", "Calendar")
            doc.setdefault("isActive", True)
            docs.append(doc)
        with self.lock:
            for doc in docs:
                self._calendars[doc["id"]] = doc
        return len(docs)

    def load_events(self, events: Iterable[dict]) -> int:
        """Insert or replace calendar events (CalendarEventDTO shape), keeping ids and every time.

        Times may be ISO with an offset or ``Z``, zone-less (read in ``location_timezone``) or epoch ms.
        ``startTime`` is required; missing ``endTime`` = start + the calendar's slot (30 min); missing
        ``dateAdded`` = now; missing ``dateUpdated`` = ``dateAdded``.
        """
        tz = self.tz
        stamp = now_ms()
        docs = []
        with self.lock:
            for raw in events:
                if not isinstance(raw, dict):
                    raise ApiError(400, "each event must be a JSON object")
                doc = dict(raw)
                doc["id"] = doc.get("id") or new_id()
                times = {k: _event_ms(doc.get(k), tz) for k in _EVENT_TIME_KEYS}
                if times["startTime"] is None:
                    raise ApiError(400, f"event {doc['id']}: startTime is missing or not a date")
                cal = self._calendars.get(str(doc.get("calendarId")))
                doc["startTime"] = times["startTime"]
                doc["endTime"] = times["endTime"] if times["endTime"] is not None else doc["startTime"] + _slot_ms(cal)
                doc["dateAdded"] = times["dateAdded"] if times["dateAdded"] is not None else stamp
                doc["dateUpdated"] = times["dateUpdated"] if times["dateUpdated"] is not None else doc["dateAdded"]
                doc.setdefault("locationId", (cal or {}).get("locationId") or self.location_id)
                doc.setdefault("title", "")
                doc.setdefault("calendarId", "")
                doc.setdefault("contactId", "")
                doc.setdefault("groupId", (cal or {}).get("groupId") or "")
                doc.setdefault("appointmentStatus", "confirmed")
                doc.setdefault("assignedUserId", _first_member(cal))
                doc.setdefault("users", [])
                docs.append(doc)
            for doc in docs:
                self._put_event(doc)
        return len(docs)

    def all_tasks(self) -> list[dict]:
        """Every task, ordered by contactId, dueDate, id (the search order)."""
        with self.lock:
            return [dict(d) for d in sorted(self._tasks.values(), key=_task_sort_key)]

    def all_notes(self) -> list[dict]:
        """Every note, ordered by contactId, dateAdded, id."""
        with self.lock:
            docs = sorted(
                self._notes.values(),
                key=lambda d: (str(d.get("contactId")), parse_ms(d.get("dateAdded")) or 0, d["id"]),
            )
            return [dict(d) for d in docs]

    def all_calendars(self) -> list[dict]:
        with self.lock:
            return [json.loads(json.dumps(c)) for c in sorted(self._calendars.values(), key=lambda c: c["id"])]

    def all_events(self) -> list[dict]:
        """Every event as CalendarEventDTO (ISO times with the location's offset), by startTime, id."""
        with self.lock:
            evs = sorted(self._events.values(), key=lambda ev: (ev["startTime"], ev["id"]))
            return [self._render_event(ev) for ev in evs]


# --------------------------------------------------------------------------------------------------
# helpers


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) or (isinstance(v, float) and v.is_integer())


def _cursor_id(v: Any, i: int) -> str:
    if not isinstance(v, str) or not v:
        raise unprocessable(f"searchAfter.{i} must be the contact id (a string)")
    return v


def _query_match(doc: dict, needle: str) -> bool:
    for key in ("fullNameLowerCase", "contactName", "email", "phone", "companyName"):
        v = doc.get(key)
        if isinstance(v, str) and needle in v.lower():
            return True
    return False


def _desc_order(
    lst: list[tuple[int, str]], lo: int, hi: int, cursor: tuple[Any, str] | None
) -> Iterator[tuple[int, str]]:
    """Walk ``lst[lo:hi]`` by ms descending with ids ascending inside each ms (the id tiebreaker)."""
    upper = hi
    if cursor is not None:
        c_ms, c_id = cursor
        # Rest of the cursor's own millisecond: ids after the cursor id.
        g_from = max(lo, bisect_right(lst, (c_ms, c_id)))
        g_to = min(hi, bisect_left(lst, (c_ms + 1,)))
        yield from (lst[i] for i in range(g_from, g_to))
        upper = min(hi, bisect_left(lst, (c_ms,)))
    i = upper - 1
    while i >= lo:
        ms = lst[i][0]
        j = bisect_left(lst, (ms,), lo, i + 1)
        yield from (lst[k] for k in range(j, i + 1))
        i = j - 1


# --------------------------------------------------------------------------------------------------
# tasks, notes, calendar events: DTOs and helpers

_TASK_FIELDS: dict[str, str] = {
    "title": "string",
    "body": "string",
    "dueDate": "iso",
    "completed": "boolean",
    "assignedTo": "string",
}
_TASK_SEARCH_FIELDS: dict[str, str] = {
    "contactId": "string[]",
    "completed": "boolean",
    "assignedTo": "string[]",
    "query": "string",
    "limit": "int",
    "skip": "int",
    "businessId": "string",
}
_NOTE_FIELDS: dict[str, str] = {
    "body": "string",
    "userId": "string",
    "title": "string",
    "color": "string",
    "pinned": "boolean",
}
_APPOINTMENT_EDIT_FIELDS: dict[str, str] = {
    "title": "string",
    "meetingLocationType": "meetingLocationType",
    "meetingLocationId": "string",
    "overrideLocationConfig": "boolean",
    "appointmentStatus": "appointmentStatus",
    "assignedUserId": "string",
    "description": "string",
    "address": "string",
    "ignoreDateRange": "boolean",
    "toNotify": "boolean",
    "ignoreFreeSlotValidation": "boolean",
    "rrule": "string",
    "calendarId": "string",
    "startTime": "iso",
    "endTime": "iso",
}
_APPOINTMENT_CREATE_FIELDS: dict[str, str] = {
    **_APPOINTMENT_EDIT_FIELDS,
    "locationId": "string",
    "contactId": "string",
}
_EVENT_TIME_KEYS = ("startTime", "endTime", "dateAdded", "dateUpdated")
_ENUMS: dict[str, tuple[str, ...]] = {
    "appointmentStatus": APPOINTMENT_STATUSES,
    "meetingLocationType": MEETING_LOCATION_TYPES,
}


def _check_timezone(name: Any) -> str:
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ApiError(400, f"unknown time zone: {name}") from exc
    return str(name)


def _kind_error(name: str, kind: str, v: Any) -> str | None:
    """The class-validator message for a value of the wrong kind (None when it is fine)."""
    if kind == "string":
        return None if isinstance(v, str) else f"{name} must be a string"
    if kind == "boolean":
        return None if isinstance(v, bool) else f"{name} must be a boolean value"
    if kind == "int":
        return None if _is_int(v) else f"{name} must be a number conforming to the specified constraints"
    if kind == "iso":
        ok = isinstance(v, str) and not v.strip().lstrip("-").isdigit() and parse_ms(v) is not None
        return None if ok else f"{name} must be a valid ISO 8601 date string"
    if kind == "string[]":
        if not isinstance(v, list):
            return f"{name} must be an array"
        return None if all(isinstance(x, str) for x in v) else f"each value in {name} must be a string"
    values = _ENUMS[kind]
    return None if v in values else f"{name} must be one of the following values: {', '.join(values)}"


def _dto_errors(
    body: dict, fields: dict[str, str], *, required: Iterable[str] = (), nullable: Iterable[str] = ()
) -> list[str]:
    """Whitelist + type checks of a write DTO, NestJS ValidationPipe style (every problem, in order)."""
    errors = [f"property {k} should not exist" for k in body if k not in fields]
    required, nullable = set(required), set(nullable)
    for name, kind in fields.items():
        v = body.get(name)
        if name in required and (v is None or v == ""):
            errors.append(f"{name} should not be empty")
            if v is None:
                errors.append(_kind_error(name, kind, v) or f"{name} should not be empty")
            continue
        if name not in body or (v is None and name in nullable):
            continue
        msg = _kind_error(name, kind, v)
        if msg:
            errors.append(msg)
    return errors


def _apply_plain(doc: dict, body: dict) -> None:
    """Copy a validated body onto ``doc``; ``null`` clears a (nullable) field."""
    for k, v in body.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v


def _apply_task(doc: dict, body: dict) -> None:
    _apply_plain(doc, body)
    if "dueDate" in body:
        doc["dueDate"] = iso_ms(parse_ms(body["dueDate"]) or 0)


def _task_sort_key(doc: dict) -> tuple[str, bool, int, str]:
    """(contactId, no due date, due ms, id): tasks without a due date go last within their contact."""
    due = parse_ms(doc.get("dueDate"))
    return (str(doc.get("contactId") or ""), due is None, due or 0, str(doc.get("id")))


def _event_ms(value: Any, tz: ZoneInfo) -> int | None:
    """An event time (ISO with offset/Z, zone-less local time, or epoch ms) -> epoch ms."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value) if math.isfinite(value) else None
    if not isinstance(value, str) or not value.strip():
        return None
    s = value.strip()
    if s.lstrip("-").isdigit():
        return int(s)
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def _first_member(cal: dict | None) -> str:
    for member in (cal or {}).get("teamMembers") or ():
        if isinstance(member, dict) and member.get("userId"):
            return str(member["userId"])
    return ""


def _slot_ms(cal: dict | None) -> int:
    """A calendar's slot length (``slotDuration`` in ``slotDurationUnit``; 30 minutes by default)."""
    cal = cal or {}
    duration = cal.get("slotDuration") or 30
    unit = 3_600_000 if cal.get("slotDurationUnit") == "hours" else 60_000
    try:
        return max(60_000, int(float(duration) * unit))
    except (TypeError, ValueError):
        return 30 * 60_000
