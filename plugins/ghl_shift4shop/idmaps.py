"""What the sync knows about the store's side of each record: one small typed map per kind.

All of them live in the one ``id_map`` table of the state database (``state.py``), whose columns
mean different things per stream. These classes are the only code that knows the encoding:

* :class:`CustomerMap` (``contacts``): GHL contact id → CustomerID; match key = lower-cased
  e-mail; digest of the payload last written.
* :class:`NamedIds` (``customer_groups``, ``crm_status``, ``crm_department``): lower-cased name →
  store id.
* :class:`TicketMap` (``task_tickets``, ``appointment_tickets``): GHL item id → CrmID; match key =
  GHL contact id; digest ``<ticket digest>:<message digest>``, ``deleted`` (the item is gone from
  GHL, the ticket closed) or ``gone`` (the ticket is gone from the store).
* :class:`NoteTicketMap` (``note_tickets``): GHL contact id → CrmID of its notes ticket, or
  ``gone``.
* :class:`DisabledMap` (``reconcile_disabled``): GHL contact id → CustomerID the reconciliation
  disabled because the contact was gone from GHL.
* :class:`MessageMap` (``note_messages``): GHL note id → ``<CrmID>/<MessageId>`` (``?`` = not
  learned yet); match key = GHL contact id; digest of the text sent, or ``deleted``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ghl_shift4shop.state import MappedId, StateStore

DELETED = "deleted"
GONE = "gone"  # the store no longer has the ticket (a merchant deleted it): left alone from then on
UNKNOWN_MESSAGE = "?"


@dataclass(frozen=True)
class CustomerLink:
    contact_id: str
    customer_id: str
    email: str | None
    digest: str | None


class CustomerMap:
    """GHL contact → Shift4Shop customer."""

    stream = "contacts"

    def __init__(self, state: StateStore, stream: str = "contacts"):
        self.state = state
        self.stream = stream

    @staticmethod
    def _link(m: MappedId) -> CustomerLink:
        return CustomerLink(m.source_id, m.target_id, m.match_key, m.payload_hash)

    def get(self, contact_ids: Iterable[str]) -> dict[str, CustomerLink]:
        return {k: self._link(m) for k, m in self.state.get_mapped(self.stream, contact_ids).items()}

    def owners_of(self, emails: Iterable[str]) -> dict[str, CustomerLink]:
        """Lower-cased e-mail → the contact that already owns it in the store."""
        return {k: self._link(m) for k, m in self.state.find_by_match_key(self.stream, emails).items()}

    def record(self, links: Iterable[CustomerLink]) -> None:
        self.state.record_mapped(self.stream, [MappedId(x.contact_id, x.customer_id, x.email, x.digest) for x in links])

    def forget(self, contact_ids: Iterable[str]) -> None:
        self.state.forget_mapped(self.stream, contact_ids)

    def count(self) -> int:
        return self.state.count_mapped(self.stream)

    def all(self) -> dict[str, CustomerLink]:
        return {m.source_id: self._link(m) for m in self.state.all_mapped(self.stream)}

    def forget_digests(self, contact_ids: Iterable[str]) -> None:
        """Make the loader write these contacts' customers again even if the payload is unchanged
        (the store was edited behind the sync's back, so "same digest" no longer means "in step")."""
        links = self.get(contact_ids)
        self.record(CustomerLink(x.contact_id, x.customer_id, x.email, None) for x in links.values())


class DisabledMap:
    """Customers the reconciliation disabled because their GHL contact was gone: contact → CustomerID.

    Only these are enabled again when the contact comes back; a customer a merchant disabled by
    hand is never switched on by the job.
    """

    stream = "reconcile_disabled"

    def __init__(self, state: StateStore):
        self.state = state

    def all(self) -> dict[str, str]:
        return {m.source_id: m.target_id for m in self.state.all_mapped(self.stream)}

    def record(self, pairs: dict[str, str]) -> None:
        self.state.record_mapped(self.stream, [MappedId(cid, target, None, None) for cid, target in pairs.items()])

    def forget(self, contact_ids: Iterable[str]) -> None:
        self.state.forget_mapped(self.stream, contact_ids)


class NamedIds:
    """Store objects known by name (customer groups, CRM statuses and departments) → their ids."""

    def __init__(self, state: StateStore, stream: str):
        self.state = state
        self.stream = stream

    def get(self, names: Iterable[str]) -> dict[str, str]:
        keys = [n.strip().lower() for n in names]
        return {k: m.target_id for k, m in self.state.get_mapped(self.stream, keys).items()}

    def record(self, pairs: dict[str, str]) -> None:
        self.state.record_mapped(
            self.stream, [MappedId(name.strip().lower(), tid, None, None) for name, tid in pairs.items()]
        )


@dataclass(frozen=True)
class TicketLink:
    item_id: str
    ticket_id: str
    contact_id: str
    ticket_digest: str = ""
    message_digest: str = ""
    deleted: bool = False
    gone: bool = False


class TicketMap:
    """A GHL task or appointment → the CRM ticket that mirrors it."""

    def __init__(self, state: StateStore, stream: str):
        self.state = state
        self.stream = stream

    @staticmethod
    def _link(m: MappedId) -> TicketLink:
        if m.payload_hash == GONE:
            return TicketLink(m.source_id, m.target_id, m.match_key or "", gone=True)
        if m.payload_hash == DELETED:
            return TicketLink(m.source_id, m.target_id, m.match_key or "", deleted=True)
        ticket, _, message = (m.payload_hash or ":").partition(":")
        return TicketLink(m.source_id, m.target_id, m.match_key or "", ticket, message)

    def of_contacts(self, contact_ids: Iterable[str]) -> dict[str, list[TicketLink]]:
        out: dict[str, list[TicketLink]] = {}
        for m in self.state.mapped_for_match_keys(self.stream, contact_ids):
            out.setdefault(m.match_key or "", []).append(self._link(m))
        return out

    def ticket_ids(self) -> set[str]:
        return self.state.target_ids(self.stream)

    def record(self, links: Iterable[TicketLink]) -> None:
        rows = []
        for x in links:
            digest = GONE if x.gone else DELETED if x.deleted else f"{x.ticket_digest}:{x.message_digest}"
            rows.append(MappedId(x.item_id, x.ticket_id, x.contact_id, digest))
        self.state.record_mapped(self.stream, rows)


class NoteTicketMap:
    """A GHL contact → its one "notes" CRM ticket."""

    stream = "note_tickets"

    def __init__(self, state: StateStore):
        self.state = state

    def get(self, contact_ids: Iterable[str]) -> dict[str, str]:
        return {k: m.target_id for k, m in self.state.get_mapped(self.stream, contact_ids).items()}

    def ticket_ids(self) -> set[str]:
        return self.state.target_ids(self.stream)

    def record(self, contact_id: str, ticket_id: str) -> None:
        self.state.record_mapped(self.stream, [MappedId(contact_id, ticket_id, None, None)])


@dataclass(frozen=True)
class MessageLink:
    note_id: str
    ticket_id: str
    message_id: str | None  # None: not learned yet (older state)
    contact_id: str
    digest: str = ""
    deleted: bool = False


class MessageMap:
    """A GHL note → the CRM message that carries it on the contact's notes ticket."""

    stream = "note_messages"

    def __init__(self, state: StateStore):
        self.state = state

    @staticmethod
    def _link(m: MappedId) -> MessageLink:
        ticket, _, message = m.target_id.partition("/")
        message_id = None if message in ("", UNKNOWN_MESSAGE) else message
        if m.payload_hash == DELETED:
            return MessageLink(m.source_id, ticket, message_id, m.match_key or "", deleted=True)
        return MessageLink(m.source_id, ticket, message_id, m.match_key or "", m.payload_hash or "")

    def of_contacts(self, contact_ids: Iterable[str]) -> dict[str, dict[str, MessageLink]]:
        out: dict[str, dict[str, MessageLink]] = {}
        for m in self.state.mapped_for_match_keys(self.stream, contact_ids):
            link = self._link(m)
            out.setdefault(link.contact_id, {})[link.note_id] = link
        return out

    def message_ids(self, ticket_id: str) -> set[str]:
        prefix = f"{ticket_id}/"
        return {t.removeprefix(prefix) for t in self.state.target_ids(self.stream, prefix=prefix)}

    def record(self, links: Iterable[MessageLink]) -> None:
        rows = []
        for x in links:
            target = f"{x.ticket_id}/{x.message_id or UNKNOWN_MESSAGE}"
            rows.append(MappedId(x.note_id, target, x.contact_id, DELETED if x.deleted else x.digest))
        self.state.record_mapped(self.stream, rows)
