"""HighLevel (LeadConnector) API v2 client on the ``ghl_default`` connection.

Quirks it copes with are listed in BEHAVIOR.md beside this file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import requests
from airflow.sdk.log import mask_secret

from ghl_shift4shop.settings import GHL_CONN_ID
from ghl_shift4shop.transport import ApiError, ApiHook, AuthError, DailyBudgetLow

CONTACTS_VERSION = "2021-07-28"
CALENDARS_VERSION = "2021-04-15"  # every calendars operation declares this Version
# The task search's page size: the spec gives a default of 25 and no maximum. We ask for 100 and
# page by what comes back until an empty page: a server that caps pages lower loses nothing.
TASK_SEARCH_LIMIT = 100
# Documented: 100 requests per 10 s per app and location (the window's kind is not). The budget
# (shared by every process of the location, see budget.py; GHL_S4S_GHL_BURST 10, _RATE_PER_S 9.8
# and _WINDOW_SECONDS 10 by default) hands out at most 10 slots in any 1.02 s and 98 in any 10 s,
# fixed or sliding. That bounds when requests are sent, not when they arrive: the 2 left of the 100
# cover the spread between taking a slot and the request reaching the server (threads, the
# network). A request taken early that arrives late can land in the same server window as one taken
# 10 s later that arrives early; with much spread (hundreds of ms) a 429 can happen, and it pauses
# every process of the location (transport, budget.pause). Measured in BENCHMARKS.md ("Rate-budget
# use") against both readings of the window. With workers on several hosts the budget's timestamps
# come from each host's clock: skewed clocks need more room (e.g. _RATE_PER_S 9, 10 left).


def error_message(resp) -> str:
    """The server's words from an error body, whichever of its shapes it used.

    Documented: ``{"statusCode", "message"}`` (``message`` a list for 422). Seen in the wild:
    ``{"error": "...", "status": 400}`` and ``{"status": 400, "message": "...", "name":
    "HttpException"}``. Like the official SDK: ``message`` (a list joined), else ``error``, else
    ``detail``, else the raw text.
    """
    try:
        body = resp.json()
    except ValueError:
        return (resp.text or "").strip()[:300] or f"HTTP {resp.status_code} without a body"
    if not isinstance(body, dict):
        return str(body)[:300]
    for key in ("message", "error", "detail"):
        value = body.get(key)
        if isinstance(value, list):
            value = "; ".join(map(str, value))
        if value:
            return str(value)
    return str(body)[:300]


def _token_expired(resp) -> bool:
    """A 401 that a refresh can cure (not a missing scope, a wrong location or a Version error)."""
    lowered = error_message(resp).lower()
    return "jwt" in lowered or "expired" in lowered or "invalid token" in lowered


# Search items may come in the shape of HighLevel's search-doc example: ``address`` for
# ``address1``, and only lower-cased names (no ``firstName``, ``lastName``, ``name`` or
# ``contactName``). An item lacks detail when it has a field's lower-cased copy but not the field,
# or none of the name fields at all (a contact known only by a ``name`` shows nothing of it in that
# shape): then the full contact is fetched (``GET /contacts/{id}``) instead of mapping a blank.
SEARCH_ALIASES = {"address": "address1"}
SEARCH_SHADOWS = {
    "firstName": "firstNameLowerCase",
    "lastName": "lastNameLowerCase",
    "name": "fullNameLowerCase",
    "email": "emailLowerCase",
}
NAME_FIELDS = ("firstName", "lastName", "name", "contactName")


def normalize_search_item(item: dict) -> dict:
    """A search item with the aliases of the doc-example shape read as the contact's own fields."""
    out = {k: v for k, v in item.items() if k != "searchAfter"}
    for alias, field_name in SEARCH_ALIASES.items():
        if alias in out and field_name not in out:
            out[field_name] = out[alias]
    return out


def lacks_detail(item: dict) -> bool:
    """True when the item may hide fields the contact has (see ``SEARCH_SHADOWS``, ``NAME_FIELDS``)."""
    if not any(k in item for k in NAME_FIELDS):
        return True
    return any(shadow in item and field_name not in item for field_name, shadow in SEARCH_SHADOWS.items())


class ContactNotFound(ApiError):
    """GHL said, in words, that this contact does not exist (it was deleted)."""


