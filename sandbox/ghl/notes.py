"""Notes (ghl-api.md §4) for the GHL simulator's state.

Owns the note store (with a per-contact index), the note CRUD under ``/contacts/{id}/notes``
(bodies kept verbatim: HTML, any length) and the admin load/dump of notes. There is no
location-wide note endpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from sandbox.ghl.base import iso_ms, link, new_id, now_ms, parse_ms, unlink
from sandbox.ghl.dto import Kind, apply_plain, dto_errors
from sandbox.ghl.errors import ApiError, unprocessable

__all__ = ["NOTE_KEYS", "NotesMixin"]

NOTE_KEYS: tuple[str, ...] = ("id", "body", "userId", "dateAdded", "contactId", "title", "color", "pinned")

_NOTE_FIELDS: dict[str, Kind] = {
    "body": "string",
    "userId": "string",
    "title": "string",
    "color": "string",
    "pinned": "boolean",
}


class NotesMixin:
    """Notes of contacts (part of ``GhlState``). Uses ``_owned_contact`` / ``_touch_contact`` (``ContactsMixin``)."""

    lock: threading.RLock

    def _init_notes(self) -> None:
        self._notes: dict[str, dict] = {}
        self._notes_by_contact: dict[str, dict[str, None]] = {}

    def _clear_notes(self) -> None:
        self._notes.clear()
        self._notes_by_contact.clear()

    def _put_note(self, doc: dict) -> None:
        old = self._notes.get(doc["id"])
        if old is not None:
            unlink(self._notes_by_contact, old.get("contactId"), doc["id"])
        self._notes[doc["id"]] = doc
        link(self._notes_by_contact, doc["contactId"], doc["id"])

    def _drop_note(self, nid: str) -> None:
        doc = self._notes.pop(nid, None)
        if doc is not None:
            unlink(self._notes_by_contact, doc.get("contactId"), nid)

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
        errors = dto_errors(body, _NOTE_FIELDS, required=("body",), nullable=("userId", "title", "color"))
        with self.lock:
            self._owned_contact(cid, location_id)
            if errors:
                raise unprocessable(*errors)
            nid = new_id()
            while nid in self._notes:
                nid = new_id()
            doc: dict[str, Any] = {"id": nid, "pinned": False}
            apply_plain(doc, body)
            doc["dateAdded"] = iso_ms(now_ms())
            doc["contactId"] = cid
            doc = {k: doc[k] for k in NOTE_KEYS if k in doc}
            self._put_note(doc)
            self._touch_contact(cid)
            return dict(doc)

    def update_note(self, cid: str, nid: str, body: dict, location_id: str | None = None) -> dict:
        """``PUT /contacts/{id}/notes/{noteId}`` (UpdateNoteDTO: any of the create fields)."""
        errors = dto_errors(body, _NOTE_FIELDS, nullable=("userId", "title", "color"))
        with self.lock:
            old = self._owned_note(cid, nid, location_id)
            if errors:
                raise unprocessable(*errors)
            doc = dict(old)
            apply_plain(doc, body)
            self._put_note(doc)
            self._touch_contact(cid)
            return dict(doc)

    def delete_note(self, cid: str, nid: str, location_id: str | None = None) -> None:
        with self.lock:
            self._owned_note(cid, nid, location_id)
            self._drop_note(nid)
            self._touch_contact(cid)

    # ---- bulk / admin -----------------------------------------------------------------------------

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

    def all_notes(self, offset: int = 0, limit: int | None = None) -> list[dict]:
        """Every note, ordered by contactId, dateAdded, id; ``offset``/``limit``: only that slice copied."""
        with self.lock:
            docs = sorted(
                self._notes.values(),
                key=lambda d: (str(d.get("contactId")), parse_ms(d.get("dateAdded")) or 0, d["id"]),
            )
            return [dict(d) for d in docs[offset : None if limit is None else offset + limit]]

    def count_notes(self) -> int:
        with self.lock:
            return len(self._notes)
