"""Load: bulk upsert of transformed customers into Shift4Shop, never creating a duplicate.

For each record, in order:
1. its payload digest equals the one last written → unchanged, no call;
2. the id map (GHL id → CustomerID) knows it → bulk ``PUT /Customers`` (≤100 per call);
3. else a store customer with the same e-mail (case-insensitive) is adopted → PUT;
4. else it is created (array ``POST`` where the store takes one, else one at a time).

What the store answers is never trusted further than it is documented:
* bulk PUT results are matched to items by the id they name, never by position; items the store
  did not answer for individually (a whole-request 404 or 400) are found by halving the chunk
  until each has its own answer (a PUT may be repeated safely);
* a customer that turns out to be gone is looked up by e-mail before it is created again;
* an array POST's results are matched to records by reading the new customers back (the GHL id
  travels in ``AdditionalField1``), and every record the answer does not account for is looked up
  by e-mail before it is sent again, one at a time;
* before any create goes out, an intent is stored in the state database; a create whose answer
  never came (timeout, crash) is looked up, never blindly re-sent.

Items the store fails with a retryable status wait in the dead-letter table until they land (or
are quarantined after ``MAX_DEAD_LETTER_ATTEMPTS`` tries).
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import requests

from ghl_shift4shop.batches import read_jsonl
from ghl_shift4shop.faultpoints import checkpoint
from ghl_shift4shop.idmaps import CustomerLink, CustomerMap, NamedIds
from ghl_shift4shop.mapping import Mapping
from ghl_shift4shop.shift4shop.hook import ItemResult, Shift4ShopHook, WriteAnswer
from ghl_shift4shop.state import StateStore
from ghl_shift4shop.transport import AmbiguousWriteError, ApiError, RetryableError, mask_email

log = logging.getLogger(__name__)

DUPLICATE_EMAIL_HINTS = ("already exist", "duplicate", "already in use", "already registered")
# Per-item statuses worth trying again next run (the store was busy, not the data wrong).
RETRYABLE_ITEM_STATUSES = {408, 409, 423, 429, 500, 502, 503, 504}
MAX_DEAD_LETTER_ATTEMPTS = 5
ARRAY_POST_FACT = "shift4shop_array_post"  # "refused" once the store has refused an array POST
UNSETTLED = "Unsettled"  # result key of a create whose answer never came and that a lookup did not find


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
    settled_by_lookup: int = 0
    newest_date_updated: str | None = None

    def saw(self, stamp: str | None) -> None:
        if stamp and (self.newest_date_updated is None or stamp > self.newest_date_updated):
            self.newest_date_updated = stamp


class EmailResolver:
    """Finds an existing store customer by e-mail with the fewest calls.

    Either one ``GET ?email=`` per address (paged, exact matches only) or, when cheaper, one scan
    of every customer. Where the store holds several customers with one e-mail, the one carrying
    the contact's GHL id wins, then one that carries no GHL id, then the oldest.

    Memory is one batch, whatever the number of contacts: the e-mails the load will ask about are
    counted in the state database (:meth:`want`), never held; what the scan or a look-up finds is
    kept there too, and only the current batch's answers are in memory (:meth:`batch`).
    :meth:`close` deletes the load's rows.
    """

    def __init__(
        self,
        hook: Shift4ShopHook,
        state: StateStore,
        stream: str,
        page_limit: int = 500,
        source_field: str = "AdditionalField1",
    ):
        self.hook = hook
        self.state = state
        self.page_limit = page_limit
        self.source_field = source_field
        self.token = state.resolver_open(stream)
        self.scanned = False  # the scan was chosen
        self._decided = False
        self.lookups: dict[str, list[tuple[int, str]]] = {}  # this batch's answers
        self._stale: set[str] = set()  # forgotten this batch, still on disk
        self._ahead: list[str] = []  # this batch's e-mails, to read at once after the decision

    def want(self, emails: Iterable[str]) -> None:
        """E-mails the load may ask about (before the first question): counted to choose scan or look-ups."""
        self.state.resolver_want(self.token, emails)

    def batch(self, emails: Iterable[str]) -> None:
        """A new batch: drop the last one's answers from memory and read this one's in one query."""
        self._flush()
        if self._decided:
            self.lookups, self._ahead = self.state.resolver_known(self.token, emails), []
        else:  # read once the first question decides between scan and look-ups
            self.lookups, self._ahead = {}, list(emails)

    def held(self) -> int:
        """How many e-mails this resolver holds in memory now."""
        return len(self.lookups) + len(self._stale) + len(self._ahead)

    def close(self) -> None:
        self.lookups, self._stale, self._ahead = {}, set(), []
        self.state.resolver_close(self.token)

    def _flush(self) -> None:
        if self._stale:
            self.state.resolver_forget(self.token, self._stale)
            self._stale = set()

    def _decide(self) -> None:
        self._decided = True
        wanted = self.state.resolver_count(self.token)
        if wanted > 1:
            total = self.hook.count_customers()
            scan_cost = math.ceil(total / self.page_limit)
            if scan_cost < wanted:
                for page in self.hook.iter_customer_pages(page_limit=self.page_limit):
                    found: dict[str, list[tuple[int, str]]] = {}
                    for c in page:
                        found.setdefault(str(c.get("Email") or "").strip().lower(), []).append(self._entry(c))
                    self.state.resolver_index_page(self.token, found)
                self.scanned = True
                log.info("resolved %d emails by scanning %d store customers", wanted, total)
                return
        self.state.resolver_unwant(self.token)  # counted only: each is looked up when asked

    def _entry(self, customer: dict) -> tuple[int, str]:
        return int(customer["CustomerID"]), str(customer.get(self.source_field) or "")

    def candidates(self, email: str) -> list[tuple[int, str]]:
        if not self._decided:
            self._decide()
            self.lookups, self._ahead = self.state.resolver_known(self.token, self._ahead), []
        if email in self._stale:
            self._flush()
        if email not in self.lookups:
            known = self.state.resolver_known(self.token, [email])
            if email in known:
                self.lookups[email] = known[email]
            else:
                found = [self._entry(c) for c in self.hook.find_customers_by_email(email)]
                self.state.resolver_record(self.token, email, found)
                self.lookups[email] = found
        return self.lookups[email]

    def find(self, email: str, source_id: str | None = None, *, exclude: str | None = None) -> str | None:
        found = [(cid, src) for cid, src in self.candidates(email) if str(cid) != exclude]
        if not found:
            return None
        best = min(found, key=lambda c: (c[1] != source_id, c[1] not in ("", source_id), c[0]))
        return str(best[0])

    def owned_by(self, email: str, source_id: str) -> str | None:
        """The customer with this e-mail that carries ``source_id`` as its GHL id, if any."""
        mine = [cid for cid, src in self.candidates(email) if src == source_id]
        return str(min(mine)) if mine else None

    def forget(self, email: str) -> None:
        """The store changed for this e-mail (a create, a deletion): ask it again next time."""
        self.lookups.pop(email, None)
        if self._decided:  # before, nothing is known yet: the scan or look-up will be fresh
            self._stale.add(email)


GROUPS_STREAM = "customer_groups"


def resolve_customer_groups(hook: Shift4ShopHook, state: StateStore, names: set[str]) -> dict[str, str]:
    """Lower-cased group name → CustomerGroupID, creating groups the store does not have.

    The store's groups are listed once per load (a store has few): a group a merchant deleted
    and re-created is found under its new id, and a create whose answer was lost is found by name
    on the retry instead of being created twice. What was found is kept in the id map.
    """
    keys = {n.lower(): n for n in names if n}
    if not keys:
        return {}
    in_store = {str(g.get("Name") or "").strip().lower(): str(g["CustomerGroupID"]) for g in hook.customer_groups()}
    for key in keys:
        if key not in in_store:
            res = hook.create_one("/CustomerGroups", {"Name": keys[key]})
            if not res.ok:
                raise ApiError(
                    "shift4shop", res.status, f"could not create customer group {keys[key]!r}: {res.message}"
                )
            in_store[key] = res.value
            log.info("created customer group %r (%s)", keys[key], res.value)
    known = {key: in_store[key] for key in keys}
    groups = NamedIds(state, GROUPS_STREAM)
    cached = groups.get(known)
    changed = {k: v for k, v in known.items() if cached.get(k) != v}
    if changed:
        groups.record(changed)
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
        self.customers = CustomerMap(state, mapping.stream)
        self.run_id = run_id
        self.put_chunk = min(put_chunk, 100)
        if bulk_create == "auto" and state.get_fact(ARRAY_POST_FACT) == "refused":
            bulk_create = "off"  # learned on an earlier run: the store does not take an array POST
        self.bulk_create = bulk_create  # auto | on | off
        self.page_limit = page_limit
        self.stats = LoadStats()
        self.group_ids: dict[str, str] = {}
        self._dead: set[str] = set()  # source ids waiting in the dead-letter table
        self._intended: set[str] = set()  # source ids with a create intent not settled yet
        self._pending: dict[str, dict] = {}  # intents left by earlier runs: source id → detail
        self._unsettled: set[str] = set()  # creates of this run whose answer never came
        self.resolver: EmailResolver | None = None

    # -- outcomes ----------------------------------------------------------------------------
    def _settled(self, source_ids: Iterable[str]) -> None:
        """These rows reached a final outcome this run: no dead letter, no open create intent."""
        ids = list(source_ids)
        waiting = [s for s in ids if s in self._dead]
        if waiting:
            self.state.clear_dead_letters(self.stream, waiting)
            self._dead.difference_update(waiting)
        intended = [s for s in ids if s in self._intended]
        if intended:
            self.state.settle(self.stream, intended)
            self._intended.difference_update(intended)

    def _landed(self, pairs: list[tuple[dict, str]]) -> None:
        """Record rows the store accepted (row, CustomerID), at once, and settle them."""
        if not pairs:
            return
        self.customers.record(
            CustomerLink(row["source_id"], str(cid), row["match_key"], row["hash"]) for row, cid in pairs
        )
        self._settled(row["source_id"] for row, _ in pairs)

    def _failed(self, row: dict, stage: str, res: ItemResult) -> None:
        """A per-item failure: retryable ones go to the dead-letter store, the rest to quarantine."""
        if row["source_id"] in self._intended and res.key != UNSETTLED:  # the store answered: it did not land
            self.state.settle(self.stream, [row["source_id"]])
            self._intended.discard(row["source_id"])
        if res.key == UNSETTLED:
            self._unsettled.add(row["source_id"])
        if res.status in RETRYABLE_ITEM_STATUSES:
            stored = {k: v for k, v in row.items() if k != "_retry"}
            attempts = self.state.dead_letter(self.stream, row["source_id"], res.status, res.message, stored)
            if attempts < MAX_DEAD_LETTER_ATTEMPTS:
                self._dead.add(row["source_id"])
                self.stats.dead_lettered += 1
                log.warning(
                    "dead-lettered %s (%s %s, try %d), retried next run",
                    row["source_id"],
                    res.status,
                    mask_email(res.message),
                    attempts,
                )
                return
            self._dead.add(row["source_id"])
            self._quarantine(row, f"store_failed_{attempts}_times: {res.status} {res.message}")
            return
        self._quarantine(row, f"store_rejected_{stage}: {res.status} {res.message}")

    def _quarantine(self, row: dict, reason: str) -> None:
        self.state.quarantine(self.stream, "load", self.run_id, [(row["source_id"], reason, row["payload"])])
        self.stats.quarantined += 1
        self._settled([row["source_id"]])
        log.warning("quarantined %s: %s", row["source_id"], mask_email(reason))

    # -- the run -----------------------------------------------------------------------------
    def _prescan(self, refs: list[dict], extra_rows: list[dict]) -> set[str]:
        """One pass over the batch files, a batch at a time: the resolver is told the e-mails of
        unmapped rows (it counts them on disk); returns every group named (a store has few)."""
        groups = {r["group"] for r in extra_rows if r.get("group")}
        # One batch in memory at a time (a list of every batch's rows would hold the whole run).
        for rows in itertools.chain([extra_rows], (list(read_jsonl(ref["path"])) for ref in refs)):
            mapped = self.customers.get(r["source_id"] for r in rows)
            self.resolver.want(r["match_key"] for r in rows if r["source_id"] not in mapped and r["match_key"])
            groups.update(r["group"] for r in rows if r.get("group"))
        return groups

    def _body(self, row: dict) -> dict:
        body = dict(row["payload"])
        group = row.get("group")
        if group is not None:
            body["CustomerGroupID"] = int(self.group_ids[group.lower()]) if group else 0
        return body

    def load(self, refs: list[dict]) -> LoadStats:
        # Items the store failed last time (dead letters) go first; a newer copy of the same
        # contact in this run's batches simply follows and wins. They stay in the dead-letter
        # table until they land or are quarantined, so a retry that fails loses nothing.
        retry = self.state.dead_letter_rows(self.stream)
        self._dead = {r["source_id"] for r in retry}
        self.resolver = EmailResolver(self.hook, self.state, self.stream, self.page_limit, self.mapping.source_id_field)
        try:
            return self._load(refs, retry)
        finally:
            self.resolver.close()

    def _load(self, refs: list[dict], retry: list[dict]) -> LoadStats:
        groups = self._prescan(refs, retry)
        self.group_ids = resolve_customer_groups(self.hook, self.state, groups)
        # Creates sent by an earlier run whose answer never came: their e-mail is asked afresh.
        self._pending = self.state.pending(self.stream)
        self._intended = set(self._pending)
        for detail in self._pending.values():
            if detail.get("email"):
                self.resolver.forget(detail["email"])
        self.stats.retried = len(retry)
        ordered = sorted(refs, key=lambda r: r["batch"])
        # Dead letters share the first batch's bulk calls; a newer copy of a contact in it wins.
        first = list(read_jsonl(ordered[0]["path"])) if ordered else []
        fresh = {row["source_id"] for row in first}
        self._load_batch([{**r, "_retry": True} for r in retry if r["source_id"] not in fresh] + first)
        for ref in ordered[1:]:
            self._load_batch(list(read_jsonl(ref["path"])))
        return self.stats

    def _load_batch(self, rows: list[dict]) -> None:
        self.resolver.batch(r["match_key"] for r in rows if r["match_key"])
        mapped = self.customers.get(r["source_id"] for r in rows)
        owners = self.customers.owners_of(r["match_key"] for r in rows)
        claimed: dict[str, str] = {}  # match key → source id, for records of this batch
        updates: list[tuple[dict, str]] = []
        creates: list[dict] = []
        for row in rows:
            if not row.get("_retry"):  # a dead letter's date says nothing about this run's window
                self.stats.saw(row.get("date_updated"))
            sid, key = row["source_id"], row["match_key"]
            current = mapped.get(sid)
            if current and current.digest == row["hash"]:
                self.stats.unchanged += 1
                self._settled([sid])
                continue
            owner = owners.get(key)
            other = claimed.get(key)
            if (owner and owner.contact_id != sid) or (other and other != sid):
                holder = owner.contact_id if owner and owner.contact_id != sid else other
                self._quarantine(row, f"duplicate_email: {key} already belongs to GHL contact {holder}")
                continue
            claimed[key] = sid
            if sid in self._unsettled:
                # A create of this contact went out earlier in this run and its answer never came:
                # never a second create in the same run. The newest copy waits with it.
                newest = {k: v for k, v in row.items() if k != "_retry"}
                self.state.dead_letter(self.stream, sid, 504, "create unsettled this run", newest, count=False)
                continue
            if current:
                if key and key != current.email:
                    # A new e-mail: the store may not refuse one another customer has (undocumented),
                    # so the sync checks, rather than make two customers share it.
                    other = self.resolver.find(key, sid, exclude=current.customer_id)
                    if other:
                        self._quarantine(row, f"duplicate_email: {key} already belongs to store customer {other}")
                        continue
                updates.append((row, current.customer_id))
                continue
            existing = self.resolver.find(key, sid) or self._landed_under_old_email(sid)
            if existing:
                self.stats.adopted += 1
                updates.append((row, existing))
            else:
                creates.append(row)
        gone = self._update(updates)
        creates += self._reresolve(gone)
        self._create(creates)

    def _landed_under_old_email(self, sid: str) -> str | None:
        """A create of this contact left unanswered by an earlier run, found under the e-mail it had.

        Only a customer carrying the contact's GHL id counts: the e-mail has since changed.
        """
        email = (self._pending.get(sid) or {}).get("email")
        if not email:
            return None
        return self.resolver.owned_by(email, sid)

    def _reresolve(self, gone: list[tuple[dict, str]]) -> list[dict]:
        """Customers that vanished from the store: adopt another with the e-mail, else create again."""
        if not gone:
            return []
        self.customers.forget(row["source_id"] for row, _ in gone)
        log.warning("%d mapped customers were missing in the store; looking them up by e-mail", len(gone))
        adopt, creates = [], []
        for row, old_id in gone:
            self.resolver.forget(row["match_key"])
            existing = self.resolver.find(row["match_key"], row["source_id"], exclude=old_id)
            if existing:
                adopt.append((row, existing))
            else:
                creates.append(row)
        self.stats.adopted += len(adopt)
        for row, _ in self._update(adopt):
            self._quarantine(row, "store_conflict: the customer vanished twice while being updated")
        return creates

    # -- updates -----------------------------------------------------------------------------
    def _update(self, updates: list[tuple[dict, str]]) -> list[tuple[dict, str]]:
        """PUT in chunks; returns (row, CustomerID) of customers that no longer exist."""
        gone: list[tuple[dict, str]] = []
        for chunk in _chunks(updates, self.put_chunk):
            try:
                gone += self._put(chunk)
            except RetryableError as exc:
                # One item alone, failing with 5xx/429 after the retries: with nothing beside it to
                # compare, a cheap read tells "the store is down" from "the store fails this item".
                if len(chunk) > 1 or not self._store_answers():
                    raise
                self._failed(chunk[0][0], "update", ItemResult("Error", "", exc.status or 503, exc.message))
        return gone

    def _put(self, chunk: list[tuple[dict, str]]) -> list[tuple[dict, str]]:
        """PUT one chunk until every item has its own answer; returns the ones that are gone.

        Raises :class:`RetryableError` when the store keeps failing the chunk as a whole (5xx or
        429 after the transport's retries) and halving does not isolate the items at fault: the
        store is down, and the load stops rather than dead-letter everything.
        """
        body = [{**self._body(row), "CustomerID": int(cid)} for row, cid in chunk]
        try:
            answer = self.hook.update_customers(body)
        except RetryableError:
            if len(chunk) == 1:
                raise
            return self._split(chunk, on_store_failure=True)
        done, gone, unanswered = [], [], []
        for row, cid in chunk:
            res = answer.by_id.get(str(cid))
            if res is None:
                unanswered.append((row, cid))
            elif res.ok:
                done.append((row, cid))
            elif res.status == 404:
                gone.append((row, cid))
            else:
                self._failed(row, "update", res)
        self._landed(done)
        self.stats.updated += len(done)
        if unanswered:
            # A whole-request answer (e.g. 404 "One or more Customer records were not found.",
            # applied to all, some or none of the items): halve until each item answers for itself.
            log.info(
                "store answered %d items of a bulk PUT as a whole (%s %s); splitting",
                len(unanswered),
                answer.whole.status,
                mask_email(answer.whole.message[:100]),
            )
            gone += self._split(unanswered)
        return gone

    def _store_answers(self) -> bool:
        """One cheap read (``countonly``): does the store answer at all right now?"""
        try:
            self.hook.count_customers()
        except (RetryableError, requests.RequestException):
            return False
        return True

    def _split(self, chunk: list[tuple[dict, str]], *, on_store_failure: bool = False) -> list[tuple[dict, str]]:
        half = max(len(chunk) // 2, 1)
        gone: list[tuple[dict, str]] = []
        failed: list[tuple[list, RetryableError]] = []
        for part in (chunk[:half], chunk[half:]):
            if not part:
                continue
            try:
                gone += self._put(part)
            except RetryableError as exc:
                failed.append((part, exc))
        if failed and (len(failed) == 2 or not on_store_failure):
            raise failed[0][1]
        for part, exc in failed:  # the other half landed: these items are what the store chokes on
            for row, _ in part:
                self._failed(row, "update", ItemResult("Error", "", exc.status or 503, exc.message))
        return gone

    # -- creates -----------------------------------------------------------------------------
    def _create(self, creates: list[dict]) -> None:
        adopt: list[tuple[dict, str]] = []
        for chunk in _chunks(creates, self.put_chunk):
            self.state.intend(
                self.stream, {row["source_id"]: {"email": row["match_key"]} for row in chunk}, self.run_id
            )
            self._intended.update(row["source_id"] for row in chunk)
            outcomes = self._post(chunk)
            checkpoint("mid_create")  # the store has them, the id map not yet: the worst moment
            created = []
            for row, res in outcomes:
                if res.ok and res.value:
                    created.append((row, res.value))
                    self.resolver.forget(row["match_key"])
                elif res.status == 400 and self._maybe_duplicate(res):
                    # A duplicate e-mail (or a refusal we cannot read): someone created it since we
                    # looked, or the lookup missed it. Look again; adopt what is there.
                    self.resolver.forget(row["match_key"])
                    existing = self.resolver.find(row["match_key"], row["source_id"])
                    if existing:
                        adopt.append((row, existing))
                    else:
                        self._failed(row, "create", res)
                else:
                    self._failed(row, "create", res)
            self._landed(created)
            self.stats.created += len(created)
            checkpoint("mid_load")
        if adopt:
            self.stats.adopted += len(adopt)
            for row, _ in self._update(adopt):
                self._quarantine(row, "store_conflict: customer vanished between create and update")

    @staticmethod
    def _maybe_duplicate(res: ItemResult) -> bool:
        message = res.message.lower()
        return any(h in message for h in DUPLICATE_EMAIL_HINTS) or "no response content" in message or "html" in message

    def _bodies(self, chunk: list[dict]) -> list[dict]:
        # The store requires a password on create; a random one, never logged or stored. The
        # customer sets their own through the store's reset flow.
        defaults = dict(self.mapping.create_defaults)
        return [{**defaults, **self._body(row), "Password": secrets.token_urlsafe(24)} for row in chunk]

    def _post(self, chunk: list[dict]) -> list[tuple[dict, ItemResult]]:
        """Create the rows; returns each row with the store's final answer for it."""
        bodies = self._bodies(chunk)
        if self.bulk_create == "off" or len(chunk) == 1:
            return [(row, self._post_one(row, body)) for row, body in zip(chunk, bodies, strict=True)]
        try:
            answer = self.hook.create_customers(bodies)
        except AmbiguousWriteError as exc:
            if exc.status is None:  # no answer at all: the store may still commit it late
                return self._settle(chunk, bodies, resend=False)
            # A server error to the (undocumented) array: from now on one at a time. A 500 is the
            # store's own answer (whatever it wrote is there now: look each record up, create the
            # rest); a 502/503/504 may come from a gateway while the store still works on it, so
            # what is not found waits for the next run.
            log.info("store answered an array POST with %s; creating customers one at a time", exc.status)
            self._array_refused()
            return self._settle(chunk, bodies, resend=exc.status == 500)
        outcomes = self._match_created(chunk, answer)
        if not any(res.ok for _, res in outcomes) and 400 <= answer.status < 500:
            if self.bulk_create == "on":
                raise ApiError("shift4shop", answer.status, f"the store refused an array POST: {answer.whole.message}")
            log.info("store refused an array POST (%s); creating customers one at a time", answer.status)
            self._array_refused()
        done = {row["source_id"] for row, _ in outcomes}
        rest = [(row, body) for row, body in zip(chunk, bodies, strict=True) if row["source_id"] not in done]
        # Whatever the answer does not account for may or may not have landed: look each up first.
        if rest:
            outcomes += self._settle([r for r, _ in rest], [b for _, b in rest], resend=True)
        return outcomes

    def _array_refused(self) -> None:
        """From now on, and on later runs, create one customer at a time (unless forced ``on``)."""
        if self.bulk_create == "auto":
            self.bulk_create = "off"
            self.state.set_fact(ARRAY_POST_FACT, "refused")

    def _post_one(self, row: dict, body: dict) -> ItemResult:
        try:
            return self.hook.create_customer(body)
        except AmbiguousWriteError as exc:
            return self._settle([row], [body], resend=False, why=exc.message)[0][1]

    def _match_created(self, chunk: list[dict], answer: WriteAnswer) -> list[tuple[dict, ItemResult]]:
        """Pair an array POST's successes with their rows by reading the new customers back.

        The answer's order is not documented, and a result names only the new CustomerID: the
        customer's GHL id (the mapping's ``source_id_field``) says whose it is.
        """
        new_ids = [res.value for res in answer.items if res.ok and res.value]
        if not new_ids:
            return []
        found = self._read_back(new_ids)
        by_source = {str(row["payload"].get(self.mapping.source_id_field) or ""): row for row in chunk}
        outcomes = []
        for cid in new_ids:
            row = by_source.pop(str((found.get(cid) or {}).get(self.mapping.source_id_field) or ""), None)
            if row is not None:
                outcomes.append((row, ItemResult("CustomerID", cid, 201, "Created successfully")))
        return outcomes

    def _read_back(self, ids: list[str]) -> dict[str, dict]:
        """The customers with these (new, so highest) ids: the last page of the store, then one by one."""
        total = self.hook.count_customers()
        offset = max(1, total - self.page_limit + 1)
        found = {
            str(c.get("CustomerID")): c
            for c in self.hook.page("/Customers", offset=offset, limit=self.page_limit)
            if str(c.get("CustomerID")) in set(ids)
        }
        for cid in ids:
            if cid not in found and (customer := self.hook.get_customer(cid)) is not None:
                found[cid] = customer
        return found

    def _settle(
        self, rows: list[dict], bodies: list[dict], *, resend: bool, why: str = ""
    ) -> list[tuple[dict, ItemResult]]:
        """Creates that may have landed: look each up by e-mail before anything is sent again.

        ``resend=False`` after a create whose answer never came: the store may still commit it
        late, so a record not found now is not sent again this run. It waits in the dead-letter
        table with its intent, and the next run looks it up first.
        """
        outcomes = []
        for row, body in zip(rows, bodies, strict=True):
            self.resolver.forget(row["match_key"])
            existing = self.resolver.find(row["match_key"], row["source_id"])
            if existing:
                self.stats.settled_by_lookup += 1
                found = ItemResult("CustomerID", existing, 201, "found by e-mail after an unclear create")
                outcomes.append((row, found))
            elif resend:
                outcomes.append((row, self._post_one(row, body)))
            else:
                message = f"the create's answer never came ({why or 'no answer'}); looked up again on the next run"
                outcomes.append((row, ItemResult(UNSETTLED, "", 504, message)))
        return outcomes


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
        "settled_by_lookup": stats.settled_by_lookup,
        "calls_shift4shop": hook.calls["shift4shop"],
    }
    state.add_stats(run_id, f"load:{mapping.stream}", summary)
    log.info("load %s: %s", mapping.stream, summary)
    return {**summary, "newest_date_updated": stats.newest_date_updated}
