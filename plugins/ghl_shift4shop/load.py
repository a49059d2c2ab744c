"""Load: bulk upsert of transformed customers into Shift4Shop, never creating a duplicate.

For each record, in order:
1. its payload digest equals the one last written → unchanged, no call;
2. the id map (GHL id → CustomerID) knows it → bulk ``PUT /Customers`` (≤100 per call);
3. else a store customer with the same email (case-insensitive) is adopted → PUT;
4. else it is created (array ``POST`` where the store accepts one, else one at a time).
Every per-item result is checked; the id map is written after each call, so a crash loses at
most the call in flight, and a rerun of the same window writes nothing.

Emails of unmapped records are resolved either one ``GET ?email=`` each or by one scan of the
store (``countonly`` + pages of 500), whichever costs fewer calls.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from ghl_shift4shop.batches import read_jsonl
from ghl_shift4shop.faultpoints import checkpoint
from ghl_shift4shop.mapping import Mapping
from ghl_shift4shop.shift4shop.hook import ItemResult, Shift4ShopHook
from ghl_shift4shop.state import MappedId, StateStore
from ghl_shift4shop.transport import AmbiguousWriteError, ApiError, mask_email

log = logging.getLogger(__name__)

DUPLICATE_EMAIL_HINTS = ("already exist", "duplicate", "already in use", "already registered")
# Per-item statuses worth trying again next run (the store was busy, not the data wrong).
RETRYABLE_ITEM_STATUSES = {408, 409, 423, 429, 500, 502, 503, 504}
MAX_DEAD_LETTER_ATTEMPTS = 5


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass
class LoadStats:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    adopted: int = 0
    quarantined: int = 0
    dead_lettered: int = 0
    retried: int = 0
    newest_date_updated: str | None = None

    def saw(self, stamp: str | None) -> None:
        if stamp and (self.newest_date_updated is None or stamp > self.newest_date_updated):
            self.newest_date_updated = stamp


@dataclass
class EmailResolver:
    """Finds an existing store customer by email with the fewest calls."""

    hook: Shift4ShopHook
    wanted: set[str]
    page_limit: int = 500
    _index: dict[str, str] | None = None
    _decided: bool = False
    lookups: dict[str, str | None] = field(default_factory=dict)

    def _decide(self) -> None:
        self._decided = True
        if len(self.wanted) <= 1:
            return
        total = self.hook.count_customers()
        scan_cost = math.ceil(total / self.page_limit)
        if scan_cost < len(self.wanted):
            index: dict[str, str] = {}
            for page in self.hook.iter_customer_pages(page_limit=self.page_limit):
                for c in page:
                    email = str(c.get("Email") or "").strip().lower()
                    if email in self.wanted and email not in index:
                        index[email] = str(c["CustomerID"])
            self._index = index
            log.info("resolved %d emails by scanning %d store customers", len(self.wanted), total)

    def find(self, email: str) -> str | None:
        if not self._decided:
            self._decide()
        if self._index is not None and email in self.wanted:
            return self._index.get(email)
        if email not in self.lookups:
            found = self.hook.find_customers_by_email(email)
            self.lookups[email] = str(min(int(c["CustomerID"]) for c in found)) if found else None
        return self.lookups[email]

    def forget(self, email: str) -> None:
        """After a failed lookup turned into a create, the next find must ask the store again."""
        self.lookups.pop(email, None)
        if self._index is not None:
            self._index.pop(email, None)
            self.wanted.discard(email)


GROUPS_STREAM = "customer_groups"


def resolve_customer_groups(hook: Shift4ShopHook, state: StateStore, names: set[str]) -> dict[str, str]:
    """Lower-cased group name → CustomerGroupID, creating missing groups (cached in the id map)."""
    keys = {n.lower(): n for n in names if n}
    known = {k: m.target_id for k, m in state.get_mapped(GROUPS_STREAM, keys).items()}
    missing = [k for k in keys if k not in known]
    if not missing:
        return known
    in_store = {str(g.get("Name") or "").strip().lower(): str(g["CustomerGroupID"]) for g in hook.customer_groups()}
    found = []
    for key in missing:
        if key not in in_store:
            res = hook.create_one("/CustomerGroups", {"Name": keys[key]})
            if not res.ok:
                raise ApiError(
                    "shift4shop", res.status, f"could not create customer group {keys[key]!r}: {res.message}"
                )
            in_store[key] = res.value
            log.info("created customer group %r (%s)", keys[key], res.value)
        known[key] = in_store[key]
        found.append(MappedId(key, in_store[key], None, None))
    state.record_mapped(GROUPS_STREAM, found)
    return known


class CustomerLoader:
    def __init__(
        self,
        hook: Shift4ShopHook,
        state: StateStore,
        mapping: Mapping,
        run_id: str,
        *,
        put_chunk: int = 100,
        bulk_create: str = "auto",
        page_limit: int = 500,
    ):
        self.hook = hook
        self.state = state
        self.mapping = mapping
        self.stream = mapping.stream
        self.run_id = run_id
        self.put_chunk = min(put_chunk, 100)
        self.bulk_create = bulk_create  # auto | on | off
        self.page_limit = page_limit
        self.stats = LoadStats()
        self.group_ids: dict[str, str] = {}

    # -- helpers -----------------------------------------------------------------------------
    def _failed(self, row: dict, stage: str, res: ItemResult) -> None:
        """A per-item failure: retryable ones go to the dead-letter store, the rest to quarantine."""
        if res.status in RETRYABLE_ITEM_STATUSES:
            attempts = self.state.dead_letter(self.stream, row["source_id"], res.status, res.message, row)
            if attempts < MAX_DEAD_LETTER_ATTEMPTS:
                self.stats.dead_lettered += 1
                log.warning("dead-lettered %s (%s %s), retried next run", row["source_id"], res.status, res.message)
                return
            self.state.clear_dead_letters(self.stream, [row["source_id"]])
            self._quarantine(row, f"store_failed_{attempts}_times: {res.status} {res.message}")
            return
        self._quarantine(row, f"store_rejected_{stage}: {res.status} {res.message}")

    def _quarantine(self, row: dict, reason: str) -> None:
        self.state.quarantine(self.stream, "load", self.run_id, [(row["source_id"], reason, row["payload"])])
        self.stats.quarantined += 1
        log.warning("quarantined %s: %s", row["source_id"], mask_email(reason))

    def _map(self, row: dict, customer_id: str) -> MappedId:
        return MappedId(row["source_id"], customer_id, row["match_key"], row["hash"])

    def _prescan(self, refs: list[dict], extra_rows: list[dict]) -> tuple[set[str], set[str]]:
        """One pass over the batch files: emails of unmapped rows, and every group named."""
        emails: set[str] = set()
        groups = {r["group"] for r in extra_rows if r.get("group")}
        for ref in refs:
            rows = list(read_jsonl(ref["path"]))
            mapped = self.state.get_mapped(self.stream, (r["source_id"] for r in rows))
            emails.update(r["match_key"] for r in rows if r["source_id"] not in mapped and r["match_key"])
            groups.update(r["group"] for r in rows if r.get("group"))
        return emails, groups

    # -- the run -----------------------------------------------------------------------------
    def _body(self, row: dict) -> dict:
        body = dict(row["payload"])
        group = row.get("group")
        if group is not None:
            body["CustomerGroupID"] = int(self.group_ids[group.lower()]) if group else 0
        return body

    def load(self, refs: list[dict]) -> LoadStats:
        # Items the store failed last time (dead letters) go first; a newer copy of the same
        # contact in this run's batches simply follows and wins.
        retry = self.state.dead_letter_rows(self.stream)
        emails, groups = self._prescan(refs, retry)
        self.group_ids = resolve_customer_groups(self.hook, self.state, groups)
        resolver = EmailResolver(self.hook, emails, self.page_limit)
        if retry:
            self.stats.retried = len(retry)
            self.state.clear_dead_letters(self.stream, [r["source_id"] for r in retry])
            self._load_batch(retry, resolver, count_newest=False)
        for ref in sorted(refs, key=lambda r: r["batch"]):
            self._load_batch(list(read_jsonl(ref["path"])), resolver)
        return self.stats

    def _load_batch(self, rows: list[dict], resolver: EmailResolver, count_newest: bool = True) -> None:
        mapped = self.state.get_mapped(self.stream, (r["source_id"] for r in rows))
        owners = self.state.find_by_match_key(self.stream, (r["match_key"] for r in rows))
        claimed: dict[str, str] = {}  # match key → source id, for records of this batch
        updates: list[tuple[dict, str]] = []
        creates: list[dict] = []
        for row in rows:
            if count_newest:
                self.stats.saw(row.get("date_updated"))
            sid, key = row["source_id"], row["match_key"]
            current = mapped.get(sid)
            if current and current.payload_hash == row["hash"]:
                self.stats.unchanged += 1
                continue
            owner = owners.get(key)
            other = claimed.get(key)
            if (owner and owner.source_id != sid) or (other and other != sid):
                holder = owner.source_id if owner and owner.source_id != sid else other
                self._quarantine(row, f"duplicate_email: {key} already belongs to GHL contact {holder}")
                continue
            claimed[key] = sid
            if current:
                updates.append((row, current.target_id))
                continue
            existing = resolver.find(key)
            if existing:
                self.stats.adopted += 1
                updates.append((row, existing))
            else:
                creates.append(row)
        retry_as_create = self._update(updates)
        for row in retry_as_create:
            resolver.forget(row["match_key"])
        self._create(creates + retry_as_create, resolver)

    def _update(self, updates: list[tuple[dict, str]]) -> list[dict]:
        """PUT in chunks; returns rows whose customer no longer exists (to be created again)."""
        gone: list[dict] = []
        for chunk in _chunks(updates, self.put_chunk):
            body = [{**self._body(row), "CustomerID": int(cid)} for row, cid in chunk]
            results = self.hook.update_customers(body)
            done: list[MappedId] = []
            for (row, cid), res in zip(chunk, results, strict=True):
                if res.ok:
                    done.append(self._map(row, cid))
                elif res.status == 404:
                    gone.append(row)
                else:
                    self._failed(row, "update", res)
            self.state.record_mapped(self.stream, done)
            self.stats.updated += len(done)
        if gone:
            self.state.forget_mapped(self.stream, (r["source_id"] for r in gone))
            log.warning("%d mapped customers were missing in the store; creating them again", len(gone))
        return gone

    def _create(self, creates: list[dict], resolver: EmailResolver) -> None:
        conflicts: list[tuple[dict, str]] = []
        for chunk in _chunks(creates, self.put_chunk):
            results = self._post(chunk, resolver)
            checkpoint("mid_create")  # the store has them, the id map not yet: the worst moment
            done: list[MappedId] = []
            for row, res in zip(chunk, results, strict=True):
                if res.ok and res.value:
                    done.append(self._map(row, res.value))
                elif res.status == 400 and any(h in res.message.lower() for h in DUPLICATE_EMAIL_HINTS):
                    # Someone created it since we looked (or a lookup missed it): adopt and update.
                    resolver.forget(row["match_key"])
                    existing = resolver.find(row["match_key"])
                    if existing:
                        conflicts.append((row, existing))
                    else:
                        self._failed(row, "create", res)
                else:
                    self._failed(row, "create", res)
            self.state.record_mapped(self.stream, done)
            self.stats.created += len(done)
            checkpoint("mid_load")
        if conflicts:
            self.stats.adopted += len(conflicts)
            gone = self._update(conflicts)
            for row in gone:
                self._quarantine(row, "store_conflict: customer vanished between create and update")

    def _post(self, chunk: list[dict], resolver: EmailResolver) -> list[ItemResult]:
        # The store requires a password on create; a random one, never logged or stored. The
        # customer sets their own through the store's reset flow.
        defaults = dict(self.mapping.create_defaults)
        bodies = [{**defaults, **self._body(row), "Password": secrets.token_urlsafe(24)} for row in chunk]
        if self.bulk_create != "off" and len(chunk) > 1:
            try:
                status, items = self.hook.create_customers(bodies)
            except AmbiguousWriteError:
                return self._settle_ambiguous(chunk, bodies, resolver)
            if len(items) == len(chunk) and status in (200, 201, 206, 400):
                return items
            if self.bulk_create == "on":
                raise RuntimeError(f"store answered an array POST with {status} and {len(items)} results")
            log.info("store refused an array POST (%s); creating customers one at a time", status)
            self.bulk_create = "off"
        results = []
        for row, body in zip(chunk, bodies, strict=True):
            try:
                results.append(self.hook.create_customer(body))
            except AmbiguousWriteError:
                results.extend(self._settle_ambiguous([row], [body], resolver))
        return results

    def _settle_ambiguous(self, rows: list[dict], bodies: list[dict], resolver: EmailResolver) -> list[ItemResult]:
        """A create timed out: the store may have committed it. Look each one up before re-sending."""
        results = []
        for row, body in zip(rows, bodies, strict=True):
            resolver.forget(row["match_key"])
            existing = resolver.find(row["match_key"])
            if existing:
                results.append(ItemResult("CustomerID", existing, 201, "found after an ambiguous create"))
            else:
                results.append(self.hook.create_customer(body))
        return results


def load_customers(
    refs: list[dict],
    *,
    hook: Shift4ShopHook,
    state: StateStore,
    mapping: Mapping,
    run_id: str,
    put_chunk: int = 100,
    bulk_create: str = "auto",
    page_limit: int = 500,
) -> dict:
    loader = CustomerLoader(
        hook, state, mapping, run_id, put_chunk=put_chunk, bulk_create=bulk_create, page_limit=page_limit
    )
    stats = loader.load(refs)
    summary = {
        "created": stats.created,
        "updated": stats.updated,
        "unchanged": stats.unchanged,
        "adopted": stats.adopted,
        "load_quarantined": stats.quarantined,
        "dead_lettered": stats.dead_lettered,
        "dead_letters_retried": stats.retried,
        "calls_shift4shop": hook.calls["shift4shop"],
    }
    state.add_stats(run_id, f"load:{mapping.stream}", summary)
    log.info("load %s: %s", mapping.stream, summary)
    return {**summary, "newest_date_updated": stats.newest_date_updated}
