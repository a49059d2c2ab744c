"""Tasks (ghl-api.md §3) for the GHL simulator's state.

Owns the task store (with each task's location and a per-contact index), the contact task CRUD
under ``/contacts/{id}/tasks``, the location task search (``POST /locations/{id}/tasks/search``:
its body validation, filters, stable order and skip/limit paging, with its cached order), and the
admin load/dump of tasks. The task search's unconfirmed readings are config knobs:
``task_search_id_key`` (items keyed ``id`` or ``_id``), ``task_search_max_limit`` (the largest
``limit`` accepted, ``None`` = any) and ``task_search_page_cap`` (a silent per-page maximum).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from sandbox.ghl.base import is_int, iso_ms, link, new_id, parse_ms, unlink
from sandbox.ghl.dto import Kind, apply_plain, dto_errors
from sandbox.ghl.errors import ApiError, unprocessable

__all__ = [
    "DEFAULT_TASK_SEARCH_LIMIT",
    "MAX_TASK_SEARCH_CONTACTS",
    "MAX_TASK_SEARCH_LIMIT",
    "TASK_KEYS",
    "TASK_SEARCH_ID_KEYS",
    "TasksMixin",
]

# The spec caps neither; these are the simulator's choices (BEHAVIOR.md). MAX_TASK_SEARCH_LIMIT is
# the default of config task_search_max_limit (None = no maximum).
MAX_TASK_SEARCH_LIMIT = 100
MAX_TASK_SEARCH_CONTACTS = 100
DEFAULT_TASK_SEARCH_LIMIT = 25
TASK_KEYS: tuple[str, ...] = ("id", "title", "body", "assignedTo", "dueDate", "completed", "contactId")
# config task_search_id_key: the key that carries a task's id in task-search items (only there).
TASK_SEARCH_ID_KEYS: tuple[str, ...] = ("id", "_id")

_TASK_FIELDS: dict[str, Kind] = {
    "title": "string",
    "body": "string",
    "dueDate": "iso",
    "completed": "boolean",
    "assignedTo": "string",
}
_TASK_SEARCH_FIELDS: dict[str, Kind] = {
    "contactId": "string[]",
    "completed": "boolean",
    "assignedTo": "string[]",
    "query": "string",
    "limit": "int",
    "skip": "int",
    "businessId": "string",
}


class TasksMixin:
    """Tasks of contacts and the location task search (part of ``GhlState``).

    Uses ``_owned_contact`` / ``_touch_contact`` and the contact store (``ContactsMixin``).
    """

    lock: threading.RLock
    location_id: str
    task_search_id_key: str
    task_search_max_limit: int | None
    task_search_page_cap: int | None
    _docs: dict[str, dict]

    def _init_tasks(self) -> None:
        self._tasks: dict[str, dict] = {}
        self._task_loc: dict[str, str] = {}  # task id -> location (its contact's, when loaded)
        self._tasks_by_contact: dict[str, dict[str, None]] = {}
        self._task_order: list[tuple[str, bool, int, str]] | None = None  # cached search order

    def _clear_tasks(self) -> None:
        for table in (self._tasks, self._task_loc, self._tasks_by_contact):
            table.clear()
        self._task_order = None

    def _put_task(self, doc: dict, location_id: str) -> None:
        old = self._tasks.get(doc["id"])
        if old is not None:
            unlink(self._tasks_by_contact, old.get("contactId"), doc["id"])
        self._tasks[doc["id"]] = doc
        self._task_loc[doc["id"]] = location_id
        link(self._tasks_by_contact, doc["contactId"], doc["id"])
        self._task_order = None

    def _drop_task(self, tid: str) -> None:
        doc = self._tasks.pop(tid, None)
        if doc is not None:
            self._task_loc.pop(tid, None)
            unlink(self._tasks_by_contact, doc.get("contactId"), tid)
            self._task_order = None

    def _owned_task(self, cid: str, tid: str, location_id: str | None) -> dict:
        self._owned_contact(cid, location_id)
        doc = self._tasks.get(tid)
        if doc is None or doc.get("contactId") != cid:
            raise ApiError(400, f"Task with id {tid} not found")
        return doc

    def list_tasks(self, cid: str, location_id: str | None = None) -> list[dict]:
        """``GET /contacts/{id}/tasks``: the contact's tasks by dueDate, then id (choice)."""
        with self.lock:
            self._owned_contact(cid, location_id)
            docs = [self._tasks[t] for t in self._tasks_by_contact.get(cid, ())]
            docs.sort(key=_task_sort_key)
            return [dict(d) for d in docs]

    def get_task(self, cid: str, tid: str, location_id: str | None = None) -> dict:
        with self.lock:
            return dict(self._owned_task(cid, tid, location_id))

    def create_task(self, cid: str, body: dict, location_id: str | None = None) -> dict:
        """``POST /contacts/{id}/tasks`` (CreateTaskParams: title*, dueDate*, completed*, body, assignedTo)."""
        errors = dto_errors(
            body, _TASK_FIELDS, required=("title", "dueDate", "completed"), nullable=("body", "assignedTo")
        )
        with self.lock:
            contact = self._owned_contact(cid, location_id)
            if errors:
                raise unprocessable(*errors)
            tid = new_id()
            while tid in self._tasks:
                tid = new_id()
            doc: dict[str, Any] = {"id": tid}
            _apply_task(doc, body)
            doc["contactId"] = cid
            doc = {k: doc[k] for k in TASK_KEYS if k in doc}
            self._put_task(doc, contact.get("locationId") or self.location_id)
            self._touch_contact(cid)
            return dict(doc)

    def update_task(self, cid: str, tid: str, body: dict, location_id: str | None = None) -> dict:
        """``PUT /contacts/{id}/tasks/{taskId}`` (UpdateTaskBody: any of the create fields)."""
        errors = dto_errors(body, _TASK_FIELDS, nullable=("body", "assignedTo"))
        with self.lock:
            old = self._owned_task(cid, tid, location_id)
            if errors:
                raise unprocessable(*errors)
            doc = dict(old)
            _apply_task(doc, body)
            self._put_task(doc, self._task_loc.get(tid, self.location_id))
            self._touch_contact(cid)
            return dict(doc)

    def complete_task(self, cid: str, tid: str, body: dict, location_id: str | None = None) -> dict:
        """``PUT .../tasks/{taskId}/completed`` (UpdateTaskStatusParams: completed*)."""
        errors = dto_errors(body, {"completed": "boolean"}, required=("completed",))
        with self.lock:
            old = self._owned_task(cid, tid, location_id)
            if errors:
                raise unprocessable(*errors)
            doc = {**old, "completed": body["completed"]}
            self._put_task(doc, self._task_loc.get(tid, self.location_id))
            self._touch_contact(cid)
            return dict(doc)

    def delete_task(self, cid: str, tid: str, location_id: str | None = None) -> None:
        with self.lock:
            self._owned_task(cid, tid, location_id)
            self._drop_task(tid)
            self._touch_contact(cid)

    def parse_task_search(self, body: dict) -> dict:
        """Validate a ``POST /locations/{id}/tasks/search`` body (TaskSearchParamsDto); 422 lists every problem."""
        errors = dto_errors(body, _TASK_SEARCH_FIELDS)
        contact_ids = body.get("contactId")
        if isinstance(contact_ids, list) and len(contact_ids) > MAX_TASK_SEARCH_CONTACTS:
            errors.append(f"contactId must contain no more than {MAX_TASK_SEARCH_CONTACTS} elements")
        limit = body.get("limit")
        if limit is not None and is_int(limit):
            if limit < 1:
                errors.append("limit must not be less than 1")
            elif self.task_search_max_limit is not None and limit > self.task_search_max_limit:
                errors.append(f"limit must not be greater than {self.task_search_max_limit}")
        skip = body.get("skip")
        if skip is not None and is_int(skip) and skip < 0:
            errors.append("skip must not be less than 0")
        if errors:
            raise unprocessable(*errors)
        return {
            "contact_ids": list(dict.fromkeys(contact_ids)) if contact_ids else None,
            "completed": body.get("completed"),
            "assigned_to": set(body["assignedTo"]) if body.get("assignedTo") else None,
            "query": body["query"].lower() if body.get("query") else None,
            "business_id": body.get("businessId") or None,
            "limit": DEFAULT_TASK_SEARCH_LIMIT if limit is None else int(limit),
            "skip": 0 if skip is None else int(skip),
        }

    def search_tasks(self, location_id: str, body: dict) -> dict:
        """Tasks of ``location_id`` matching the filters, ordered by contactId, dueDate, id; skip/limit."""
        p = self.parse_task_search(body)
        with self.lock:
            if p["contact_ids"] is not None:
                order = sorted(
                    _task_sort_key(self._tasks[t])
                    for cid in p["contact_ids"]
                    for t in self._tasks_by_contact.get(cid, ())
                )
            else:
                if self._task_order is None:
                    self._task_order = sorted(_task_sort_key(d) for d in self._tasks.values())
                order = self._task_order
            completed, assigned, needle = p["completed"], p["assigned_to"], p["query"]
            business = p["business_id"]
            skip, limit, out = p["skip"], p["limit"], []
            if self.task_search_page_cap is not None:  # silently: the page is shorter than asked
                limit = min(limit, self.task_search_page_cap)
            id_key = self.task_search_id_key
            for *_, tid in order:
                doc = self._tasks[tid]
                if self._task_loc.get(tid) != location_id:
                    continue
                if completed is not None and bool(doc.get("completed")) != completed:
                    continue
                if assigned is not None and doc.get("assignedTo") not in assigned:
                    continue
                if needle is not None and not any(
                    isinstance(doc.get(k), str) and needle in doc[k].lower() for k in ("title", "body")
                ):
                    continue
                if business is not None and (self._docs.get(doc["contactId"]) or {}).get("businessId") != business:
                    continue
                if skip:
                    skip -= 1
                    continue
                out.append(_search_item(doc, id_key))
                if len(out) >= limit:
                    break
            return {"tasks": out}

    # ---- bulk / admin -----------------------------------------------------------------------------

    def load_tasks(self, tasks: Iterable[dict]) -> int:
        """Insert or replace tasks in API read shape, keeping ids and due dates (``contactId`` required).

        A task's location is its contact's (else its own ``locationId`` key, else the state's).
        ``dueDate`` is normalised to ``YYYY-MM-DDTHH:mm:ss.sssZ`` when it parses.
        """
        docs = []
        for raw in tasks:
            if not isinstance(raw, dict) or not raw.get("contactId"):
                raise ApiError(400, "each task must be a JSON object with a contactId")
            doc = dict(raw)
            doc["id"] = doc.get("id") or new_id()
            due = parse_ms(doc.get("dueDate"))
            if due is not None:
                doc["dueDate"] = iso_ms(due)
            doc["completed"] = bool(doc.get("completed", False))
            docs.append(doc)
        with self.lock:
            for doc in docs:
                contact = self._docs.get(doc["contactId"])
                loc = (contact or {}).get("locationId") or doc.get("locationId") or self.location_id
                self._put_task(doc, loc)
        return len(docs)

    def all_tasks(self, offset: int = 0, limit: int | None = None) -> list[dict]:
        """Every task, ordered by contactId, dueDate, id (the search order); ``offset``/``limit``
        take a slice, and only the slice is copied (a million tasks paged by an admin client)."""
        with self.lock:
            docs = sorted(self._tasks.values(), key=_task_sort_key)
            return [dict(d) for d in docs[offset : None if limit is None else offset + limit]]

    def count_tasks(self) -> int:
        with self.lock:
            return len(self._tasks)


def _apply_task(doc: dict, body: dict) -> None:
    apply_plain(doc, body)
    if "dueDate" in body:
        doc["dueDate"] = iso_ms(parse_ms(body["dueDate"]) or 0)


def _search_item(doc: dict, id_key: str) -> dict:
    """A task-search item: the task with its id under ``id_key`` (still the first key)."""
    if id_key == "id":
        return dict(doc)
    return {id_key if k == "id" else k: v for k, v in doc.items()}


def _task_sort_key(doc: dict) -> tuple[str, bool, int, str]:
    """(contactId, no due date, due ms, id): tasks without a due date go last within their contact."""
    due = parse_ms(doc.get("dueDate"))
    return (str(doc.get("contactId") or ""), due is None, due or 0, str(doc.get("id")))
