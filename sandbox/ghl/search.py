"""The contact search index and engines (ghl-api.md §2.2, §2.3) for the GHL simulator's state.

Owns the index (a possibly lagging copy of the contacts, with sorted ``(epoch_ms, id)`` lists for
``dateAdded``/``dateUpdated``) and its write queue (``index_lag_s``), filter compilation (the S6
fields and operators, groups, ranges), sort keys and ``searchAfter`` cursors, and the three
engines that read the index: ``POST /contacts/search`` (``parse_search`` + ``search``), the
deprecated ``GET /contacts/`` list (``list_contacts``) and the business listing
(``business_contacts``). Fresh single-contact reads and duplicate checks are ``contacts.py``'s.
Config ``search_item_shape`` picks what a search item carries: the stored contact (``"full"``) or
only the keys of HighLevel's search-doc example (``"doc_example"``: ``address``, lower-cased names).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sandbox.ghl.base import is_int, parse_ms
from sandbox.ghl.errors import unprocessable

__all__ = [
    "DEFAULT_SORT",
    "DOC_EXAMPLE_ITEM_KEYS",
    "FILTER_FIELDS",
    "MAX_FILTER_VALUE_LEN",
    "MAX_PAGE_LIMIT",
    "PAGE_PAGING_CAP",
    "SEARCH_ITEM_SHAPES",
    "SORTABLE_FIELDS",
    "SearchMixin",
    "SearchParams",
]

SORTABLE_FIELDS: tuple[str, ...] = (
    "firstNameLowerCase",
    "lastNameLowerCase",
    "businessName",
    "dateAdded",
    "dateUpdated",
    "email",
    "dnd",
    "source",
)
PAGE_PAGING_CAP = 10_000  # page * pageLimit may not go past this many records
MAX_PAGE_LIMIT = 500
MAX_FILTER_VALUE_LEN = 75
DEFAULT_SORT: tuple[tuple[str, str], ...] = (("dateAdded", "asc"),)
# config search_item_shape: "full" = the stored contact (the read shape minus dndSettings);
# "doc_example" = only the keys of the S6 doc's example item (ghl-api.md §2.3 "Response").
SEARCH_ITEM_SHAPES: tuple[str, ...] = ("full", "doc_example")
# The S6 example item's keys, in its order; `address` carries the stored `address1`. Its
# `dndSettings` is left out in both shapes: live search omits it (issue #43).
DOC_EXAMPLE_ITEM_KEYS: tuple[str, ...] = (
    "id", "additionalEmails", "additionalPhones", "address", "assignedTo", "businessId", "businessName",
    "city", "companyName", "country", "customFields", "dateAdded", "dateOfBirth", "dateUpdated", "dnd",
    "email", "firstNameLowerCase", "lastNameLowerCase", "followers", "locationId", "phone", "phoneLabel",
    "postalCode", "source", "state", "tags", "type", "validEmail", "website", "attributionSource",
    "lastAttributionSource",
)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# the index


class _Rec:
    """An indexed contact: the document as search sees it plus its date keys in epoch ms."""

    __slots__ = ("added", "doc", "id", "updated")

    def __init__(self, doc: dict) -> None:
        self.doc = doc
        self.id: str = doc["id"]
        self.added: int = parse_ms(doc.get("dateAdded")) or 0
        self.updated: int = parse_ms(doc.get("dateUpdated")) or self.added


class _Index:
    """Contacts as search sees them, with ``(ms, id)`` lists kept sorted for the date hot paths."""

    def __init__(self, home_location: str) -> None:
        self.home = home_location
        self.recs: dict[str, _Rec] = {}
        self.by_added: list[tuple[int, str]] = []
        self.by_updated: list[tuple[int, str]] = []
        # Contacts of other locations (admin loads, tokens for other locations). While this is 0,
        # searches of the home location need no per-contact location check: the O(log n) path.
        self.foreign = 0

    def clear(self) -> None:
        self.recs.clear()
        self.by_added.clear()
        self.by_updated.clear()
        self.foreign = 0

    def only_home(self, location_id: str) -> bool:
        return location_id == self.home and self.foreign == 0

    def put(self, doc: dict) -> None:
        self.remove(doc["id"])
        rec = _Rec(doc)
        self.recs[rec.id] = rec
        self.foreign += doc.get("locationId") != self.home
        self._insert(self.by_added, (rec.added, rec.id))
        self._insert(self.by_updated, (rec.updated, rec.id))

    def remove(self, cid: str) -> None:
        rec = self.recs.pop(cid, None)
        if rec is None:
            return
        self.foreign -= rec.doc.get("locationId") != self.home
        for lst, key in ((self.by_added, (rec.added, cid)), (self.by_updated, (rec.updated, cid))):
            i = bisect_left(lst, key)
            if i < len(lst) and lst[i] == key:
                del lst[i]

    def bulk_put(self, docs: Iterable[dict]) -> None:
        """Insert many documents, then re-sort once (bisect inserts would be quadratic)."""
        for doc in docs:
            self.recs[doc["id"]] = _Rec(doc)
        self.by_added = sorted((r.added, r.id) for r in self.recs.values())
        self.by_updated = sorted((r.updated, r.id) for r in self.recs.values())
        self.foreign = sum(r.doc.get("locationId") != self.home for r in self.recs.values())

    @staticmethod
    def _insert(lst: list[tuple[int, str]], key: tuple[int, str]) -> None:
        lst.insert(bisect_left(lst, key), key)


# --------------------------------------------------------------------------------------------------
# search filters

_EQ_EXISTS = frozenset({"eq", "not_eq", "exists", "not_exists"})
_TEXT_OPS = frozenset({"eq", "not_eq", "contains", "not_contains", "exists", "not_exists"})
_DATE_OPS = frozenset({"range", "exists", "not_exists"})
_ALL_OPS = _TEXT_OPS | {"range"}

# search field -> (document key, allowed operators, kind); per the Contacts Search API doc (S6).
FILTER_FIELDS: dict[str, tuple[str, frozenset[str], str]] = {
    "id": ("id", frozenset({"eq", "not_eq"}), "str"),
    "contactName": ("contactName", _EQ_EXISTS, "str"),
    "country": ("country", _EQ_EXISTS, "str"),
    "assignedTo": ("assignedTo", _EQ_EXISTS, "str"),
    "followers": ("followers", _EQ_EXISTS, "list"),
    "dnd": ("dnd", _EQ_EXISTS, "bool"),
    "email": ("email", _EQ_EXISTS, "email"),
    "timezone": ("timezone", _EQ_EXISTS, "str"),
    "type": ("type", _EQ_EXISTS, "str"),
    "validEmail": ("validEmail", _EQ_EXISTS, "bool"),
    "website": ("website", _EQ_EXISTS, "str"),
    "isValidWhatsapp": ("isValidWhatsapp", _EQ_EXISTS, "bool"),
    "activeWorkflows": ("activeWorkflows", _EQ_EXISTS, "list"),
    "finishedWorkflows": ("finishedWorkflows", _EQ_EXISTS, "list"),
    "address": ("address1", _TEXT_OPS, "str"),
    "businessName": ("businessName", _TEXT_OPS, "str"),
    "city": ("city", _TEXT_OPS, "str"),
    "companyName": ("companyName", _TEXT_OPS, "str"),
    "firstNameLowerCase": ("firstNameLowerCase", _TEXT_OPS, "str"),
    "lastNameLowerCase": ("lastNameLowerCase", _TEXT_OPS, "str"),
    "phone": ("phone", _TEXT_OPS, "str"),
    "postalCode": ("postalCode", _TEXT_OPS, "str"),
    "source": ("source", _TEXT_OPS, "str"),
    "state": ("state", _TEXT_OPS, "str"),
    "tags": ("tags", _TEXT_OPS, "list"),
    "dateAdded": ("dateAdded", _DATE_OPS, "date"),
    "dateUpdated": ("dateUpdated", _DATE_OPS, "date"),
    "dateOfBirth": ("dateOfBirth", _DATE_OPS, "date"),
    "lastEmailClickedDate": ("lastEmailClickedDate", _DATE_OPS, "date"),
    "lastEmailOpenedDate": ("lastEmailOpenedDate", _DATE_OPS, "date"),
    "lastAppointment": ("lastAppointment", _DATE_OPS, "date"),
}

Pred = Callable[[_Rec], bool]


def _present(v: Any) -> bool:
    return v is not None and v != "" and v != []


def _doc_value(rec: _Rec, key: str) -> Any:
    if key == "dateAdded":
        return rec.added
    if key == "dateUpdated":
        return rec.updated
    if key.startswith("customFields."):
        cf_id = key.split(".", 1)[1]
        for item in rec.doc.get("customFields") or ():
            if item.get("id") == cf_id:
                return item.get("value")
        return None
    return rec.doc.get(key)


@dataclass
class _Range:
    lo: float = -math.inf  # inclusive
    hi: float = math.inf  # inclusive

    def contains(self, v: float) -> bool:
        return self.lo <= v <= self.hi


def _parse_range(value: Any, where: str) -> _Range:
    if not isinstance(value, dict) or not value:
        raise unprocessable(f"{where}.value must be an object with any of gte, gt, lte, lt")
    bad = sorted(set(value) - {"gte", "gt", "lte", "lt"})
    if bad:
        raise unprocessable(f"{where}.value.{bad[0]} is not a valid range operator (use gte, gt, lte, lt)")
    out = _Range()
    for op, raw in value.items():
        ms: float | None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            ms = float(raw)
        else:
            parsed = parse_ms(raw)
            ms = None if parsed is None else float(parsed)
        if ms is None:
            raise unprocessable(f"{where}.value.{op} must be an ISO-8601 date or epoch milliseconds")
        # Stored values are whole milliseconds, so strict bounds become inclusive integer bounds.
        if op == "gte":
            out.lo = max(out.lo, math.ceil(ms))
        elif op == "gt":
            out.lo = max(out.lo, math.floor(ms) + 1)
        elif op == "lte":
            out.hi = min(out.hi, math.floor(ms))
        else:
            out.hi = min(out.hi, math.ceil(ms) - 1)
    return out


def _compile_filter(item: Any, where: str) -> Pred:
    if not isinstance(item, dict):
        raise unprocessable(f"{where} must be an object")
    if "group" in item:
        group = item["group"]
        subs = item.get("filters")
        if group not in ("AND", "OR"):
            raise unprocessable(f"{where}.group must be one of the following values: AND, OR")
        if not isinstance(subs, list) or not subs:
            raise unprocessable(f"{where}.filters must be a non-empty array")
        preds = [_compile_filter(sub, f"{where}.filters.{i}") for i, sub in enumerate(subs)]
        if group == "AND":
            return lambda r: all(p(r) for p in preds)
        return lambda r: any(p(r) for p in preds)

    name, op = item.get("field"), item.get("operator")
    if not isinstance(name, str) or not name:
        raise unprocessable(f"{where}.field must be a string")
    if name.startswith("customFields.") and len(name) > len("customFields."):
        key, ops, kind = name, _ALL_OPS, "custom"
    elif name in FILTER_FIELDS:
        key, ops, kind = FILTER_FIELDS[name]
    else:
        raise unprocessable(f"{where}.field {name} is not a searchable contact field")
    if op not in ops:
        raise unprocessable(
            f"{where}.operator {op} is not supported for field {name} (allowed: {', '.join(sorted(ops))})"
        )

    if op == "exists":
        return lambda r: _present(_doc_value(r, key))
    if op == "not_exists":
        return lambda r: not _present(_doc_value(r, key))
    if "value" not in item:
        raise unprocessable(f"{where}.value should not be empty")
    value = item["value"]
    if op == "range":
        rng = _parse_range(value, where)
        if kind == "date":
            if key in ("dateAdded", "dateUpdated"):
                return lambda r: rng.contains(_doc_value(r, key))

            def date_in(r: _Rec) -> bool:
                ms = parse_ms(_doc_value(r, key))
                return ms is not None and rng.contains(ms)

            return date_in

        def num_in(r: _Rec) -> bool:
            v = _doc_value(r, key)
            try:
                return v is not None and not isinstance(v, bool) and rng.contains(float(v))
            except (TypeError, ValueError):
                ms = parse_ms(v)
                return ms is not None and rng.contains(ms)

        return num_in

    values = value if isinstance(value, list) else [value]
    if not values:
        raise unprocessable(f"{where}.value should not be empty")
    for v in values:
        if isinstance(v, str) and len(v) > MAX_FILTER_VALUE_LEN:
            raise unprocessable(f"{where}.value must be shorter than or equal to {MAX_FILTER_VALUE_LEN} characters")
    if kind == "bool":
        wanted = set()
        for v in values:
            if isinstance(v, bool):
                wanted.add(v)
            elif v in ("true", "false"):
                wanted.add(v == "true")
            else:
                raise unprocessable(f"{where}.value must be a boolean value")
        positive: Pred = lambda r: _doc_value(r, key) in wanted  # noqa: E731
    elif op in ("eq", "not_eq"):
        if kind == "email":  # emails compare case-insensitively (the index keeps emailLowerCase)
            wanted_l = {str(v).lower() for v in values}
            positive = lambda r: str(r.doc.get("email") or "").lower() in wanted_l  # noqa: E731
        else:
            wanted_s = {v if isinstance(v, str) else json.dumps(v) for v in values}

            def positive(r: _Rec) -> bool:
                v = _doc_value(r, key)
                items = v if isinstance(v, list) else [v]
                return any((x if isinstance(x, str) else json.dumps(x)) in wanted_s for x in items if x is not None)
    else:  # contains / not_contains: case-insensitive substring, like a wildcard on a lower-cased keyword
        needles = [str(v).lower() for v in values]

        def positive(r: _Rec) -> bool:
            v = _doc_value(r, key)
            items = v if isinstance(v, list) else [v]
            return any(isinstance(x, str) and n in x.lower() for x in items for n in needles)

    if op in ("not_eq", "not_contains"):
        return lambda r: not positive(r)
    return positive


def _range_bounds(filters: list, field_name: str) -> _Range:
    """Intersection of the top-level (AND-ed) ``range`` filters on ``field_name``."""
    out = _Range()
    for i, item in enumerate(filters):
        if isinstance(item, dict) and item.get("field") == field_name and item.get("operator") == "range":
            r = _parse_range(item.get("value"), f"filters.{i}")
            out.lo, out.hi = max(out.lo, r.lo), min(out.hi, r.hi)
    return out


# --------------------------------------------------------------------------------------------------
# sort keys


def _sort_value(rec: _Rec, field_name: str) -> Any:
    """The value a contact exposes for a sort field (also what goes into its ``searchAfter``)."""
    if field_name == "dateAdded":
        return rec.added
    if field_name == "dateUpdated":
        return rec.updated
    if field_name == "dnd":
        v = rec.doc.get("dnd")
        return None if v is None else int(bool(v))  # Elasticsearch reports booleans as 0/1 sort values
    if field_name == "email":
        v = rec.doc.get("email")
        return v.lower() if isinstance(v, str) else None
    v = rec.doc.get(field_name)
    return v if isinstance(v, str) else None


def _coerce_cursor(value: Any, field_name: str, i: int) -> Any:
    if value is None and field_name not in ("dateAdded", "dateUpdated"):
        return None
    if field_name in ("dateAdded", "dateUpdated"):
        ms = parse_ms(value)
        if ms is None:
            raise unprocessable(f"searchAfter.{i} must be epoch milliseconds for sort field {field_name}")
        return ms
    if field_name == "dnd":
        if isinstance(value, bool | int):
            return int(bool(value))
        raise unprocessable(f"searchAfter.{i} must be 0/1 or a boolean for sort field dnd")
    if not isinstance(value, str):
        raise unprocessable(f"searchAfter.{i} must be a string for sort field {field_name}")
    return value.lower() if field_name == "email" else value


def _missing_last_key(value: Any) -> tuple:
    # Missing values sort last in both directions (Elasticsearch's default "missing": "_last").
    return (1, 0) if value is None else (0, value)


def _missing_last_key_desc(value: Any) -> tuple:
    # Used with reverse=True: present values (1, v) descend first, missing ones (0, 0) end up last.
    return (0, 0) if value is None else (1, value)


def _position_cmp(rec: _Rec, sort: list[tuple[str, str]], cursor: list[Any], cursor_id: str) -> int:
    """-1/0/1: is ``rec`` before, at, or after the cursor position in the result order?"""
    for (f, d), c in zip(sort, cursor, strict=True):
        v = _sort_value(rec, f)
        if v == c:
            continue
        if v is None:
            return 1
        if c is None:
            return -1
        before = v < c if d == "asc" else v > c
        return -1 if before else 1
    if rec.id == cursor_id:
        return 0
    return -1 if rec.id < cursor_id else 1


# --------------------------------------------------------------------------------------------------
# requests and the engines


@dataclass
class _Pending:
    written_at: float  # time.monotonic() of the write
    cid: str
    doc: dict | None  # None = deleted


@dataclass
class SearchParams:
    """A validated ``POST /contacts/search`` body."""

    location_id: str
    page_limit: int
    page: int | None = None
    search_after: list | None = None
    filters: list = field(default_factory=list)
    sort: list[tuple[str, str]] = field(default_factory=list)
    query: str | None = None
    compiled: list[tuple[Any, Pred]] = field(default_factory=list)  # (top-level filter item, predicate)


class SearchMixin:
    """The search index, its lag, and the search/list/business engines (part of ``GhlState``)."""

    lock: threading.RLock
    location_id: str
    index_lag_s: float
    search_item_shape: str
    search_hide_share: float
    search_hide_keeps_total: bool

    def _init_search(self) -> None:
        self._index = _Index(self.location_id)
        self._pending: deque[_Pending] = deque()

    def _clear_search(self) -> None:
        self._index.clear()
        self._pending.clear()

    # ---- index writes -----------------------------------------------------------------------------

    def _to_index(self, cid: str, doc: dict | None) -> None:
        if self.index_lag_s > 0:
            self._pending.append(_Pending(time.monotonic(), cid, doc))
        else:
            self._index_apply(cid, doc)

    def _index_apply(self, cid: str, doc: dict | None) -> None:
        if doc is None:
            self._index.remove(cid)
        else:
            self._index.put(doc)

    def _drain(self) -> None:
        """Make writes older than ``index_lag_s`` visible to search (lag read at drain time)."""
        if not self._pending:
            return
        cutoff = time.monotonic() - max(0.0, self.index_lag_s)
        while self._pending and self._pending[0].written_at <= cutoff:
            p = self._pending.popleft()
            self._index_apply(p.cid, p.doc)

    def _index_now(self, docs: list[dict]) -> None:
        """Put loaded contacts in the index at once (loads bypass the lag), dropping their pending writes."""
        loaded = {d["id"] for d in docs}
        if self._pending:
            self._pending = deque(p for p in self._pending if p.cid not in loaded)
        if len(docs) > 64:
            self._index.bulk_put(docs)
        else:
            for doc in docs:
                self._index.put(doc)

    # ---- search -----------------------------------------------------------------------------------

    def parse_search(self, body: dict) -> SearchParams:
        """Validate a ``POST /contacts/search`` body (422 with all problems found)."""
        known = {"locationId", "page", "pageLimit", "searchAfter", "filters", "sort", "query"}
        errors = [f"property {k} should not exist" for k in body if k not in known]
        location_id = body.get("locationId")
        if not isinstance(location_id, str) or not location_id:
            errors += ["locationId should not be empty", "locationId must be a string"]
        page_limit = body.get("pageLimit")
        if page_limit is None:
            errors += [
                "pageLimit should not be empty",
                "pageLimit must be a number conforming to the specified constraints",
            ]
        elif not is_int(page_limit):
            errors.append("pageLimit must be a number conforming to the specified constraints")
        elif page_limit < 1:
            errors.append("pageLimit must not be less than 1")
        elif page_limit > MAX_PAGE_LIMIT:
            errors.append(f"pageLimit must not be greater than {MAX_PAGE_LIMIT}")
        page = body.get("page")
        search_after = body.get("searchAfter")
        if page is not None:
            if not is_int(page):
                errors.append("page must be a number conforming to the specified constraints")
            elif page < 1:
                errors.append("page must not be less than 1")
        if page is not None and search_after is not None:
            errors.append("page and searchAfter cannot be used together; omit page when using searchAfter")
        if search_after is not None and (not isinstance(search_after, list) or not search_after):
            errors.append("searchAfter must be a non-empty array")
        query = body.get("query")
        if query is not None and (not isinstance(query, str) or len(query) > MAX_FILTER_VALUE_LEN):
            errors.append(f"query must be a string shorter than or equal to {MAX_FILTER_VALUE_LEN} characters")
        filters = body.get("filters")
        if filters is not None and not isinstance(filters, list):
            errors.append("filters must be an array")
        sort_raw = body.get("sort")
        sort: list[tuple[str, str]] = []
        if sort_raw is not None:
            if not isinstance(sort_raw, list):
                errors.append("sort must be an array")
            elif len(sort_raw) > 2:
                errors.append("sort must contain no more than 2 elements")
            else:
                for i, s in enumerate(sort_raw):
                    f = s.get("field") if isinstance(s, dict) else None
                    d = s.get("direction", "asc") if isinstance(s, dict) else None
                    if f not in SORTABLE_FIELDS:
                        errors.append(
                            f"sort.{i}.field must be one of the following values: {', '.join(SORTABLE_FIELDS)}"
                        )
                    if d not in ("asc", "desc"):
                        errors.append(f"sort.{i}.direction must be one of the following values: asc, desc")
                    if f in SORTABLE_FIELDS and d in ("asc", "desc"):
                        sort.append((f, d))
        if errors:
            raise unprocessable(*errors)
        assert isinstance(location_id, str)
        page_limit = int(page_limit)  # 20.0 is the same JSON number as 20
        page = None if page is None else int(page)
        if page is not None and page * page_limit > PAGE_PAGING_CAP:
            raise unprocessable(
                f"page * pageLimit must not exceed {PAGE_PAGING_CAP}; "
                f"use searchAfter to page beyond {PAGE_PAGING_CAP} records"
            )
        sort = sort or list(DEFAULT_SORT)
        if search_after is not None and len(search_after) != len(sort) + 1:
            raise unprocessable(
                f"searchAfter must have {len(sort) + 1} values: one per sort field and then the contact id"
            )
        filters = filters or []
        compiled: list[tuple[Any, Pred]] = [
            (item, _compile_filter(item, f"filters.{i}")) for i, item in enumerate(filters)
        ]
        if query:
            needle = query.lower()
            compiled.append((None, lambda r: _query_match(r.doc, needle)))
        return SearchParams(
            location_id=location_id,
            page_limit=page_limit,
            page=page,
            search_after=search_after,
            filters=filters,
            sort=sort,
            query=query or None,
            compiled=compiled,
        )

    def search(self, params: SearchParams | dict) -> dict:
        """Run a search; returns ``{"contacts": [...], "total": n}`` with ``searchAfter`` per contact."""
        if isinstance(params, dict):
            params = self.parse_search(params)
        with self.lock:
            self._drain()
            hidden = self._hidden_ids()
            recs, total = self._run_search(params, hidden)
            if hidden and self.search_hide_keeps_total:
                total = self._run_search(params, frozenset())[1]
            shape = self.search_item_shape
            contacts = []
            for rec in recs:
                out = _search_item(rec.doc, shape)
                out["searchAfter"] = [_sort_value(rec, f) for f, _ in params.sort] + [rec.id]
                contacts.append(out)
        return {"contacts": contacts, "total": total}

    def _run_search(self, params: SearchParams, hidden: frozenset[str]) -> tuple[list[_Rec], int]:
        if len(params.sort) == 1 and params.sort[0][0] in ("dateAdded", "dateUpdated"):
            return self._search_by_date(params, hidden)
        return self._search_general(params, hidden)

    def _hidden_ids(self) -> frozenset[str]:
        """The contacts config ``search_hide_share`` leaves out: that share of all, rounded up,
        chosen by a digest of the id (the same contacts on every page and every call)."""
        share = self.search_hide_share
        if share <= 0 or not self._index.recs:
            return frozenset()
        ranked = sorted(self._index.recs, key=lambda cid: hashlib.sha1(cid.encode()).hexdigest())
        return frozenset(ranked[: math.ceil(share * len(ranked))])

    def _residual_pred(
        self, params: SearchParams, skip_range_on: str | None = None, hidden: frozenset[str] = frozenset()
    ) -> Pred | None:
        """AND of the filters still to check per contact (None = every contact in range matches).

        Top-level ``range`` filters on ``skip_range_on`` are left out: the caller already applied
        them by bisecting the sorted list. The location check is left out while the index holds only
        the home location's contacts.
        """
        preds = [
            pred
            for item, pred in params.compiled
            if not (
                skip_range_on
                and isinstance(item, dict)
                and item.get("field") == skip_range_on
                and item.get("operator") == "range"
            )
        ]
        if not self._index.only_home(params.location_id):
            loc = params.location_id
            preds.insert(0, lambda r: r.doc.get("locationId") == loc)
        if hidden:
            preds.append(lambda r: r.id not in hidden)
        if not preds:
            return None
        if len(preds) == 1:
            return preds[0]
        return lambda r: all(p(r) for p in preds)

    def _search_by_date(self, params: SearchParams, hidden: frozenset[str] = frozenset()) -> tuple[list[_Rec], int]:
        """Hot path: one date sort; narrow by top-level ranges with bisect, walk the sorted list."""
        field_name, direction = params.sort[0]
        lst = self._index.by_updated if field_name == "dateUpdated" else self._index.by_added
        recs = self._index.recs
        bounds = _range_bounds(params.filters, field_name)
        lo = 0 if bounds.lo == -math.inf else bisect_left(lst, (int(bounds.lo),))
        hi = len(lst) if bounds.hi == math.inf else bisect_left(lst, (int(bounds.hi) + 1,))
        hi = max(lo, hi)
        pred = self._residual_pred(params, skip_range_on=field_name, hidden=hidden)
        total = hi - lo if pred is None else sum(1 for _, cid in lst[lo:hi] if pred(recs[cid]))

        cursor = None
        if params.search_after is not None:
            cursor = (
                _coerce_cursor(params.search_after[0], field_name, 0),
                _cursor_id(params.search_after[-1], len(params.search_after) - 1),
            )
        skip = (params.page - 1) * params.page_limit if params.page else 0
        if direction == "asc":
            start = lo if cursor is None else max(lo, bisect_right(lst, cursor))
            if pred is None:  # O(log n + page): no per-contact work at all
                return [recs[cid] for _, cid in lst[start + skip : min(hi, start + skip + params.page_limit)]], total
            order: Iterable[tuple[int, str]] = (lst[i] for i in range(start, hi))
        else:
            order = _desc_order(lst, lo, hi, cursor)
        out: list[_Rec] = []
        for _, cid in order:
            rec = recs[cid]
            if pred is not None and not pred(rec):
                continue
            if skip:
                skip -= 1
                continue
            out.append(rec)
            if len(out) >= params.page_limit:
                break
        return out, total

    def _search_general(self, params: SearchParams, hidden: frozenset[str] = frozenset()) -> tuple[list[_Rec], int]:
        """Any sort: filter everything, sort with the id tiebreaker, then cursor/page (O(n log n)).

        Sorting is done as stable passes from the last key to the first (id first), which keeps
        native comparisons; missing values go last in both directions, like Elasticsearch.
        """
        pred = self._residual_pred(params, hidden=hidden)
        recs = self._index.recs.values()
        matches = list(recs) if pred is None else [r for r in recs if pred(r)]
        matches.sort(key=lambda r: r.id)
        for f, d in reversed(params.sort):
            if d == "asc":
                matches.sort(key=lambda r, f=f: _missing_last_key(_sort_value(r, f)))
            else:
                matches.sort(key=lambda r, f=f: _missing_last_key_desc(_sort_value(r, f)), reverse=True)
        start = 0
        if params.search_after is not None:
            cursor = [
                _coerce_cursor(v, f, i)
                for i, ((f, _), v) in enumerate(zip(params.sort, params.search_after[:-1], strict=True))
            ]
            cursor_id = _cursor_id(params.search_after[-1], len(params.sort))
            # Binary search for the first contact strictly after the cursor position.
            lo_i, hi_i = 0, len(matches)
            while lo_i < hi_i:
                mid = (lo_i + hi_i) // 2
                if _position_cmp(matches[mid], params.sort, cursor, cursor_id) > 0:
                    hi_i = mid
                else:
                    lo_i = mid + 1
            start = lo_i
        if params.page:
            start += (params.page - 1) * params.page_limit
        return matches[start : start + params.page_limit], len(matches)

    # ---- deprecated list + business listing -------------------------------------------------------

    def list_contacts(
        self,
        location_id: str,
        *,
        limit: int = 20,
        start_after: int | None = None,
        start_after_id: str | None = None,
        query: str | None = None,
    ) -> dict:
        """``GET /contacts/``: dateAdded asc, id asc; cursor = contacts strictly after (startAfter, id)."""
        with self.lock:
            self._drain()
            lst = self._index.by_added
            recs = self._index.recs
            if start_after is None and start_after_id:
                rec = recs.get(start_after_id)
                start_after = rec.added if rec else None
            if start_after is None:
                start = 0
            elif start_after_id:
                start = bisect_right(lst, (start_after, start_after_id))
            else:
                start = bisect_left(lst, (start_after + 1,))
            needle = query.lower() if query else None
            same_location = self._index.only_home(location_id)

            def match(rec: _Rec) -> bool:
                if not same_location and rec.doc.get("locationId") != location_id:
                    return False
                return needle is None or _query_match(rec.doc, needle)

            if same_location and needle is None:
                total, before = len(lst), start
                page = [recs[cid] for _, cid in lst[start : start + limit]]
                more = start + limit < len(lst)
            else:
                flags = [match(recs[cid]) for _, cid in lst]
                total, before = sum(flags), sum(flags[:start])
                page, more = [], False
                for i in range(start, len(lst)):
                    if flags[i]:
                        if len(page) == limit:
                            more = True
                            break
                        page.append(recs[lst[i][1]])
            return {
                "contacts": [dict(r.doc) for r in page],
                "total": total,
                "position": before,
                "more": more and bool(page),
                "last": (page[-1].added, page[-1].id) if page else None,
            }

    def business_contacts(
        self, business_id: str, location_id: str, *, limit: int, skip: int, query: str | None
    ) -> dict:
        """``GET /contacts/business/{id}``: dateAdded asc, id asc; skip/limit paging."""
        with self.lock:
            self._drain()
            needle = query.lower() if query else None
            recs = self._index.recs
            matches = [
                recs[cid]
                for _, cid in self._index.by_added
                if recs[cid].doc.get("businessId") == business_id
                and recs[cid].doc.get("locationId") == location_id
                and (needle is None or _query_match(recs[cid].doc, needle))
            ]
            return {"contacts": [dict(r.doc) for r in matches[skip : skip + limit]], "count": len(matches)}


# --------------------------------------------------------------------------------------------------
# helpers


def _search_item(doc: dict, shape: str) -> dict:
    """A ``POST /contacts/search`` item (without ``searchAfter``) in ``search_item_shape`` ``shape``."""
    if shape == "doc_example":
        src = {**doc, "address": doc["address1"]} if "address1" in doc else doc
        return {k: src[k] for k in DOC_EXAMPLE_ITEM_KEYS if k in src}
    return {k: v for k, v in doc.items() if k != "dndSettings"}  # live search omits it (#43)


def _cursor_id(v: Any, i: int) -> str:
    if not isinstance(v, str) or not v:
        raise unprocessable(f"searchAfter.{i} must be the contact id (a string)")
    return v


def _query_match(doc: dict, needle: str) -> bool:
    for key in ("fullNameLowerCase", "contactName", "email", "phone", "companyName"):
        v = doc.get(key)
        if isinstance(v, str) and needle in v.lower():
            return True
    return False


def _desc_order(
    lst: list[tuple[int, str]], lo: int, hi: int, cursor: tuple[Any, str] | None
) -> Iterator[tuple[int, str]]:
    """Walk ``lst[lo:hi]`` by ms descending with ids ascending inside each ms (the id tiebreaker)."""
    upper = hi
    if cursor is not None:
        c_ms, c_id = cursor
        # Rest of the cursor's own millisecond: ids after the cursor id.
        g_from = max(lo, bisect_right(lst, (c_ms, c_id)))
        g_to = min(hi, bisect_left(lst, (c_ms + 1,)))
        yield from (lst[i] for i in range(g_from, g_to))
        upper = min(hi, bisect_left(lst, (c_ms,)))
    i = upper - 1
    while i >= lo:
        ms = lst[i][0]
        j = bisect_left(lst, (ms,), lo, i + 1)
        yield from (lst[k] for k in range(j, i + 1))
        i = j - 1
