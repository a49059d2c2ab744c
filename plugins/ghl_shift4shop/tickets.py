"""Load CRM child streams into the store's CRM module: tasks and appointments as tickets, notes as
messages on one notes ticket per customer. Idempotent through id maps in the state database.

Only what changed is written (each store call costs half a second of its budget):
* a ticket is created for a new item, updated when its subject, status or text changed, and
  closed when the item was completed, cancelled or deleted in GHL;
* a note becomes a message; a deleted note's message is deleted. The store cannot edit a
  message ("Updating a message is not available, as an email is sent once the message is
  created"), so an edited note replaces its message: the old one is deleted and the new text
  added, keeping one message per note.

Statuses and departments cannot be created through the API: they are looked up by the names in
crm_to_store.yaml, and a missing one stops the stream with the list of names the store has.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import nh3

from ghl_shift4shop.batches import read_jsonl
from ghl_shift4shop.crm_config import CrmConfig
from ghl_shift4shop.crm_summary import INACTIVE_APPOINTMENTS, parse_when, plain_text
from ghl_shift4shop.errors import PermanentError
from ghl_shift4shop.mapping import payload_hash
from ghl_shift4shop.shift4shop.hook import Shift4ShopHook
from ghl_shift4shop.state import MappedId, StateStore
from ghl_shift4shop.text import cut, utf16_len
from ghl_shift4shop.transport import ApiError

log = logging.getLogger(__name__)

MAX_SUBJECT = 50
MAX_MESSAGE = 65535
DELETED = "deleted"
UNKNOWN = "?"  # a message id not learned yet
SENDER = "HighLevel sync"


def safe_html(fragment: str | None) -> str:
    """Note HTML made safe for the store's ticket view: scripts, handlers and styles removed."""
    return nh3.clean(str(fragment or ""))


def fit_message(text: str) -> tuple[str, bool]:
    """Cut to the store's 65,535 limit, saying so in the message itself (never silently)."""
    if utf16_len(text) <= MAX_MESSAGE:
        return text, False
    marker = "\n[…cut to fit the store's 65,535-character limit; the full note is in HighLevel]"
    return cut(text, MAX_MESSAGE - utf16_len(marker)) + marker, True


@dataclass(frozen=True)
class TicketSpec:
    """How one kind of item becomes a ticket."""

    stream: str
    subject: Callable[[dict], str]
    closed: Callable[[dict, datetime], bool]
    message: Callable[[dict], str]


def _task_message(task: dict) -> str:
    due = parse_when(task.get("dueDate"))
    body = safe_html(task.get("body"))
    return f"{body}\n\nDue: {due:%Y-%m-%d %H:%M} UTC" if due else body


def _appointment_message(event: dict) -> str:
    start, end = parse_when(event.get("startTime")), parse_when(event.get("endTime"))
    when = f"{start:%Y-%m-%d %H:%M}" + (f" – {end:%H:%M}" if end else "") + " UTC" if start else "unknown time"
    status = event.get("appointmentStatus") or event.get("status") or ""
    lines = [f"Appointment: {when}", f"Status: {status}"]
    if event.get("address"):
        lines.append(f"Where: {event['address']}")
    if event.get("notes"):
        lines.append(safe_html(event["notes"]))
    return "\n".join(lines)


TASK_TICKETS = TicketSpec(
    "task_tickets",
    subject=lambda t: plain_text(t.get("title")) or "Task",
    closed=lambda t, now: bool(t.get("completed")),
    message=_task_message,
)
APPOINTMENT_TICKETS = TicketSpec(
    "appointment_tickets",
    subject=lambda e: plain_text(e.get("title")) or "Appointment",
    closed=lambda e, now: (
        (parse_when(e.get("startTime")) or now) < now
        or str(e.get("appointmentStatus") or e.get("status") or "").lower() in INACTIVE_APPOINTMENTS
    ),
    message=_appointment_message,
)


@dataclass
class CrmStats:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