def says_contact_not_found(status: int, message: str, contact_id: str) -> bool:
    """True only when the whole answer is GHL's "this contact does not exist".

    v2 documents no 404 for contacts; third parties saw ``400 "Contact with id <id> not found"``
    and v3 documents a 404 whose text is not published. Accepted: ``Contact with id <id> not
    found`` (this contact's id) and ``Contact not found``, nothing else. A route or gateway answer
    that merely quotes the path (``Route GET:/contacts/<id> not found``, ``The requested URL
    /contacts/<id> was not found``, ``Not Found``, ``Cannot GET …``) or any other wording is an
    error, never a deletion: the task fails loudly rather than drop a live contact or switch off
    its customer.
    """
    if status not in (400, 404):
        return False
    text = " ".join((message or "").split()).rstrip(".").lower()
    return text in (f"contact with id {contact_id.lower()} not found", "contact not found")


def contact_not_found(exc: Exception) -> bool:
    """True for the error ``GhlHook.get_contact`` raises when GHL says the contact does not exist."""
    return isinstance(exc, ContactNotFound)


def _int_header(resp, name: str) -> int | None:
    try:
        return int(resp.headers[name])
    except (KeyError, ValueError):
        return None


@dataclass
class SearchPage:
    contacts: list[dict]
    total: int | None


