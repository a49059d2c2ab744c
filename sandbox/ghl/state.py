"""In-memory state of the GHL simulator: ``GhlState``, composed of one mixin per concern.

``GhlState`` owns the configuration (``CONFIG_KEYS``: constructor defaults, ``config()``,
``configure()`` with one value check per key), including the knobs that pick a reading of what the
spec leaves open (``rate_window``, ``search_item_shape``, ``task_search_*``, ``error_body_style``, also
``send_retry_after`` and ``location_timezone``: ``sandbox/profiles.py`` sets them all, and the
defaults are its lenient profile). It also owns the one re-entrant ``self.lock`` every concern
shares, the request log, the fault plan (``sandbox/faults.py``), ``reset()`` and the seed files.
Everything else lives with its concern:

- ``tokens.py``: tokens, OAuth clients, grants, refresh rotation (``TokensMixin``);
- ``ratelimit.py``: per-(client, location) buckets and the ``X-RateLimit-*`` headers (``RateLimitMixin``);
- ``contacts.py``: contact storage, normalisation, duplicate detection, CRUD (``ContactsMixin``);
- ``search.py``: the lagging search index, filters, cursors, the search/list/business engines (``SearchMixin``);
- ``tasks.py``, ``notes.py``, ``calendars.py``: the contacts' child objects and the calendars with
  their events (``TasksMixin``, ``NotesMixin``, ``CalendarsMixin``);
- shared by all of them: ``errors.py`` (``ApiError``, its factories, the error-body styles), ``base.py`` (ids,
  timestamps, link tables) and ``dto.py`` (child write-body validation).

``app.py`` only turns HTTP into calls on this object. Every public method takes ``self.lock``; the
lock is re-entrant so methods may call each other, across concerns too. Rule violations are raised
as ``ApiError`` carrying the exact GHL error body. The names below are re-exported so
``from sandbox.ghl.state import ...`` keeps working for everything that was public here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox.common import RequestLog
from sandbox.faults import FaultPlan
from sandbox.ghl.base import is_int, iso_ms, new_id, now_ms, parse_ms
from sandbox.ghl.calendars import APPOINTMENT_STATUSES, MEETING_LOCATION_TYPES, CalendarsMixin, check_timezone
from sandbox.ghl.contacts import CREATE_FIELDS, UPDATE_FIELDS, UPSERT_FIELDS, ContactsMixin, derive, normalize_phone
from sandbox.ghl.errors import ERROR_BODY_STYLES, ApiError, ErrorBodiesMixin, not_found, unprocessable
from sandbox.ghl.notes import NOTE_KEYS, NotesMixin
from sandbox.ghl.ratelimit import DAY_S, RateDecision, RateLimitMixin
from sandbox.ghl.search import (
    DEFAULT_SORT,
    FILTER_FIELDS,
    MAX_FILTER_VALUE_LEN,
    MAX_PAGE_LIMIT,
    PAGE_PAGING_CAP,
    SEARCH_ITEM_SHAPES,
    SORTABLE_FIELDS,
    SearchMixin,
    SearchParams,
)
from sandbox.ghl.tasks import (
    DEFAULT_TASK_SEARCH_LIMIT,
    MAX_TASK_SEARCH_CONTACTS,
    MAX_TASK_SEARCH_LIMIT,
    TASK_KEYS,
    TASK_SEARCH_ID_KEYS,
    TasksMixin,
)
from sandbox.ghl.tokens import ALL_SCOPES, OAuthClient, Token, TokensMixin, oauth_error

__all__ = [
    "ALL_SCOPES",
    "APPOINTMENT_STATUSES",
    "CONFIG_KEYS",
    "CREATE_FIELDS",
    "DAY_S",
    "DEFAULT_SORT",
    "DEFAULT_TASK_SEARCH_LIMIT",
    "FILTER_FIELDS",
    "MAX_FILTER_VALUE_LEN",
    "MAX_PAGE_LIMIT",
    "MAX_TASK_SEARCH_CONTACTS",
    "MAX_TASK_SEARCH_LIMIT",
    "MEETING_LOCATION_TYPES",
    "NOTE_KEYS",
    "PAGE_PAGING_CAP",
    "PUBLISHED_VERSIONS",
    "SORTABLE_FIELDS",
    "TASK_KEYS",
    "UPDATE_FIELDS",
    "UPSERT_FIELDS",
    "ApiError",
    "GhlState",
    "OAuthClient",
    "RateDecision",
    "SearchParams",
    "Token",
    "derive",
    "iso_ms",
    "new_id",
    "normalize_phone",
    "not_found",
    "now_ms",
    "oauth_error",
    "parse_ms",
    "unprocessable",
]

# Values the Versioning page publishes and live probes confirmed on v2 paths ("legacy" is the v1 API).
PUBLISHED_VERSIONS: frozenset[str] = frozenset({"v3", "2023-02-21", "2021-07-28", "2021-04-15"})
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
    # Readings of behaviours the spec leaves open (sandbox/profiles.py names a value for each).
    "rate_window",
    "events_window",
    "search_item_shape",
    "task_search_id_key",
    "task_search_max_limit",
    "task_search_page_cap",
    "error_body_style",
    # Test knobs: search answers that leave contacts out (a truncated answer, for the reconcile brake).
    "search_hide_share",
    "search_hide_keeps_total",
)


def _choice(*values: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in values:
            raise ValueError(f"must be one of {', '.join(map(repr, values))}, not {value!r}")
        return value

    return check


def _share(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"must be a number from 0 up to (not including) 1, not {value!r}")
    return float(value)


def _positive_int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    if not is_int(value) or value < 1:
        raise ValueError(f"must be a positive integer or null, not {value!r}")
    return int(value)


# Each key's converter: it returns the value to store or raises ValueError/TypeError (-> 400).
_CONFIG_TYPES: dict[str, Callable[[Any], Any]] = {
    "rate_limit": bool,
    "burst_max": int,
    "burst_window_ms": int,
    "daily_limit": int,
    "send_retry_after": bool,
    "index_lag_s": float,
    "latency_s": float,
    "allow_duplicates": bool,
    "touch_contact_on_child_write": bool,
    "location_timezone": check_timezone,
    "access_token_ttl_s": float,
    "refresh_reuse_window_s": float,
    "rate_window": _choice("fixed", "sliding"),
    "events_window": _choice("overlap", "inside"),
    "search_item_shape": _choice(*SEARCH_ITEM_SHAPES),
    "task_search_id_key": _choice(*TASK_SEARCH_ID_KEYS),
    "task_search_max_limit": _positive_int_or_none,
    "task_search_page_cap": _positive_int_or_none,
    "error_body_style": _choice(*ERROR_BODY_STYLES),
    "search_hide_share": _share,
    "search_hide_keeps_total": bool,
}


def _checked(key: str, value: Any) -> Any:
    """``value`` converted for config ``key``, or a 400 naming the key and what it accepts."""
    try:
        return _CONFIG_TYPES[key](value)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, f"config {key}: {exc}") from None


class GhlState(
    TokensMixin,
    RateLimitMixin,
    ContactsMixin,
    SearchMixin,
    TasksMixin,
    NotesMixin,
    CalendarsMixin,
    ErrorBodiesMixin,
):
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
        rate_window: str = "fixed",
        events_window: str = "overlap",
        search_item_shape: str = "full",
        task_search_id_key: str = "id",
        task_search_max_limit: int | None = MAX_TASK_SEARCH_LIMIT,
        task_search_page_cap: int | None = None,
        error_body_style: str = "documented",
        search_hide_share: float = 0.0,
        search_hide_keeps_total: bool = False,
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
        self.location_timezone = check_timezone(location_timezone)
        # OAuth (§1.2): access-token lifetime, and how long identical refreshes get the same pair.
        self.access_token_ttl_s = access_token_ttl_s
        self.refresh_reuse_window_s = refresh_reuse_window_s
        # Unconfirmed readings (BEHAVIOR.md, "Lenient and strict readings"); the defaults are the
        # lenient profile's, which is what the simulator always did.
        self.rate_window: str = _checked("rate_window", rate_window)
        # GET /calendars/events: which events a [startTime, endTime] query returns is not documented:
        # those overlapping it ("overlap"), or only those wholly inside it ("inside").
        self.events_window: str = _checked("events_window", events_window)
        self.search_item_shape: str = _checked("search_item_shape", search_item_shape)
        self.task_search_id_key: str = _checked("task_search_id_key", task_search_id_key)
        self.task_search_max_limit: int | None = _checked("task_search_max_limit", task_search_max_limit)
        self.task_search_page_cap: int | None = _checked("task_search_page_cap", task_search_page_cap)
        self.error_body_style: str = _checked("error_body_style", error_body_style)
        # A truncated search (test knob, not a reading of the spec): this share of the contacts
        # (a fixed choice per contact id) is left out of every POST /contacts/search answer;
        # ``total`` counts them only when ``search_hide_keeps_total`` (else it matches the short list).
        self.search_hide_share: float = _checked("search_hide_share", search_hide_share)
        self.search_hide_keeps_total: bool = bool(search_hide_keeps_total)

        self.lock = threading.RLock()
        self.request_log = RequestLog()
        self.faults = FaultPlan()
        self._init_tokens(tokens)
        self._init_rate_limits()
        self._init_contacts()
        self._init_search()
        self._init_tasks()
        self._init_notes()
        self._init_calendars()
        self._init_error_bodies()

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

    # ---- config ---------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in CONFIG_KEYS}

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change config keys (all or none: every value is checked first; a bad one is a 400)."""
        unknown = sorted(set(changes) - set(CONFIG_KEYS))
        if unknown:
            raise ApiError(400, f"unknown config key(s): {', '.join(unknown)}")
        values = {k: _checked(k, v) for k, v in changes.items()}
        with self.lock:
            for k, v in values.items():
                setattr(self, k, v)
            return self.config()

    def reset(self) -> None:
        """Drop all contacts, their tasks/notes, calendars, events, pending index writes, rate-limit
        counters, the error-body rotation and the fault plan (tokens, OAuth clients and their grants,
        and config stay)."""
        with self.lock:
            self._clear_tasks()
            self._clear_notes()
            self._clear_calendars()
            self._clear_contacts()
            self._clear_search()
            self._buckets.clear()
            self._clear_error_bodies()
            self.faults.clear()