class CrmLoader:
    def __init__(self, hook: Shift4ShopHook, state: StateStore, cfg: CrmConfig, run_id: str):
        self.hook = hook
        self.state = state
        self.cfg = cfg
        self.run_id = run_id
        self.now = datetime.now(UTC)
        self._statuses: dict[str, str] | None = None
        self._departments: dict[str, str] | None = None

    # -- lookups -----------------------------------------------------------------------------
    def _named(self, kind: str, wanted: str) -> str:
        """CRM status or department id by name (cached in the id map)."""
        stream = f"crm_{kind}"
        key = wanted.strip().lower()
        cached = self.state.get_mapped(stream, [key]).get(key)
        if cached:
            return cached.target_id
        if kind == "status":
            rows, id_field, name_field = self.hook.list_all("/CRM/status"), "StatusId", "StatusName"
        else:
            rows, id_field, name_field = self.hook.list_all("/CRM/department"), "DepartmentId", "Name"
        found = {str(r.get(name_field) or "").strip().lower(): str(r.get(id_field)) for r in rows}
        if key not in found:
            names = ", ".join(sorted(str(r.get(name_field)) for r in rows)) or "none"
            raise PermanentError(
                f"the store has no CRM {kind} named {wanted!r} (it has: {names}); the API cannot create one, "
                "so set the name in include/mappings/crm_to_store.yaml or add it in the store admin"
            )
        self.state.record_mapped(stream, [MappedId(key, found[key], None, None)])
        return found[key]

    def _customers(self, contact_ids: list[str]) -> dict[str, MappedId]:
        return self.state.get_mapped("contacts", contact_ids)

    @staticmethod
    def _rows(refs: list[dict]):
        for ref in refs:
            yield from read_jsonl(ref["path"])

    # -- tickets (tasks, appointments) -------------------------------------------------------
    def load_tickets(self, refs: list[dict], spec: TicketSpec, stream_cfg) -> dict[str, int]:
        stats = CrmStats()
        open_id = self._named("status", stream_cfg.open_status)
        closed_id = self._named("status", stream_cfg.closed_status)
        dept_id = self._named("department", stream_cfg.department)
        for rows in _chunked(self._rows(refs), 200):
            contact_ids = [r["contact_id"] for r in rows]
            customers = self._customers(contact_ids)
            mapped = self.state.mapped_for_match_keys(spec.stream, contact_ids)
            by_item = {m.source_id: m for m in mapped}
            done: list[MappedId] = []
            for row in rows:
                cid = row["contact_id"]
                customer = customers.get(cid)
                if customer is None:
                    stats.add("skipped_no_customer", len(row["items"]))
                    continue
                present = set()
                for item in row["items"]:
                    present.add(item["id"])
                    closed = spec.closed(item, self.now)
                    ticket = {
                        "Subject": cut(spec.subject(item), MAX_SUBJECT),
                        "StatusID": int(closed_id if closed else open_id),
                    }
                    message, was_cut = fit_message(spec.message(item))
                    stats.add("messages_cut", int(was_cut))
                    digest = f"{payload_hash(ticket)[:16]}:{payload_hash({'m': message})[:16]}"
                    current = by_item.get(item["id"])
                    if current is None:
                        if closed:
                            continue  # never open a ticket for something already done
                        body = {
                            **ticket,
                            "CustomerID": int(customer.target_id),
                            "CustomerEmail": customer.match_key or "",
                            "DepartmentID": int(dept_id),
                            "CrmMessageList": [{"Message": message, "SenderName": SENDER}],
                        }
                        res = self.hook.create_one("/CRM", body)
                        self._check(res, "create ticket")
                        done.append(MappedId(item["id"], res.value, cid, digest))
                        stats.add("tickets_created")
                    elif current.payload_hash != digest:
                        old_ticket, _, old_message = (current.payload_hash or ":").partition(":")
                        if old_ticket != digest.split(":")[0]:
                            self._check(self.hook.update_one(f"/CRM/{current.target_id}", ticket), "update ticket")
                            stats.add("tickets_closed" if closed else "tickets_updated")
                        if old_message != digest.split(":")[1]:
                            self._update_first_message(current.target_id, message)
                            stats.add("messages_updated")
                        done.append(MappedId(item["id"], current.target_id, cid, digest))
                quarantined = set(row.get("quarantined_ids") or [])
                for m in mapped:
                    if m.match_key == cid and m.source_id not in present and m.source_id not in quarantined:
                        if m.payload_hash == DELETED:
                            continue
                        self._check(
                            self.hook.update_one(f"/CRM/{m.target_id}", {"StatusID": int(closed_id)}), "close ticket"
                        )
                        done.append(MappedId(m.source_id, m.target_id, cid, DELETED))
                        stats.add("tickets_closed")
            self.state.record_mapped(spec.stream, done)
        return stats.counts

    def _update_first_message(self, ticket_id: str, text: str) -> None:
        """The ticket's first message carries the item's text; messages cannot be edited, so replace it."""
        messages = self.hook.list_all(f"/CRM/{ticket_id}/message")
        if messages:
            first = min(messages, key=lambda m: int(m.get("MessageId") or 0))
            self._check(self.hook.delete_one(f"/CRM/{ticket_id}/message/{first['MessageId']}"), "delete message")
        self._check(
            self.hook.create_one(f"/CRM/{ticket_id}/message", {"Message": text, "SenderName": SENDER}), "add message"
        )

    # -- notes -------------------------------------------------------------------------------
    def load_notes(self, refs: list[dict], stream_cfg) -> dict[str, int]:
        stats = CrmStats()
        open_id = self._named("status", stream_cfg.open_status)
        dept_id = self._named("department", stream_cfg.department)
        for rows in _chunked(self._rows(refs), 200):
            contact_ids = [r["contact_id"] for r in rows]
            customers = self._customers(contact_ids)
            tickets = self.state.get_mapped("note_tickets", contact_ids)
            mapped = self.state.mapped_for_match_keys("note_messages", contact_ids)
            for row in rows:
                cid = row["contact_id"]
                customer = customers.get(cid)
                if customer is None:
                    stats.add("skipped_no_customer", len(row["items"]))
                    continue
                notes = sorted(row["items"], key=lambda n: (str(n.get("dateAdded") or ""), n["id"]))
                texts = {}
                for n in notes:
                    texts[n["id"]], was_cut = fit_message(safe_html(n.get("body")))
                    stats.add("messages_cut", int(was_cut))
                mine = {m.source_id: m for m in mapped if m.match_key == cid}
                done: list[MappedId] = []
                ticket = tickets.get(cid)
                if ticket is None:
                    if not notes:
                        continue
                    ticket_id = self._create_notes_ticket(customer, notes, texts, stream_cfg, open_id, dept_id)
                    self.state.record_mapped("note_tickets", [MappedId(cid, ticket_id, None, None)])
                    # The create answers only the CrmID: message ids are learned when first needed
                    # (an edit or a delete), which most notes never are. Saves a call per ticket.
                    for note in notes:
                        digest = payload_hash({"m": texts[note["id"]]})
                        done.append(MappedId(note["id"], f"{ticket_id}/{UNKNOWN}", cid, digest))
                    stats.add("tickets_created")
                    stats.add("messages_added", len(notes))
                    self.state.record_mapped("note_messages", done)
                    continue
                ticket_id = ticket.target_id
                present = set()
                for note in notes:
                    present.add(note["id"])
                    digest = payload_hash({"m": texts[note["id"]]})
                    current = mine.get(note["id"])
                    if current is None or current.payload_hash == DELETED:
                        res = self.hook.create_one(
                            f"/CRM/{ticket_id}/message", {"Message": texts[note["id"]], "SenderName": SENDER}
                        )
                        self._check(res, "add message")
                        done.append(MappedId(note["id"], f"{ticket_id}/{res.value}", cid, digest))
                        stats.add("messages_added")
                    elif current.payload_hash != digest:
                        # Messages cannot be edited: replace it, so the note keeps exactly one message.
                        old = self._message_path(current)
                        self._check(self.hook.delete_one(f"/CRM/{old}"), "delete message")
                        res = self.hook.create_one(
                            f"/CRM/{ticket_id}/message", {"Message": texts[note["id"]], "SenderName": SENDER}
                        )
                        self._check(res, "add message")
                        done.append(MappedId(note["id"], f"{ticket_id}/{res.value}", cid, digest))
                        stats.add("messages_updated")
                quarantined = set(row.get("quarantined_ids") or [])
                for m in mine.values():
                    if m.source_id in present or m.source_id in quarantined or m.payload_hash == DELETED:
                        continue
                    self._check(self.hook.delete_one(f"/CRM/{self._message_path(m)}"), "delete message")
                    done.append(MappedId(m.source_id, m.target_id, cid, DELETED))
                    stats.add("messages_deleted")
                self.state.record_mapped("note_messages", done)
        return stats.counts

    def _message_path(self, mapped: MappedId) -> str:
        """``<ticket>/message/<id>`` for a note's message, learning the id by its text if needed."""
        ticket_id, _, message_id = mapped.target_id.partition("/")
        if message_id == UNKNOWN:
            for msg in self.hook.list_all(f"/CRM/{ticket_id}/message"):
                if payload_hash({"m": str(msg.get("Message") or "")}) == mapped.payload_hash:
                    message_id = str(msg["MessageId"])
                    break
            else:
                raise ApiError("shift4shop", 200, f"ticket {ticket_id}: no message matches note {mapped.source_id}")
        return f"{ticket_id}/message/{message_id}"

    def _create_notes_ticket(self, customer: MappedId, notes, texts, stream_cfg, open_id, dept_id) -> str:
        body = {
            "Subject": cut(stream_cfg.ticket_subject, MAX_SUBJECT),
            "StatusID": int(open_id),
            "DepartmentID": int(dept_id),
            "CustomerID": int(customer.target_id),
            "CustomerEmail": customer.match_key or "",
            "CrmMessageList": [{"Message": texts[n["id"]], "SenderName": SENDER} for n in notes],
        }
        res = self.hook.create_one("/CRM", body)
        self._check(res, "create notes ticket")
        return res.value

    @staticmethod
    def _check(res, what: str) -> None:
        if not res.ok:
            raise ApiError("shift4shop", res.status, f"{what}: {res.message}")


def _chunked(iterable, size: int):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_crm_stream(
    stream: str, refs: list[dict], *, hook: Shift4ShopHook, state: StateStore, cfg: CrmConfig, run_id: str
) -> dict[str, int]:
    loader = CrmLoader(hook, state, cfg, run_id)
    stream_cfg = cfg.streams[stream]
    if stream == "notes":
        return loader.load_notes(refs, stream_cfg) if stream_cfg.tickets else {}
    if stream == "tasks":
        return loader.load_tickets(refs, TASK_TICKETS, stream_cfg) if stream_cfg.tickets else {}
    if stream == "appointments":
        return loader.load_tickets(refs, APPOINTMENT_TICKETS, stream_cfg) if stream_cfg.tickets else {}
    raise ValueError(f"unknown CRM stream {stream!r}")