class GhlHook(ApiHook):
    conn_name_attr = "ghl_conn_id"
    default_conn_name = GHL_CONN_ID
    conn_type = "http"
    hook_name = "HighLevel (GHL)"
    service = "ghl"

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        burst: float | None = None,
        rate_per_s: float | None = None,
        window_s: float | None = None,
        daily_reserve: int | None = None,
        token_state=None,
        **kwargs,
    ):
        if conn_id is None:  # the tenant's connection (the default tenant's: ghl_conn_id)
            from ghl_shift4shop.settings import load_settings

            conn_id = (kwargs.get("settings") or load_settings()).ghl_conn_id
        super().__init__(conn_id, **kwargs)
        cfg = self.settings
        self.burst = cfg.ghl_burst if burst is None else burst
        self.rate_per_s = cfg.ghl_rate_per_s if rate_per_s is None else rate_per_s
        self.budget_windows_s = (cfg.ghl_window_seconds if window_s is None else window_s,)
        daily_reserve = cfg.ghl_daily_reserve if daily_reserve is None else daily_reserve
        self.daily_remaining: int | None = None
        self.token_state = token_state
        self.tokens = None  # a TokenStore in OAuth mode
        self._timezone: str | None = None
        # Requests left untouched at the end of a day: for other integrations and people.
        self.daily_reserve = daily_reserve

    # -- connection --------------------------------------------------------------------------
    @property
    def location_id(self) -> str:
        _ = self.session
        location_id = self.connection.extra_dejson.get("location_id")
        if not location_id:
            raise ValueError(f"connection {self.http_conn_id!r} has no extra.location_id")
        return location_id

    def auth_headers(self, connection) -> dict[str, str]:
        from ghl_shift4shop.ghl.oauth import TokenStore, is_oauth

        extra = connection.extra_dejson
        version = extra.get("version") or CONTACTS_VERSION
        headers = {"Version": version, "Accept": "application/json"}
        if is_oauth(extra):
            # OAuth: the access token comes from the token store (or a refresh on first use).
            from ghl_shift4shop.state import StateStore

            state = self.token_state or StateStore(self.settings.state_url, self.settings.state_schema)
            self.tokens = TokenStore(state, extra)
            token = self.tokens.access_token() or connection.password
            if token:
                mask_secret(token)
                headers["Authorization"] = f"Bearer {token}"
            return headers
        token = connection.password
        if not token:
            raise ValueError(f"connection {self.http_conn_id!r} has no password (the bearer token)")
        mask_secret(token)
        return {**headers, "Authorization": f"Bearer {token}"}

    def token_request(self, form: dict):
        """``POST /oauth/token`` (form-encoded, no bearer, no Version), through the hook's session."""
        session = self.session
        prepped = session.prepare_request(
            requests.Request(
                "POST",
                self.url_from_endpoint("/oauth/token"),
                data=form,
                headers={"Authorization": None, "Version": None, "Accept": "application/json"},
            )
        )
        with self._calls_lock:
            self.calls[self.service] += 1
        return self.run_and_check(session, prepped, self.send_options())

    def _bearer(self) -> str | None:
        value = self.session.headers.get("Authorization", "")
        return value.removeprefix("Bearer ") or None

    def _use_token(self, token: str) -> None:
        mask_secret(token)
        self.session.headers["Authorization"] = f"Bearer {token}"

    def budget_account(self, connection) -> str:
        # The limit is per app and location: one budget per location id.
        return str(connection.extra_dejson.get("location_id") or connection.host or "").strip()

    def observe(self, resp) -> None:
        remaining = _int_header(resp, "X-RateLimit-Remaining")
        self.budget.observe_remaining(remaining, low_water=self.low_water(resp))
        daily = _int_header(resp, "X-RateLimit-Daily-Remaining")
        if daily is not None:
            self.daily_remaining = daily

    def low_water(self, resp) -> int | None:
        """Below this many left in the server's window, something besides us spends it.

        Our budget never puts more than ⌊rate × window⌋ into one server window, so the server
        has at least ``X-RateLimit-Max`` minus that left from us alone (the headroom; 2 with the
        defaults). Fewer left means another integration or a person spends this location's
        allowance too: every process then holds off a little (``observe_remaining``). Without
        the window's length in the answer, a tenth of its maximum. At most the burst.
        """
        window_max = _int_header(resp, "X-RateLimit-Max")
        if not window_max:
            return None
        interval_ms = _int_header(resp, "X-RateLimit-Interval-Milliseconds")
        if interval_ms and interval_ms > 0:
            ours = math.floor(self.rate_per_s * interval_ms / 1000 + 1e-9)
            headroom = window_max - ours
        else:
            headroom = window_max // 10
        return int(min(self.burst, max(1, headroom)))

    def _send_once(self, *args, **kwargs):
        if self.daily_remaining is not None and self.daily_remaining <= self.daily_reserve:
            raise DailyBudgetLow(
                "ghl",
                None,
                f"X-RateLimit-Daily-Remaining is {self.daily_remaining}, at or below the reserve of "
                f"{self.daily_reserve}: stopping here, the next run resumes",
            )
        _ = self.session  # builds the session (and the OAuth token store) on first use
        if self.tokens is not None and not self._bearer():
            self._use_token(self.tokens.refresh(self))
        resp = super()._send_once(*args, **kwargs)
        if self.tokens is not None and resp.status_code == 401 and _token_expired(resp):
            # Refresh once and retry once (the documented flow); a second 401 is an answer.
            self._use_token(self.tokens.refresh(self, failed_token=self._bearer()))
            resp = super()._send_once(*args, **kwargs)
        return resp

    # -- errors and lists: written once, used by every call -----------------------------------
    def _raise_for(self, resp, what: str) -> None:
        error_cls = AuthError if resp.status_code in (401, 403) else ApiError
        raise error_cls("ghl", resp.status_code, f"{what}: {error_message(resp)}")

    def _json(self, resp, what: str) -> dict:
        if resp.status_code not in (200, 201):
            self._raise_for(resp, what)
        try:
            body = resp.json()
        except ValueError:
            raise ApiError("ghl", resp.status_code, f"{what}: response is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError("ghl", resp.status_code, f"{what}: expected a JSON object")
        return body

    def _list(self, resp, what: str, key: str) -> list[dict]:
        """The list under ``key`` of a successful answer; a missing or non-list value is an error."""
        return self._items(self._json(resp, what), what, key)

    @staticmethod
    def _items(data: dict, what: str, key: str) -> list[dict]:
        items = data.get(key)
        if not isinstance(items, list):
            raise ApiError("ghl", 200, f"{what}: no {key} list in the answer")
        return [i for i in items if isinstance(i, dict)]

    def _paginate(
        self, method: str, path: str, *, key: str, body: dict, advance, what: str | None = None
    ) -> Iterator[tuple[list[dict], dict]]:
        """The one paging loop: send ``body``, yield (items, whole answer), ask ``advance`` for more.

        ``advance(page, body)`` returns the next request body, or None when the server said there
        is no more. A request body the loop has sent before is an error, never an endless loop.
        """
        what = what or f"{method} {path}"
        sent: set[str] = set()
        while body is not None:
            marker = repr(sorted(body.items()))
            if marker in sent:
                raise ApiError(
                    "ghl",
                    200,
                    f"{what}: the server returned a cursor it already returned (the same page twice); stopping",
                )
            sent.add(marker)
            data = self._json(self.request(method, path, json=body), what)
            page = self._items(data, what, key)
            yield page, data
            body = advance(page, body)

    # -- contacts ----------------------------------------------------------------------------
    def iter_contacts_updated(
        self, *, since: str, until: str | None = None, page_limit: int = 500, inclusive: bool = True
    ) -> Iterator[SearchPage]:
        """Contacts with ``since <= dateUpdated [<= until]``, oldest change first, page by page.

        Uses ``searchAfter`` from the first page on: ``page`` paging stops at 10,000 results.
        The cursor of the last contact of a page is where the next page starts; a page shorter
        than ``page_limit`` ends the walk.
        """
        date_range = {"gte" if inclusive else "gt": since}
        if until:
            date_range["lte"] = until
        body: dict = {
            "locationId": self.location_id,
            "pageLimit": page_limit,
            "filters": [{"field": "dateUpdated", "operator": "range", "value": date_range}],
            "sort": [{"field": "dateUpdated", "direction": "asc"}],
        }

        def advance(page: list[dict], sent: dict) -> dict | None:
            if len(page) < page_limit:
                return None
            cursor = page[-1].get("searchAfter")
            if not cursor:
                raise ApiError("ghl", 200, "search page is full but its last contact carries no searchAfter cursor")
            return {**sent, "searchAfter": cursor}

        pages = self._paginate("POST", "/contacts/search", key="contacts", body=body, advance=advance, what="search")
        for page, data in pages:
            yield SearchPage(page, data.get("total"))

    def get_contact(self, contact_id: str) -> dict:
        """The contact; ``ContactNotFound`` when GHL says it does not exist (see says_contact_not_found)."""
        resp = self.request("GET", f"/contacts/{contact_id}")
        if says_contact_not_found(resp.status_code, error_message(resp), contact_id):
            raise ContactNotFound("ghl", resp.status_code, f"GET /contacts/{{id}}: {error_message(resp)}")
        return self._json(resp, "GET /contacts/{id}")["contact"]

    def location_timezone(self) -> str:
        """The location's IANA time zone: the connection's ``extra.timezone``, else ``GET /locations/{id}``.

        Appointment times from ``GET /contacts/{id}/appointments`` carry no zone; they are in the
        location's. Needs the ``locations.readonly`` scope unless the connection names the zone.
        """
        _ = self.session
        configured = self.connection.extra_dejson.get("timezone")
        if configured:
            return str(configured)
        if self._timezone is None:
            resp = self.request("GET", f"/locations/{self.location_id}")
            location = self._json(resp, "GET /locations/{id}").get("location") or {}
            zone = location.get("timezone")
            if not zone:
                raise ApiError("ghl", resp.status_code, "GET /locations/{id}: the location has no timezone")
            self._timezone = str(zone)
        return self._timezone

    # -- tasks, notes, appointments ----------------------------------------------------------
    def search_tasks(self, contact_ids: list[str] | None, *, limit: int = TASK_SEARCH_LIMIT) -> list[dict]:
        """Every task of ``contact_ids`` (≤100 ids per call), or of the whole location when ``None``
        (the reconciliation's sweep), paged with ``skip`` until an empty page.

        Items are keyed ``id`` or ``_id`` (the spec's item type is malformed); both are read as ``id``.
        """

        def advance(page: list[dict], sent: dict) -> dict | None:
            return {**sent, "skip": sent["skip"] + len(page)} if page else None

        body: dict = {"limit": limit, "skip": 0}
        if contact_ids is not None:
            body["contactId"] = list(contact_ids)
        tasks: list[dict] = []
        path = f"/locations/{self.location_id}/tasks/search"
        for page, _ in self._paginate("POST", path, key="tasks", body=body, advance=advance, what="task search"):
            for task in page:
                if "id" not in task and "_id" in task:
                    task = {**{k: v for k, v in task.items() if k != "_id"}, "id": task["_id"]}
                tasks.append(task)
        return tasks

    def contact_notes(self, contact_id: str) -> list[dict]:
        resp = self.request("GET", f"/contacts/{contact_id}/notes")
        return self._list(resp, "GET /contacts/{id}/notes", "notes")

    def contact_appointments(self, contact_id: str) -> list[dict]:
        resp = self.request("GET", f"/contacts/{contact_id}/appointments")
        return self._list(resp, "GET /contacts/{id}/appointments", "events")

    def calendars(self) -> list[dict]:
        resp = self.request(
            "GET", "/calendars/", params={"locationId": self.location_id}, headers={"Version": CALENDARS_VERSION}
        )
        return self._list(resp, "GET /calendars/", "calendars")

    def calendar_events(self, calendar_id: str, start_ms: int, end_ms: int) -> list[dict]:
        params = {
            "locationId": self.location_id,
            "calendarId": calendar_id,
            "startTime": str(start_ms),
            "endTime": str(end_ms),
        }
        resp = self.request("GET", "/calendars/events", params=params, headers={"Version": CALENDARS_VERSION})
        return self._list(resp, "GET /calendars/events", "events")
