"""Simulator profiles: which reading of each unconfirmed API behaviour the simulators take.

Where ``../shared/specs`` marks a behaviour unconfirmed, undocumented or inferred, the
simulators can answer either way (a knob of their ``configure``). A profile is a full set of
those knobs:

* ``lenient``: the friendliest plausible reading (what the simulators did first);
* ``strict``: the harshest plausible reading of every such behaviour. The client must be right
  under both; the end-to-end, crash and fault tests run under each.

Every knob a profile names is set by both profiles, so applying one undoes the other. Knobs that
are not about an unconfirmed reading (rate limits on/off, latency, index lag) are not part of a
profile: tests and the sandbox set them separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_PROFILE", "PROFILES", "Profile", "apply_profile"]


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    ghl: dict[str, Any] = field(default_factory=dict)
    shift4shop: dict[str, Any] = field(default_factory=dict)


LENIENT = Profile(
    "lenient",
    "the friendliest plausible reading of every unconfirmed behaviour",
    ghl={
        # The 100-per-10-s window is a fixed one, restarting at the first request after it ended.
        "rate_window": "fixed",
        # GET /calendars/events returns the events overlapping [startTime, endTime].
        "events_window": "overlap",
        # POST /contacts/search items carry every contact field (firstName, lastName, address1, ...).
        "search_item_shape": "full",
        # Location task search: items keyed `id`; limit up to 100 (422 above), pages as asked.
        "task_search_id_key": "id",
        "task_search_max_limit": 100,
        "task_search_page_cap": None,
        # Error bodies exactly as the OpenAPI DTOs: {"statusCode", "message"[, "error"]}.
        "error_body_style": "documented",
        "send_retry_after": True,
        "location_timezone": "America/New_York",
    },
    shift4shop={
        # An array POST /Customers creates each item and answers one result per item.
        "array_post": "per_item",
        # Bulk PUT naming a deleted customer: 206 with that item's own 404 (the others applied).
        "bulk_put_missing": "per_item",
        # Every error answer carries the JSON error array.
        "error_bodies": "json",
        # Per-item results of multi-item writes come back in request order.
        "result_order": "request",
        # GET /Customers?email= matches the whole address (case-insensitively).
        "email_filter": "exact",
        # A second customer with an e-mail already in the store is refused (400).
        "unique_emails": True,
        # CRM messages are stored exactly as sent.
        "normalize_crm_messages": False,
        "send_retry_after": True,
    },
)

STRICT = Profile(
    "strict",
    "the harshest plausible reading of every unconfirmed behaviour",
    ghl={
        # A sliding window (its kind is undocumented): no 10-s span may hold more than 100.
        "rate_window": "sliding",
        # GET /calendars/events returns only the events wholly inside [startTime, endTime] (which
        # ones it returns is undocumented): an appointment across a query's end is in no answer.
        "events_window": "inside",
        # The shape of HighLevel's own search-doc example: `address` (not `address1`), only the
        # lower-cased names (no firstName/lastName/name/contactName).
        "search_item_shape": "doc_example",
        # Task search items keyed `_id`; no documented maximum, so any limit is accepted, but a
        # page never holds more than 25 (the documented default).
        "task_search_id_key": "_id",
        "task_search_max_limit": None,
        "task_search_page_cap": 25,
        # Error bodies vary between the documented DTO and the variants seen in the wild:
        # {"error": "...", "status": 400} and {"status": 400, "message": "...", "name": "HttpException"}.
        "error_body_style": "varied",
        # 429 without Retry-After (its presence is undocumented).
        "send_retry_after": False,
        # A location far from UTC, so zone-less appointment times read as UTC are visibly wrong.
        "location_timezone": "Pacific/Chatham",
    },
    shift4shop={
        # Array POST is undocumented: 400 with no content, nothing created.
        "array_post": "reject_no_content",
        # "One or more Customer records were not found.": one whole-request 404, none applied.
        "bulk_put_missing": "whole_404_apply_none",
        # 400/404/500 answers sometimes without a body, sometimes with an HTML page.
        "error_bodies": "varied",
        # Per-item results in an order of the store's choosing (match them by Value).
        "result_order": "shuffled",
        # The e-mail filter matches partially (`ann@x.com` also finds `joann@x.com`).
        "email_filter": "contains",
        # Nothing stops a second customer with the same e-mail.
        "unique_emails": False,
        # Message text normalised by the store (whitespace collapsed, HTML re-serialised).
        "normalize_crm_messages": True,
        "send_retry_after": False,
    },
)

PROFILES: dict[str, Profile] = {p.name: p for p in (LENIENT, STRICT)}
DEFAULT_PROFILE = "lenient"


def apply_profile(name: str, *, ghl=None, shift4shop=None) -> Profile:
    """Configure the given simulator states (``GhlState``, ``Shift4ShopState``) to a profile."""
    try:
        profile = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
    if ghl is not None:
        ghl.configure(**profile.ghl)
    if shift4shop is not None:
        shift4shop.configure(**profile.shift4shop)
    return profile
