"""Calendars, events and appointments (ghl-api.md §5) for the GHL simulator's state.

Owns the location time zone's use (``location_timezone``: zone-less times are read in it, event
times are rendered with its offset, or zone-less for ``GET /contacts/{id}/appointments``), the
calendar and event stores (event times kept as epoch-ms instants), the calendar list and the
event window (``GET /calendars/events``), the appointment create/update/get/delete rules with
their defaults, a contact's appointments, and the admin load/dump of calendars and events.
"""

from __future__ import annotations

import json
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox.ghl.base import link, new_id, now_ms, parse_ms, unlink
from sandbox.ghl.dto import Kind, dto_errors
from sandbox.ghl.errors import ApiError, not_found, unprocessable

__all__ = ["APPOINTMENT_STATUSES", "MEETING_LOCATION_TYPES", "CalendarsMixin", "check_timezone"]

APPOINTMENT_STATUSES: tuple[str, ...] = ("new", "confirmed", "cancelled", "showed", "noshow", "invalid")
MEETING_LOCATION_TYPES: tuple[str, ...] = ("custom", "zoom", "gmeet", "phone", "address", "ms_teams", "google")

_APPOINTMENT_EDIT_FIELDS: dict[str, Kind] = {
    "title": "string",
    "meetingLocationType": MEETING_LOCATION_TYPES,
    "meetingLocationId": "string",
    "overrideLocationConfig": "boolean",
    "appointmentStatus": APPOINTMENT_STATUSES,
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
_APPOINTMENT_CREATE_FIELDS: dict[str, Kind] = {
    **_APPOINTMENT_EDIT_FIELDS,
    "locationId": "string",
    "contactId": "string",
}
_EVENT_TIME_KEYS = ("startTime", "endTime", "dateAdded", "dateUpdated")


def check_timezone(name: Any) -> str:
    """``name`` if it is an IANA zone this machine knows (``Pacific/Chatham``), else a 400."""
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ApiError(400, f"unknown time zone: {name}") from exc
    return str(name)


class CalendarsMixin:
    """Calendars and their events (part of ``GhlState``).

    Uses ``_owned_contact`` / ``_touch_contact`` / ``_check_owner`` and the contact store (``ContactsMixin``).
    """

    lock: threading.RLock
    location_id: str
    location_timezone: str
    events_window: str
    _docs: dict[str, dict]

    def _init_calendars(self) -> None:
        # Docs are kept in API read shape, except that event times (startTime, endTime, dateAdded,
        # dateUpdated) are epoch-ms ints, rendered per route.
        self._calendars: dict[str, dict] = {}
        self._events: dict[str, dict] = {}
        self._events_by_contact: dict[str, dict[str, None]] = {}
        # Per calendar: its events sorted by start, their starts, and the longest event; made on the
        # first window read after any event changed (a 1M-contact location has ~450k events).
        self._event_index: dict[str, tuple[list[int], list[dict], int]] | None = None

    def _clear_calendars(self) -> None:
        for table in (self._calendars, self._events, self._events_by_contact):
            table.clear()
        self._event_index = None

    def _calendar_index(self, calendar_id: str) -> tuple[list[int], list[dict], int]:
        if self._event_index is None:
            grouped: dict[str, list[dict]] = {}
            for ev in self._events.values():
                grouped.setdefault(ev.get("calendarId") or "", []).append(ev)
            self._event_index = {}
            for cal, evs in grouped.items():
                evs.sort(key=lambda ev: (ev["startTime"], ev["id"]))
                longest = max(max(ev["endTime"], ev["startTime"] + 1) - ev["startTime"] for ev in evs)
                self._event_index[cal] = ([ev["startTime"] for ev in evs], evs, longest)
        return self._event_index.get(calendar_id, ([], [], 0))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.location_timezone)

    def location(self, location_id: str) -> dict:
        """The sub-account as ``GET /locations/{id}`` shows it (GetLocationByIdSchema, the fields we keep)."""
        return {"id": location_id, "name": "Simulated sub-account", "country": "US", "timezone": self.location_timezone}

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
            if calendar_id is not None:  # only events that can overlap: started at most `longest` before
                starts, evs, longest = self._calendar_index(calendar_id)
                candidates = evs[bisect_left(starts, start_ms - longest) : bisect_right(starts, end_ms)]
            else:
                candidates = list(self._events.values())
            hits = []
            for ev in candidates:
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
                if self.events_window == "inside":
                    if start_ms <= start and end <= end_ms:
                        hits.append(ev)
                # An event [start, end) overlaps the closed window; a zero-length one counts at its start.
                elif start <= end_ms and max(end, start + 1) > start_ms:
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
        self._event_index = None
        old = self._events.get(ev["id"])
        if old is not None:
            unlink(self._events_by_contact, old.get("contactId"), ev["id"])
        self._events[ev["id"]] = ev
        if ev.get("contactId"):
            link(self._events_by_contact, ev["contactId"], ev["id"])

    def _calendar_in(self, calendar_id: str, location_id: str) -> dict:
        cal = self._calendars.get(calendar_id)
        if cal is None or cal.get("locationId") != location_id:
            raise ApiError(400, f"Calendar with id {calendar_id} not found")
        return cal

    def _appointment_errors(self, body: dict, *, create: bool) -> list[str]:
        fields = _APPOINTMENT_CREATE_FIELDS if create else _APPOINTMENT_EDIT_FIELDS
        required = ("calendarId", "locationId", "contactId", "startTime") if create else ()
        errors = dto_errors(body, fields, required=required)
        start = parse_ms(body.get("startTime"), self.tz) if isinstance(body.get("startTime"), str) else None
        end = parse_ms(body.get("endTime"), self.tz) if isinstance(body.get("endTime"), str) else None
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
            start = parse_ms(body["startTime"], self.tz)
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
                "endTime": parse_ms(body["endTime"], self.tz) if body.get("endTime") else start + _slot_ms(cal),
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
                ev["startTime"] = parse_ms(body["startTime"], self.tz)
                ev["endTime"] = ev["startTime"] + duration  # a moved appointment keeps its length
            if body.get("endTime"):
                ev["endTime"] = parse_ms(body["endTime"], self.tz)
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
            self._event_index = None
            unlink(self._events_by_contact, ev.get("contactId"), eid)
            self._touch_contact(ev.get("contactId"))

    # ---- bulk / admin -----------------------------------------------------------------------------

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
                times = {k: parse_ms(doc.get(k), tz) for k in _EVENT_TIME_KEYS}
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

    def all_calendars(self) -> list[dict]:
        with self.lock:
            return [json.loads(json.dumps(c)) for c in sorted(self._calendars.values(), key=lambda c: c["id"])]

    def all_events(self, offset: int = 0, limit: int | None = None) -> list[dict]:
        """Every event as CalendarEventDTO (ISO times with the location's offset), by startTime, id;
        ``offset``/``limit``: only that slice is rendered."""
        with self.lock:
            evs = sorted(self._events.values(), key=lambda ev: (ev["startTime"], ev["id"]))
            return [self._render_event(ev) for ev in evs[offset : None if limit is None else offset + limit]]

    def count_events(self) -> int:
        with self.lock:
            return len(self._events)


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
