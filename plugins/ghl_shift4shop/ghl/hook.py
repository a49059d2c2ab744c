"""HighLevel (LeadConnector) API v2 client on the ``ghl_default`` connection.

Quirks it copes with are listed in BEHAVIOR.md beside this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import requests
from airflow.sdk.log import mask_secret

from ghl_shift4shop.settings import GHL_CONN_ID
from ghl_shift4shop.transport import ApiError, ApiHook, AuthError, DailyBudgetLow

CONTACTS_VERSION = "2021-07-28"
CALENDARS_VERSION = "2021-04-15"  # every calendars operation declares this Version
TASK_SEARCH_LIMIT = 100  # undocumented cap; 100 is what the simulator enforces (see BEHAVIOR.md)
# Documented: 100 requests per 10 s per app and location. The budget (shared by every process of
# the location, see budget.py) allows 10 in any 1.1 s and 90 in any 10 s: at most 90 of the 100
# in any 10-second span, fixed or sliding, leaving 10 for clock skew between hosts and jitter.
BURST_CAPACITY = 10
BURST_RATE_PER_S = 9.0
RATE_WINDOW_S = 10


def _token_expired(resp) -> bool:
    """A 401 that a refresh can cure (not a missing scope, a wrong location or a Version error)."""
    try:
        message = str(resp.json().get("message", ""))
    except (ValueError, AttributeError):
        message = resp.text
    lowered = message.lower()
    return "jwt" in lowered or "expired" in lowered or "invalid token" in lowered


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
        conn_id: str = GHL_CONN_ID,
        *,
        burst: float = BURST_CAPACITY,
        rate_per_s: float = BURST_RATE_PER_S,
        window_s: float = RATE_WINDOW_S,
        daily_reserve: int = 2000,
        token_state=None,
        **kwargs,
    ):
        super().__init__(conn_id, **kwargs)
        self.burst, self.rate_per_s = burst, rate_per_s
        self.budget_windows_s = (window_s,)
        self.daily_remaining: int | None = None
        self.token_state = token_state
        self.tokens = None  # a TokenStore in OAuth mode
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
            from ghl_shift4shop.settings import load_settings
            from ghl_shift4shop.state import StateStore

            self.tokens = TokenStore(self.token_state or StateStore(load_settings().state_url), extra)
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
        window_max = _int_header(resp, "X-RateLimit-Max")
        # Fewer left than a tenth of the server's window (the headroom the budget keeps) means
        # something else spends this location's allowance too: every process holds off a little.
        low_water = min(self.burst, max(1, window_max // 10)) if window_max else None
        self.budget.observe_remaining(remaining, low_water=low_water)
        daily = _int_header(resp, "X-RateLimit-Daily-Remaining")
        if daily is not None:
            self.daily_remaining = daily

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

    # -- errors ------------------------------------------------------------------------------
    def _raise_for(self, resp, what: str) -> None:
        try:
            body = resp.json()
            message = body.get("message", body) if isinstance(body, dict) else body
        except ValueError:
            message = resp.text[:300]
        if isinstance(message, list):  # 422 bodies carry a list of messages
            message = "; ".join(map(str, message))
        error_cls = AuthError if resp.status_code in (401, 403) else ApiError
        raise error_cls("ghl", resp.status_code, f"{what}: {message}")

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

    # -- contacts ----------------------------------------------------------------------------
    def search_contacts_page(self, body: dict) -> SearchPage:
        resp = self.request("POST", "/contacts/search", json=body)
        data = self._json(resp, "POST /contacts/search")
        contacts = data.get("contacts")
        if not isinstance(contacts, list):
            raise ApiError("ghl", resp.status_code, "POST /contacts/search: no contacts list")
        return SearchPage(contacts, data.get("total"))

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
        seen_cursors: set[str] = set()
        while True:
            page = self.search_contacts_page(body)
            yield page
            if len(page.contacts) < page_limit:
                return
            cursor = page.contacts[-1].get("searchAfter")
            if not cursor:
                raise ApiError("ghl", 200, "search page is full but its last contact carries no searchAfter cursor")
            key = repr(cursor)
            if key in seen_cursors:
                raise ApiError("ghl", 200, f"search returned a cursor it already returned ({key}); stopping")
            seen_cursors.add(key)
            body = {**body, "searchAfter": cursor}

    def get_contact(self, contact_id: str) -> dict:
        resp = self.request("GET", f"/contacts/{contact_id}")
        return self._json(resp, "GET /contacts/{id}")["contact"]

    # -- tasks, notes, appointments ----------------------------------------------------------
    def search_tasks(self, contact_ids: list[str], *, limit: int = TASK_SEARCH_LIMIT) -> list[dict]:
        """Every task of ``contact_ids`` (≤100 ids per call), paged with ``skip``."""
        tasks: list[dict] = []
        skip = 0
        while True:
            body = {"contactId": list(contact_ids), "limit": limit, "skip": skip}
            resp = self.request("POST", f"/locations/{self.location_id}/tasks/search", json=body)
            page = self._json(resp, "POST /locations/{id}/tasks/search").get("tasks")
            if not isinstance(page, list):
                raise ApiError("ghl", resp.status_code, "task search: no tasks list")
            # The spec types items as "array of arrays"; the live API returns task objects.
            tasks.extend(t for t in page if isinstance(t, dict))
            if len(page) < limit:
                return tasks
            skip += len(page)

    def contact_notes(self, contact_id: str) -> list[dict]:
        resp = self.request("GET", f"/contacts/{contact_id}/notes")
        notes = self._json(resp, "GET /contacts/{id}/notes").get("notes")
        if not isinstance(notes, list):
            raise ApiError("ghl", resp.status_code, "GET /contacts/{id}/notes: no notes list")
        return notes

    def contact_appointments(self, contact_id: str) -> list[dict]:
        resp = self.request("GET", f"/contacts/{contact_id}/appointments")
        events = self._json(resp, "GET /contacts/{id}/appointments").get("events")
        if not isinstance(events, list):
            raise ApiError("ghl", resp.status_code, "GET /contacts/{id}/appointments: no events list")
        return events

    def calendars(self) -> list[dict]:
        resp = self.request(
            "GET", "/calendars/", params={"locationId": self.location_id}, headers={"Version": CALENDARS_VERSION}
        )
        return self._json(resp, "GET /calendars/").get("calendars") or []

    def calendar_events(self, calendar_id: str, start_ms: int, end_ms: int) -> list[dict]:
        params = {
            "locationId": self.location_id,
            "calendarId": calendar_id,
            "startTime": str(start_ms),
            "endTime": str(end_ms),
        }
        resp = self.request("GET", "/calendars/events", params=params, headers={"Version": CALENDARS_VERSION})
        return self._json(resp, "GET /calendars/events").get("events") or []
