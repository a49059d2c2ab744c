"""Contact storage and single-contact rules (ghl-api.md §2.1, §2.4, §2.5) for the GHL simulator's state.

Owns the fresh contact store (what ``GET /contacts/{id}`` returns and duplicate checks read), the
per-location email/phone tables for duplicate detection, the read-shape normalisation (derived
lower-case and name fields, E.164 phones, ``dateOfBirth``, key order), write validation and the
contact CRUD: create, update, upsert, delete, tags. Every write hands the new version to the
search index (``search.py``), which sees it after ``index_lag_s``. It also gives the child objects
(tasks, notes, appointments) their owning-contact check and the optional contact touch.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import phonenumbers

from sandbox.ghl.base import iso_ms, new_id, now_ms, parse_ms
from sandbox.ghl.errors import ApiError, not_found, unprocessable

__all__ = ["CREATE_FIELDS", "UPDATE_FIELDS", "UPSERT_FIELDS", "ContactsMixin", "derive", "normalize_phone"]

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


class ContactsMixin:
    """Contact storage, duplicate detection and CRUD (part of ``GhlState``).

    Uses the search index's ``_to_index`` / ``_index_now`` (``SearchMixin``) and, when a contact
    is deleted, ``_drop_task`` / ``_drop_note`` (``TasksMixin``, ``NotesMixin``).
    """

    lock: threading.RLock
    location_id: str
    allow_duplicates: bool
    touch_contact_on_child_write: bool

    def _init_contacts(self) -> None:
        self._docs: dict[str, dict] = {}  # fresh contacts (what GET /contacts/{id} returns)
        self._by_email: dict[str, dict[str, None]] = {}  # lower email -> ids (insertion-ordered)
        self._by_phone: dict[str, dict[str, None]] = {}  # phone digits -> ids
        self._custom_keys: dict[str, str] = {}  # custom field key -> id, for writes by key

    def _clear_contacts(self) -> None:
        self._docs.clear()
        self._by_email.clear()
        self._by_phone.clear()

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
            for doc in docs:
                old = self._docs.get(doc["id"])
                if old is not None:
                    self._unindex_dups(old)
                self._docs[doc["id"]] = doc
                self._index_dups(doc)
            self._index_now(docs)
        return len(docs)

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
