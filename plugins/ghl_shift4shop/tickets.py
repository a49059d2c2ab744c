"""Load CRM child streams into the store's CRM module: tasks and appointments as tickets, notes as
messages on one notes ticket per customer. Idempotent through id maps in the state database.

Off by default: Shift4Shop e-mails the customer when a CRM message is created, so each of these
streams is an explicit choice in ``crm_to_store.yaml`` (see ``crm_config.py``).

Only what changed is written (each store call costs half a second of its budget):
* a ticket is created for a new item, updated when its subject, status or text changed, and
  closed when the item was completed, cancelled or deleted in GHL;
* a note becomes a message; a deleted note's message is deleted. The store cannot edit a
  message ("Updating a message is not available, as an email is sent once the message is
  created"), so an edited note replaces its message: the old one is deleted and the new text
  added, keeping one message per note.

Never a second ticket or message for one item: each id is recorded the moment the store answers,
an intent is stored before each create, and a create whose answer never came is looked up (by
customer, subject, sender and text read as plain text, since the store may normalise whitespace
and HTML) before anything is sent again. When the lookup finds nothing, the contact's row is held
and loaded first on the next run, after the store has had time to finish a late write. Rows of a
contact whose customer does not exist yet are held the same way.

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
from ghl_shift4shop.faultpoints import checkpoint
from ghl_shift4shop.idmaps import (
    GONE,
    CustomerLink,
    CustomerMap,
    MessageLink,
    MessageMap,
    NamedIds,
    NoteTicketMap,
    TicketLink,
    TicketMap,
)
from ghl_shift4shop.mapping import payload_hash
from ghl_shift4shop.shift4shop.hook import Shift4ShopHook
from ghl_shift4shop.state import StateStore
from ghl_shift4shop.text import cut, utf16_len
from ghl_shift4shop.transport import AmbiguousWriteError, ApiError

log = logging.getLogger(__name__)

MAX_SUBJECT = 50
MAX_MESSAGE = 65535
SENDER = "HighLevel sync"
TICKET_STREAMS = ("task_tickets", "appointment_tickets", "note_tickets")
NO_CUSTOMER = "the contact's customer is not in the store yet"
UNSETTLED = "a create's answer never came; looked up on the next run"


def same_text(a: str | None, b: str | None) -> bool:
    """Equal as a reader sees them: the store may collapse whitespace and re-serialise HTML."""
    return plain_text(a) == plain_text(b)


class Unsettled(Exception):
    """A create timed out and a lookup did not find it: it may still land. Try on the next run."""


class TicketGone(Exception):
    """The store answered 404 for a ticket the sync mapped: a merchant deleted it."""


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

    stream: str  # the id map of its tickets
    child: str  # the GHL stream the items come from (held rows are kept under it)
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
    "tasks",
    subject=lambda t: plain_text(t.get("title")) or "Task",
    closed=lambda t, now: bool(t.get("completed")),
    message=_task_message,
)
APPOINTMENT_TICKETS = TicketSpec(
    "appointment_tickets",
    "appointments",
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
        self.customers = CustomerMap(state)
        self.stats = CrmStats()
        self._known_tickets: set[str] | None = None
        self._pending: dict[str, dict[str, dict]] = {}

    # -- lookups -----------------------------------------------------------------------------
    def _named(self, kind: str, wanted: str) -> str:
        """CRM status or department id by name (cached in the id map)."""
        names = NamedIds(self.state, f"crm_{kind}")
        key = wanted.strip().lower()
        cached = names.get([key]).get(key)
        if cached:
            return cached
        if kind == "status":
            rows, id_field, name_field = self.hook.list_all("/CRM/status"), "StatusId", "StatusName"
        else:
            rows, id_field, name_field = self.hook.list_all("/CRM/department"), "DepartmentId", "Name"
        found = {str(r.get(name_field) or "").strip().lower(): str(r.get(id_field)) for r in rows}
        if key not in found:
            listed = ", ".join(sorted(str(r.get(name_field)) for r in rows)) or "none"
            raise PermanentError(
                f"the store has no CRM {kind} named {wanted!r} (it has: {listed}); the API cannot create one, "
                "so set the name in include/mappings/crm_to_store.yaml or add it in the store admin"
            )
        names.record({key: found[key]})
        return found[key]

    def _rows(self, stream: str, refs: list[dict]):
        """Rows held by an earlier run first (unless this run fetched the contact again), then this run's."""
        held = self.state.held_rows(stream)
        if held:  # only held contacts are compared: memory is the held rows, not the run's contacts
            held_ids = {row["contact_id"] for row in held}
            fetched = {r["contact_id"] for ref in refs for r in read_jsonl(ref["path"]) if r["contact_id"] in held_ids}
            yield from (row for row in held if row["contact_id"] not in fetched)
        for ref in refs:
            yield from read_jsonl(ref["path"])

    def _each_row(self, stream: str, refs: list[dict], handle) -> None:
        """Call ``handle(rows, customers)`` per chunk; hold the rows it cannot finish, release the rest."""
        for rows in _chunked(self._rows(stream, refs), 200):
            customers = self.customers.get(r["contact_id"] for r in rows)
            ready = [r for r in rows if r["contact_id"] in customers]
            missing = [r for r in rows if r["contact_id"] not in customers]
            if missing:
                self.state.hold_children(stream, missing, NO_CUSTOMER)
                self.stats.add("held", len(missing))
            unsettled = handle(ready, customers)
            if unsettled:
                self.state.hold_children(stream, unsettled, UNSETTLED)
                self.stats.add("held", len(unsettled))
            done = {r["contact_id"] for r in ready} - {r["contact_id"] for r in unsettled}
            self.state.release_children(stream, done)
            checkpoint("mid_crm")

    # -- creates that never happen twice -----------------------------------------------------
    def _create(self, stream: str, source_id: str, resource: str, body: dict, find) -> str:
        """POST ``body`` unless ``find()`` says an earlier, unanswered create of it landed.

        The intent stays in the state database until the caller has recorded the returned id
        (:meth:`_recorded`). Raises :class:`Unsettled` when the answer never came and the
        lookup finds nothing: the create may still land, so nothing is sent again this run.
        """
        pending = self._pending_of(stream)
        if source_id in pending:
            found = find()
            if found:
                self.stats.add("settled_by_lookup")
                return found
        self.state.intend(stream, {source_id: {"resource": resource}}, self.run_id)
        pending[source_id] = {}
        try:
            res = self.hook.create_one(resource, body)
        except AmbiguousWriteError:
            found = find()
            if found:
                self.stats.add("settled_by_lookup")
                return found
            raise Unsettled(f"{resource}: {source_id}") from None
        checkpoint("mid_crm_create")  # the store has it, the id map not yet
        if not res.ok:
            self._recorded(stream, source_id)  # the store answered: nothing landed
        self._check(res, f"POST {resource}")
        if resource == "/CRM":
            self._known_ticket_ids().add(res.value)  # never adopted for another item by a lookup
        return res.value

    def _pending_of(self, stream: str) -> dict[str, dict]:
        """Creates of ``stream`` an earlier run sent without recording their answer (read once)."""
        if stream not in self._pending:
            self._pending[stream] = self.state.pending(stream)
        return self._pending[stream]

    def _recorded(self, stream: str, source_id: str) -> None:
        self.state.settle(stream, [source_id])
        self._pending.get(stream, {}).pop(source_id, None)

    def _known_ticket_ids(self) -> set[str]:
        if self._known_tickets is None:
            known: set[str] = set()
            for stream in TICKET_STREAMS:
                known |= {t.partition("/")[0] for t in self.state.target_ids(stream)}
            self._known_tickets = known
        return self._known_tickets

    def _find_ticket(self, customer_id: str, subject: str, first_message: str) -> str | None:
        """An unmapped ticket of ours for this customer with this subject and first message."""
        for ticket in sorted(self.hook.list_all("/CRM", custid=customer_id), key=lambda t: int(t["CrmID"])):
            if str(ticket["CrmID"]) in self._known_ticket_ids() or not same_text(ticket.get("Subject"), subject):
                continue
            messages = ticket.get("CrmMessageList")
            if messages is None:
                messages = self.hook.list_all(f"/CRM/{ticket['CrmID']}/message")
            first = min(messages, key=lambda m: int(m.get("MessageId") or 0), default=None)
            if first and first.get("SenderName") == SENDER and same_text(first.get("Message"), first_message):
                self._known_ticket_ids().add(str(ticket["CrmID"]))
                return str(ticket["CrmID"])
        return None

    def _find_message(self, ticket_id: str, text: str, known: set[str]) -> str | None:
        """An unmapped message of ours on this ticket that reads as ``text``."""
        for msg in sorted(self._our_messages(ticket_id), key=lambda m: int(m["MessageId"])):
            if str(msg["MessageId"]) not in known and same_text(msg.get("Message"), text):
                return str(msg["MessageId"])
        return None

    def _our_messages(self, ticket_id: str) -> list[dict]:
        return [m for m in self.hook.list_all(f"/CRM/{ticket_id}/message") if m.get("SenderName") == SENDER]

    # -- tickets (tasks, appointments) -------------------------------------------------------
    def load_tickets(self, refs: list[dict], spec: TicketSpec, stream_cfg) -> dict[str, int]:
        ids = (
            self._named("status", stream_cfg.open_status),
            self._named("status", stream_cfg.closed_status),
            self._named("department", stream_cfg.department),
        )
        tickets = TicketMap(self.state, spec.stream)

        def handle(rows: list[dict], customers: dict[str, CustomerLink]) -> list[dict]:
            links = tickets.of_contacts(r["contact_id"] for r in rows)
            unsettled = []
            for row in rows:
                try:
                    self._ticket_row(row, customers[row["contact_id"]], links.get(row["contact_id"], []), spec, ids)
                except Unsettled as exc:
                    log.warning("%s: %s; the contact's items wait for the next run", spec.stream, exc)
                    unsettled.append(row)
            return unsettled

        self._each_row(spec.child, refs, handle)
        return self.stats.counts

    def _ticket_row(self, row: dict, customer: CustomerLink, links: list[TicketLink], spec: TicketSpec, ids) -> None:
        tickets = TicketMap(self.state, spec.stream)
        by_item = {link.item_id: link for link in links}
        present = set()
        for item in row["items"]:
            present.add(item["id"])
            current = by_item.get(item["id"])
            if current is not None and current.gone:
                continue  # a merchant deleted its ticket: never re-created (that would e-mail the customer)
            try:
                self._ticket_item(item, row["contact_id"], customer, current, spec, ids, tickets)
            except TicketGone as exc:
                if current is None:
                    raise ApiError("shift4shop", 404, f"creating a ticket for {item['id']}: {exc}") from None
                self._ticket_gone(tickets, current, row["contact_id"])
        quarantined = set(row.get("quarantined_ids") or [])
        closed_id = ids[1]
        for link in links:
            if link.item_id in present or link.item_id in quarantined or link.deleted or link.gone:
                continue
            try:
                self._check(self.hook.update_one(f"/CRM/{link.ticket_id}", {"StatusID": int(closed_id)}), "close")
            except TicketGone:
                self._ticket_gone(tickets, link, row["contact_id"])
                continue
            tickets.record([TicketLink(link.item_id, link.ticket_id, row["contact_id"], deleted=True)])
            self.stats.add("tickets_closed")

    def _ticket_gone(self, tickets: TicketMap, link: TicketLink, contact_id: str) -> None:
        log.warning("ticket %s of %s is gone from the store (deleted there); left alone", link.ticket_id, link.item_id)
        tickets.record([TicketLink(link.item_id, link.ticket_id, contact_id, gone=True)])
        self.stats.add("tickets_gone")

    def _ticket_item(self, item, cid, customer, current, spec: TicketSpec, ids, tickets: TicketMap) -> None:
        open_id, closed_id, dept_id = ids
        closed = spec.closed(item, self.now)
        ticket = {"Subject": cut(spec.subject(item), MAX_SUBJECT), "StatusID": int(closed_id if closed else open_id)}
        message, was_cut = fit_message(spec.message(item))
        self.stats.add("messages_cut", int(was_cut))
        t_digest, m_digest = payload_hash(ticket)[:16], payload_hash({"m": message})[:16]
        if current is None:
            if closed:
                return  # never open a ticket for something already done
            body = {
                **ticket,
                "CustomerID": int(customer.customer_id),
                "CustomerEmail": customer.email or "",
                "DepartmentID": int(dept_id),
                "CrmMessageList": [{"Message": message, "SenderName": SENDER}],
            }
            ticket_id = self._create(
                spec.stream,
                item["id"],
                "/CRM",
                body,
                lambda: self._find_ticket(customer.customer_id, body["Subject"], message),
            )
            tickets.record([TicketLink(item["id"], ticket_id, cid, t_digest, m_digest)])
            self._recorded(spec.stream, item["id"])
            self.stats.add("tickets_created")
            return
        if (current.ticket_digest, current.message_digest) == (t_digest, m_digest):
            return
        if current.ticket_digest != t_digest:
            self._check(self.hook.update_one(f"/CRM/{current.ticket_id}", ticket), "update ticket")
            self.stats.add("tickets_closed" if closed else "tickets_updated")
        message_stream = f"{spec.stream}:message"
        if current.message_digest != m_digest:
            self._replace_ticket_message(message_stream, item["id"], current.ticket_id, message)
            self.stats.add("messages_updated")
        tickets.record([TicketLink(item["id"], current.ticket_id, cid, t_digest, m_digest)])
        self._recorded(message_stream, item["id"])  # only now: the new digests are recorded

    def _replace_ticket_message(self, message_stream: str, item_id: str, ticket_id: str, text: str) -> None:
        """The ticket's message carries the item's text; messages cannot be edited, so replace ours.

        Only a message the sync wrote (``SenderName``) is ever deleted, never a reply of the shop;
        and when our latest message already reads as ``text`` (a replacement that landed before the
        id map was written), nothing is sent: the customer is never e-mailed the same text twice.
        """
        ours = sorted(self._our_messages(ticket_id), key=lambda m: int(m["MessageId"]))
        if ours and same_text(ours[-1].get("Message"), text):
            return
        if ours:
            self._check(self.hook.delete_one(f"/CRM/{ticket_id}/message/{ours[-1]['MessageId']}"), "delete message")
        self._create(
            message_stream,
            item_id,
            f"/CRM/{ticket_id}/message",
            {"Message": text, "SenderName": SENDER},
            lambda: self._find_message(ticket_id, text, set()),
        )

    # -- notes -------------------------------------------------------------------------------
    def load_notes(self, refs: list[dict], stream_cfg) -> dict[str, int]:
        ids = (self._named("status", stream_cfg.open_status), self._named("department", stream_cfg.department))
        note_tickets = NoteTicketMap(self.state)
        messages = MessageMap(self.state)

        def handle(rows: list[dict], customers: dict[str, CustomerLink]) -> list[dict]:
            contact_ids = [r["contact_id"] for r in rows]
            ticket_ids = note_tickets.get(contact_ids)
            mapped = messages.of_contacts(contact_ids)
            unsettled = []
            for row in rows:
                cid = row["contact_id"]
                ticket_id = ticket_ids.get(cid)
                if ticket_id == GONE:
                    continue  # a merchant deleted the notes ticket: never re-created (it would e-mail)
                try:
                    self._notes_row(row, customers[cid], ticket_id, mapped.get(cid, {}), stream_cfg, ids)
                except Unsettled as exc:
                    log.warning("notes: %s; the contact's notes wait for the next run", exc)
                    unsettled.append(row)
                except TicketGone:
                    log.warning("the notes ticket %s of %s is gone from the store; left alone", ticket_id, cid)
                    note_tickets.record(cid, GONE)
                    self.stats.add("tickets_gone")
            return unsettled

        self._each_row("notes", refs, handle)
        return self.stats.counts

    def _notes_row(self, row, customer: CustomerLink, ticket_id, mine: dict[str, MessageLink], stream_cfg, ids):
        cid = row["contact_id"]
        messages = MessageMap(self.state)
        notes = sorted(row["items"], key=lambda n: (str(n.get("dateAdded") or ""), n["id"]))
        texts = {}
        for n in notes:
            texts[n["id"]], was_cut = fit_message(safe_html(n.get("body")))
            self.stats.add("messages_cut", int(was_cut))
        if ticket_id is None:
            if notes:
                self._create_notes_ticket(customer, notes, texts, stream_cfg, ids)
            return
        known = {link.message_id for link in mine.values() if link.message_id}
        present = set()
        for note in notes:
            present.add(note["id"])
            text = texts[note["id"]]
            digest = payload_hash({"m": text})
            current = mine.get(note["id"])
            if current is not None and not current.deleted and current.digest == digest:
                continue
            if current is not None and not current.deleted:
                # Messages cannot be edited: replace it, so the note keeps exactly one message.
                self._check(self.hook.delete_one(self._message_path(current)), "delete message")
                self.stats.add("messages_updated")
            else:
                self.stats.add("messages_added")
            message_id = self._create(
                "note_messages",
                note["id"],
                f"/CRM/{ticket_id}/message",
                {"Message": text, "SenderName": SENDER},
                lambda text=text: self._find_message(ticket_id, text, known),
            )
            known.add(message_id)
            messages.record([MessageLink(note["id"], ticket_id, message_id, cid, digest)])
            self._recorded("note_messages", note["id"])
        quarantined = set(row.get("quarantined_ids") or [])
        for link in mine.values():
            if link.note_id in present or link.note_id in quarantined or link.deleted:
                continue
            self._check(self.hook.delete_one(self._message_path(link)), "delete message")
            messages.record([MessageLink(link.note_id, link.ticket_id, link.message_id, cid, deleted=True)])
            self.stats.add("messages_deleted")

    def _create_notes_ticket(self, customer: CustomerLink, notes, texts, stream_cfg, ids) -> None:
        open_id, dept_id = ids
        cid = customer.contact_id
        subject = cut(stream_cfg.ticket_subject, MAX_SUBJECT)
        first = texts[notes[0]["id"]]
        body = {
            "Subject": subject,
            "StatusID": int(open_id),
            "DepartmentID": int(dept_id),
            "CustomerID": int(customer.customer_id),
            "CustomerEmail": customer.email or "",
            "CrmMessageList": [{"Message": texts[n["id"]], "SenderName": SENDER} for n in notes],
        }
        ticket_id = self._create(
            "note_tickets", cid, "/CRM", body, lambda: self._find_ticket(customer.customer_id, subject, first)
        )
        NoteTicketMap(self.state).record(cid, ticket_id)
        messages = MessageMap(self.state)
        # The notes went in with the ticket: recorded at once (ids unknown), then their ids learned.
        messages.record(MessageLink(n["id"], ticket_id, None, cid, payload_hash({"m": texts[n["id"]]})) for n in notes)
        self._recorded("note_tickets", cid)
        self.stats.add("tickets_created")
        self.stats.add("messages_added", len(notes))
        learned = self._learn_message_ids(ticket_id, [texts[n["id"]] for n in notes])
        messages.record(
            MessageLink(n["id"], ticket_id, mid, cid, payload_hash({"m": texts[n["id"]]}))
            for n, mid in zip(notes, learned, strict=True)
            if mid
        )

    def _learn_message_ids(self, ticket_id: str, texts: list[str]) -> list[str | None]:
        """Ids of the messages a ticket was created with, in the order they were sent."""
        ours = sorted(self._our_messages(ticket_id), key=lambda m: int(m["MessageId"]))
        if len(ours) == len(texts) and all(same_text(m.get("Message"), t) for m, t in zip(ours, texts, strict=True)):
            return [str(m["MessageId"]) for m in ours]
        out: list[str | None] = []
        taken: set[str] = set()
        for text in texts:
            match = next(
                (m for m in ours if str(m["MessageId"]) not in taken and same_text(m.get("Message"), text)), None
            )
            out.append(str(match["MessageId"]) if match else None)
            if match:
                taken.add(str(match["MessageId"]))
        return out

    def _message_path(self, link: MessageLink) -> str:
        """``/CRM/<ticket>/message/<id>`` for a note's message, learning the id if an older run did not."""
        message_id = link.message_id
        if message_id is None:
            for msg in self._our_messages(link.ticket_id):
                if payload_hash({"m": str(msg.get("Message") or "")}) == link.digest:
                    message_id = str(msg["MessageId"])
                    break
            else:
                raise ApiError("shift4shop", 200, f"ticket {link.ticket_id}: no message matches note {link.note_id}")
        return f"/CRM/{link.ticket_id}/message/{message_id}"

    @staticmethod
    def _check(res, what: str) -> None:
        if res.status == 404:
            raise TicketGone(what)
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
    if not stream_cfg.tickets:
        return {}
    if stream == "notes":
        return loader.load_notes(refs, stream_cfg)
    if stream == "tasks":
        return loader.load_tickets(refs, TASK_TICKETS, stream_cfg)
    if stream == "appointments":
        return loader.load_tickets(refs, APPOINTMENT_TICKETS, stream_cfg)
    raise ValueError(f"unknown CRM stream {stream!r}")
