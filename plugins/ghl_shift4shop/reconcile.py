"""Nightly reconciliation: a full pass over GHL and the store, findings per kind, repair by policy.

This module owns:

* reading both sides cheaply: GHL contacts through the search cursor (500 a page), every task of
  the location through the task search, store customers through ``GET /Customers`` pages of 500,
  and both counts (the search's ``total``, the store's ``countonly``);
* the comparison, joined through the id map and the GHL id kept on the customer
  (``AdditionalField1``), into findings of the kinds in ``reconcile_policy.ACTIONS``;
* the brake (no disable/delete when it would switch off more than
  ``GHL_S4S_RECONCILE_MAX_DELETE_SHARE`` of the store, or when either side's answer was short);
* the store writes that are not the sync's: disable / enable (bulk ``PUT /Customers`` with
  ``{CustomerID, Enabled}``) and delete (``DELETE /Customers/{id}``), in one place;
* the run's report: ``<data_dir>/reconcile/<run id>/findings.csv`` and ``summary.html``, and the
  ``reconcile_runs`` / ``reconcile_findings`` tables the UI reads.

Data repairs (missing customers, drift, changed tasks) are not written here: they run the sync's
own stages (``sync.validate`` → ``sync.fetch_children`` → ``sync.transform`` → ``sync.load``, i.e.
the batch files and ``CustomerLoader``) over exactly the contacts concerned.

Rules for what is compared (the README says the same):

* drift: every field the mapping produces a value for, against the customer's field; the e-mail
  case-insensitively, the rest exactly (both as the transform would write them, already cut to the
  store's limits). A field GHL leaves empty is not compared: the sync never clears a store field.
  Passwords and fields the mapping does not write are never compared. ``Comments`` is built from
  tasks, notes and appointments: its tasks part is compared through the task sweep
  (``tasks_changed``); notes and appointments would cost a call per contact and are not swept.
  The customer group (from tags) is not compared.
* only customers the id map links to this job are ever disabled or deleted: ones it made, and
  ones the sync adopted by e-mail (the same person); a customer that merely carries a value in
  the GHL id field is only reported. Each removal is asked again on both sides first.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from ghl_shift4shop.batches import read_jsonl, stage_path, write_jsonl
from ghl_shift4shop.settings import Settings, load_settings
from ghl_shift4shop.sync import fail_without_retry
from ghl_shift4shop.transport import ApiError, AuthError, DailyBudgetLow, mask_email

if TYPE_CHECKING:
    from ghl_shift4shop.crm_config import CrmConfig
    from ghl_shift4shop.ghl.hook import GhlHook
    from ghl_shift4shop.mapping import Mapping
    from ghl_shift4shop.reconcile_policy import ReconcilePolicy
    from ghl_shift4shop.shift4shop.hook import Shift4ShopHook
    from ghl_shift4shop.state import StateStore

log = logging.getLogger(__name__)

STREAM = "contacts"
EPOCH = "1970-01-01T00:00:00.000Z"
PUT_CHUNK = 100  # the store's bulk PUT takes at most 100 items
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")

# What a planned action becomes once done (``report`` is never "done": it is listed).
DONE = {
    "repair": "repaired",
    "disable": "disabled",
    "enable": "enabled",
    "delete": "deleted",
    "forget": "forgotten",
    "handover": "handed_over",
}
REMOVING = ("disable", "delete")  # the actions the brake guards
# Actions that act on "this contact is gone": each is checked again, on both sides, just before.
GONE_ACTIONS = ("disable", "delete", "forget", "handover")
SETTLED = ("braked", "skipped", "failed")  # outcomes recheck gives that repair never acts on


# -- XCom payloads ---------------------------------------------------------------------------------
class ReadCounts(TypedDict):
    ghl_contacts: int  # distinct contacts the search walk delivered
    ghl_rows: int  # search items delivered (a contact changed during the walk comes twice)
    ghl_total: int | None  # what the search said matched
    store_customers: int
    store_count: int  # GET /Customers?countonly=1
    tasks: int


class ScanResult(TypedDict):
    """What ``compare`` hands to ``repair``: the findings and the GHL contacts to re-sync are files."""

    run_id: str
    started_at: str
    dry_run: bool
    report_dir: str
    findings_path: str
    read: ReadCounts
    truncated: list[str]  # sides whose answer held fewer records than their count: "ghl", "store"
    calls_ghl: int
    calls_shift4shop: int


class RecheckResult(TypedDict):
    """What ``recheck`` hands to ``repair``: the brake's verdict and the re-read contacts' batches."""

    run_id: str
    findings_path: str
    braked: list[str]  # kinds whose removals the brake stopped
    brake_reason: str | None
    fetched: list[dict]  # FetchedRef per batch (the CRM streams' load reads them)
    transformed: list[dict]  # BatchRef per batch, ready for the sync's load
    calls_ghl: int


class RepairResult(TypedDict):
    run_id: str
    findings_path: str
    braked: list[str]  # kinds whose removals the brake stopped
    brake_reason: str | None
    load: dict  # the sync's load summary for the re-synced contacts ({} when none)
    calls_ghl: int
    calls_shift4shop: int


class ReconcileSummary(TypedDict):
    run_id: str
    status: str  # ok | braked | failed
    dry_run: bool
    report_dir: str
    findings: int
    kinds: dict[str, int]
    actions: dict[str, int]
    read: ReadCounts
    brake_reason: str | None
    calls_ghl: int
    calls_shift4shop: int


def report_dir(data_dir: Path, run_id: str) -> Path:
    return Path(data_dir) / "reconcile" / _UNSAFE.sub("_", run_id)


def work_id(run_id: str) -> str:
    """The key of the repair's staged files and counters in the sync's stage functions.

    Not the Airflow run id itself: the nightly run at 02:00 and the sync run whose interval ends at
    02:00 both get ``scheduled__…T02:00:00+00:00`` (run ids come from ``run_after``), and they run
    at the same time. With one key, the repair's batch files would replace the sync's (the same
    ``runs/<run id>/contacts/extract-1`` path) and its load counters the sync run's.
    """
    return f"reconcile__{run_id}"


def finding(kind: str, planned: str, **values) -> dict:
    """One finding; ``planned`` is the policy's action, ``action`` what became of it."""
    return {
        "kind": kind,
        "source_id": values.get("source_id"),
        "target_id": values.get("target_id"),
        "field": values.get("field"),
        "ghl_value": values.get("ghl_value"),
        "store_value": values.get("store_value"),
        "planned": planned,
        "action": "reported" if planned == "report" else f"would_{planned}",
        "detail": values.get("detail"),
    }


# -- reading both sides ----------------------------------------------------------------------------
def read_ghl(hook: GhlHook, *, page_limit: int, workers: int) -> tuple[dict[str, dict], int, int | None]:
    """Every contact, through the search cursor (sorted by ``dateUpdated``, ``searchAfter``).

    Items in the search-doc shape (no names) are replaced by the full contact, as the extract does.
    Returns (contacts by id, items delivered, the search's ``total``).
    """
    from ghl_shift4shop.extract import full_contacts
    from ghl_shift4shop.ghl.hook import normalize_search_item

    contacts: dict[str, dict] = {}
    rows, total = 0, None
    for page in hook.iter_contacts_updated(since=EPOCH, page_limit=page_limit, inclusive=True):
        if total is None:
            total = page.total
        rows += len(page.contacts)
        items, _, _ = full_contacts(hook, [normalize_search_item(c) for c in page.contacts], workers)
        for contact in items:
            if contact.get("id"):
                contacts[contact["id"]] = contact  # changed during the walk: the later copy wins
    return contacts, rows, total


def read_store(hook: Shift4ShopHook, *, page_limit: int) -> tuple[list[dict], int]:
    """Every customer (pages of ``page_limit``) and the store's own count, read first."""
    count = hook.count_customers()
    customers = [c for page in hook.iter_customer_pages(page_limit=page_limit) for c in page]
    return customers, count


def sweep_tasks(hook: GhlHook, contact_ids: Iterable[str], expectations_dir: Path) -> tuple[dict[str, list], int]:
    """Every task of the location, per contact, kept only where the sync would keep it (valid)."""
    from ghl_shift4shop.children import by_contact, validate_items

    tasks = hook.search_tasks(None)
    grouped = by_contact(tasks, list(contact_ids))
    valid, _bad = validate_items("tasks", grouped, expectations_dir)
    return valid, len(tasks)


# -- comparing -------------------------------------------------------------------------------------
def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _enabled(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


def compare(
    *,
    ghl: dict[str, dict],
    customers: list[dict],
    mapping: Mapping,
    policy: ReconcilePolicy,
    mapped: dict,
    disabled: dict[str, str],
    quarantined: dict[str, str],
    expected: dict[str, dict],
    tasks_expected: dict[str, tuple[str, str]] | None,
    tasks_stored: dict[str, tuple[str, str]],
) -> list[dict]:
    """The findings of one pass (a repair re-syncs the contacts of the ``repair`` ones).

    ``mapped``: contact id → ``CustomerLink`` (the id map); ``disabled``: contacts this job
    disabled; ``quarantined``: contact id → reason; ``expected``: contact id → the transform's
    payload; ``tasks_expected`` (None: no task sweep) / ``tasks_stored``: the tasks part of
    ``Comments`` from the sweep / as the sync last wrote it.
    """
    src = mapping.source_id_field
    targets = [r.target for r in mapping.rules]
    by_id = {str(c.get("CustomerID")): c for c in customers}
    carrying: dict[str, list[dict]] = defaultdict(list)
    for c in customers:
        if gid := _text(c.get(src)):
            carrying[gid].append(c)
    findings: list[dict] = []
    missing: dict[str, dict] = {}  # contact id → its missing_in_store finding
    # e-mail → (finding, customer or None) of id-map rows whose contact is gone (deleted_in_ghl, or
    # dangling_id_map when the customer is gone too)
    gone_ours: dict[str, tuple[dict, dict | None]] = {}

    def add(kind: str, **values) -> dict:
        f = finding(kind, policy.action(kind), **values)
        findings.append(f)
        return f

    for cid in ghl:
        link = mapped.get(cid)
        customer = by_id.get(link.customer_id) if link else None
        if customer is None and carrying.get(cid):
            customer = min(carrying[cid], key=lambda c: int(c["CustomerID"]))
        if customer is None:
            why = (
                f"the id map names customer {link.customer_id}, which the store does not have"
                if link
                else "never reached the store"
            )
            f = add("missing_in_store", source_id=cid, target_id=link.customer_id if link else None, detail=why)
            missing[cid] = f
            if cid in quarantined:  # the sync's quarantine holds it: fixing the data is a person's job
                f.update(planned="report", action="reported", detail=f"{why}; quarantined: {quarantined[cid]}")
            continue
        target = str(customer["CustomerID"])
        if not _enabled(customer.get("Enabled")) and cid in disabled:
            add("reappeared", source_id=cid, target_id=target, field="Enabled", ghl_value=True, store_value=False)
        payload = expected.get(cid) or {}
        for name in targets:
            want = payload.get(name)
            if want is None:
                continue  # GHL says nothing: the sync never clears a store field
            have = customer.get(name)
            same = (
                _text(want).lower() == _text(have).lower()
                if name == mapping.match_field
                else _text(want) == _text(have)
            )
            if not same:
                add("drift", source_id=cid, target_id=target, field=name, ghl_value=want, store_value=have)
        if tasks_expected is not None and link is not None:
            want_part = tasks_expected.get(cid, ("", ""))
            have_part = tasks_stored.get(cid, ("", ""))
            if tuple(want_part) != tuple(have_part):
                add(
                    "tasks_changed",
                    source_id=cid,
                    target_id=target,
                    field="Comments (tasks)",
                    ghl_value=" ".join(p for p in want_part if p),
                    store_value=" ".join(p for p in have_part if p),
                    detail="a task changed without touching its contact",
                )

    # Customers whose contact is gone: through the id map, then by the GHL id they carry.
    seen: set[str] = set()
    for cid, link in mapped.items():
        if cid in ghl:
            continue
        customer = by_id.get(link.customer_id)
        if customer is None:
            f = add(
                "dangling_id_map",
                source_id=cid,
                target_id=link.customer_id,
                detail="neither the GHL contact nor the store customer exists",
            )
            if link.email:  # its e-mail may be a new contact's now (see _handovers)
                gone_ours.setdefault(link.email.lower(), (f, None))
        elif _text(customer.get(src)) != cid:
            add(
                "dangling_id_map",
                source_id=cid,
                target_id=link.customer_id,
                store_value=customer.get(src),
                detail="the GHL contact is gone and the customer carries another GHL id (not ours to change)",
            )
        else:
            seen.add(link.customer_id)
            f = _deleted(add, cid, customer, ours=True)
            # The sync blocks a successor on the id-map row's e-mail; the store's may have been
            # edited since. Either one names the successor.
            for email in {_text(customer.get("Email")).lower(), _text(link.email).lower()} - {""}:
                gone_ours.setdefault(email, (f, customer))
    # A customer the id map links to a live contact is that contact's, whatever stale id it still
    # carries (its drift finding rewrites the field).
    seen.update(link.customer_id for cid, link in mapped.items() if cid in ghl)
    for gid, held in carrying.items():
        if gid in ghl:
            continue
        for customer in held:
            if str(customer["CustomerID"]) not in seen:
                # Not linked to this job by the id map: the value may be a merchant's own label in
                # that field, or a customer another tool made. Listed, never switched off.
                _deleted(add, gid, customer, ours=False)
    if policy.action("missing_in_store") == "repair":
        _handovers(missing, gone_ours, expected, mapping.match_field, disabled)

    by_email: dict[str, list[dict]] = defaultdict(list)
    for c in customers:
        if email := _text(c.get("Email")).lower():
            by_email[email].append(c)
    for held in by_email.values():
        if len(held) < 2:
            continue
        ids = sorted(int(c["CustomerID"]) for c in held)
        for c in sorted(held, key=lambda c: int(c["CustomerID"])):
            others = ", ".join(str(i) for i in ids if i != int(c["CustomerID"]))
            add(
                "duplicate_email",
                source_id=_text(c.get(src)) or None,
                target_id=str(c["CustomerID"]),
                field="Email",
                store_value=c.get("Email"),
                detail=f"the same e-mail is also on customer(s) {others}",
            )
    return findings


def _deleted(add, contact_id: str, customer: dict, *, ours: bool) -> dict:
    target = str(customer["CustomerID"])
    f = add(
        "deleted_in_ghl", source_id=contact_id, target_id=target, field="Enabled", store_value=customer.get("Enabled")
    )
    if not ours:
        f.update(
            planned="report",
            action="reported",
            detail="the customer carries this value as its GHL id, but the id map does not link it to this job: "
            "only reported",
        )
    elif f["planned"] == "disable" and not _enabled(customer.get("Enabled")):
        f.update(planned="report", action="already_disabled", detail="the customer is disabled already")
    return f


def _handovers(missing: dict, gone_ours: dict, expected: dict, match_field: str, disabled: dict) -> None:
    """A contact deleted and made again in GHL with the same e-mail: the new one takes its place.

    The old contact's id-map row still holds the e-mail, so the sync quarantines the new contact
    (``duplicate_email``) for good and, left alone, the old customer would be switched off: the
    person would lose their customer. Instead the id-map row moves to the new contact and the
    sync's load writes the customer from it (a customer this job disabled is enabled again); where
    the old customer is gone from the store too (``dangling_id_map``), the row is forgotten and the
    load makes the new contact's customer.
    """
    for cid, f in missing.items():
        email = _text((expected.get(cid) or {}).get(match_field)).lower()
        if not email or email not in gone_ours:
            continue
        dead, customer = gone_ours.pop(email)
        if dead["planned"] == "handover":  # already taken, through its other e-mail
            continue
        target = dead["target_id"] if customer is not None else None
        dead.update(
            planned="handover",
            action="would_handover",
            handover_to=cid,
            detail=f"contact {cid} has this e-mail now and takes "
            + ("the customer over" if target else "its place (the customer is gone: a new one is made)"),
        )
        f.update(
            planned="repair",
            action="would_repair",
            detail=f"takes the place of deleted contact {dead['source_id']} (same e-mail)"
            + (f": customer {target}" if target else ""),
            handover={
                "from": dead["source_id"],
                "customer_id": target,
                "email": email,
                "enable": customer is not None
                and not _enabled(customer.get("Enabled"))
                and disabled.get(dead["source_id"]) == target,
            },
        )


def count_findings(read: ReadCounts, policy: ReconcilePolicy) -> tuple[list[dict], list[str]]:
    """A finding per side whose answer held fewer records than its own count (a truncated answer)."""
    out, truncated = [], []
    total = read["ghl_total"]
    # Distinct contacts, not rows: a contact changed during the walk comes twice, and counting
    # it twice could make a short answer look complete.
    if total is not None and read["ghl_contacts"] < total:
        truncated.append("ghl")
        out.append(
            finding(
                "count_mismatch",
                "report",
                field="ghl search total",
                ghl_value=total,
                store_value=read["ghl_contacts"],
                detail=f"GHL's search said {total} contacts match; the walk delivered {read['ghl_contacts']}",
            )
        )
    if read["store_customers"] < read["store_count"]:
        truncated.append("store")
        out.append(
            finding(
                "count_mismatch",
                "report",
                field="store countonly",
                ghl_value=read["store_count"],
                store_value=read["store_customers"],
                detail=f"the store counts {read['store_count']} customers; its pages held {read['store_customers']}",
            )
        )
    return out, truncated


# -- the task bodies -------------------------------------------------------------------------------
@fail_without_retry
def scan(run_id: str, dry_run: bool, tenant: str | None = None) -> ScanResult:
    """Read both sides, compare, and write the findings (and the contacts to re-sync) to files."""
    from ghl_shift4shop import sync
    from ghl_shift4shop.crm_summary import tasks_part
    from ghl_shift4shop.idmaps import CustomerMap, DisabledMap
    from ghl_shift4shop.preflight import check_tenant_alone
    from ghl_shift4shop.reconcile_policy import load_policy
    from ghl_shift4shop.transform import transform_records

    settings = load_settings(tenant)
    check_tenant_alone(settings.tenant)  # its repairs write the store too
    started = datetime.now(UTC)
    policy = load_policy(settings.mappings_dir, settings.mapping_overrides)  # a bad policy fails before any call
    mapping = sync.contacts_mapping(settings)
    crm = sync.crm_config(settings)
    state = sync.state_store(settings)
    ghl_hook, store_hook = sync.ghl_hook(settings), sync.shift4shop_hook(settings)

    # The store and the id map first, GHL last: a contact made while this runs and loaded by a
    # concurrent sync then shows as "missing" (harmless: its repair finds it loaded), never as a
    # customer whose contact is gone (which would switch it off).
    customers, count = read_store(store_hook, page_limit=settings.shift4shop_page_limit)
    mapped = CustomerMap(state, mapping.stream).all()
    disabled = DisabledMap(state).all()
    quarantined = {q["source_id"]: q["reason"] for q in state.open_quarantine(STREAM)}
    ghl, rows, total = read_ghl(ghl_hook, page_limit=settings.ghl_page_limit, workers=settings.ghl_workers)
    tasks_expected, tasks_stored, n_tasks = _tasks(crm, ghl_hook, ghl, state, settings, tasks_part)
    read: ReadCounts = {
        "ghl_contacts": len(ghl),
        "ghl_rows": rows,
        "ghl_total": total,
        "store_customers": len(customers),
        "store_count": count,
        "tasks": n_tasks,
    }
    expected = {row["source_id"]: row["payload"] for row in transform_records(list(ghl.values()), mapping)}
    findings = compare(
        ghl=ghl,
        customers=customers,
        mapping=mapping,
        policy=policy,
        mapped=mapped,
        disabled=disabled,
        quarantined=quarantined,
        expected=expected,
        tasks_expected=tasks_expected,
        tasks_stored=tasks_stored,
    )
    counted, truncated = count_findings(read, policy)
    findings = counted + findings
    out = report_dir(settings.data_dir, run_id)
    findings_path = out / "findings.jsonl"
    write_jsonl(findings_path, findings)
    kinds = Counter(f["kind"] for f in findings)
    log.info(
        "reconcile %s read %d GHL contacts (search total %s), %d store customers (count %d), %d tasks: %s",
        run_id,
        len(ghl),
        total,
        len(customers),
        count,
        n_tasks,
        dict(kinds) or "no findings",
    )
    return {
        "run_id": run_id,
        "started_at": started.isoformat(),
        "dry_run": bool(dry_run),
        "report_dir": str(out),
        "findings_path": str(findings_path),
        "read": read,
        "truncated": truncated,
        "calls_ghl": ghl_hook.calls["ghl"],
        "calls_shift4shop": store_hook.calls["shift4shop"],
    }


def _tasks(crm: CrmConfig, hook: GhlHook, ghl: dict, state: StateStore, settings: Settings, tasks_part):
    """(tasks part per contact from the sweep, as last stored, number of tasks); (None, {}, 0) when
    the tasks part of Comments is off."""
    if not (crm.comments_enabled and crm.enabled("tasks")):
        return None, {}, 0
    valid, n_tasks = sweep_tasks(hook, ghl, settings.expectations_dir)
    now = datetime.now(UTC)
    expected = {cid: tasks_part(items, now) for cid, items in valid.items()}
    stored = {cid: parts["tasks"] for cid, parts in state.get_parts(ghl).items() if "tasks" in parts}
    return expected, stored, n_tasks


@fail_without_retry
def recheck(scan_result: ScanResult, tenant: str | None = None) -> RecheckResult:
    """The GHL side of the repair (``ghl_api`` pool): the brake, every "gone" contact asked for
    again, and the contacts to repair read afresh through the sync's GHL stages.

    Nothing is written to the store here; ``repair`` does that in the store's pool.
    """
    from ghl_shift4shop import sync

    settings = load_settings(tenant)
    run_id = scan_result["run_id"]
    findings = list(read_jsonl(scan_result["findings_path"]))
    braked, reason = _brake(findings, scan_result, settings.reconcile_max_delete_share)
    for f in findings:
        if f["planned"] != "report" and (f["kind"] in braked or "*" in braked):
            f["action"] = "braked"
    held = {f["source_id"] for f in findings if f["planned"] == "handover" and f["action"] == "braked"}
    for f in findings:  # a successor cannot be loaded while the gone contact keeps its e-mail
        if (f.get("handover") or {}).get("from") in held:
            f["action"] = "braked"
    result: RecheckResult = {
        "run_id": run_id,
        "findings_path": scan_result["findings_path"],
        "braked": sorted(braked),
        "brake_reason": reason,
        "fetched": [],
        "transformed": [],
        "calls_ghl": 0,
    }
    if scan_result["dry_run"]:
        write_jsonl(Path(scan_result["findings_path"]), findings)
        return result
    todo = [f for f in findings if f["planned"] != "report" and f["action"] != "braked"]
    ghl_hook = sync.ghl_hook(settings)
    # Asked again just before acting: a contact seen as gone may have been missed by the walk or
    # restored since. Only a "not found" answer counts as gone (contact_not_found).
    gone = [f for f in todo if f["planned"] in GONE_ACTIONS]
    now = fresh_contacts(ghl_hook, sorted({f["source_id"] for f in gone}), settings.ghl_workers)
    back = {cid for cid, contact in now.items() if contact is not None}
    for f in gone:
        answer = now.get(f["source_id"])
        if isinstance(answer, ApiError):  # not known to be gone: nothing is done to its customer
            f.update(action="failed", detail=mask_email(f"asking GHL again failed: {answer}"))
        elif answer is not None:
            f.update(action="skipped", detail="the contact exists in GHL (asked again after the comparison)")
    unsure = {f["source_id"] for f in gone if f["action"] == "failed"}
    for f in todo:
        took = f.get("handover")
        if took and took["from"] in back:
            f.update(action="skipped", detail=f"contact {took['from']} exists in GHL and keeps its e-mail")
        elif took and took["from"] in unsure:
            f.update(action="skipped", detail=f"contact {took['from']} could not be asked again: it keeps its e-mail")
    repairs = [f for f in todo if f["planned"] == "repair" and f["action"] != "skipped"]
    result["fetched"], result["transformed"] = _refetch(repairs, work_id(run_id), settings, ghl_hook)
    staged_calls = sync.state_store(settings).run_totals(work_id(run_id)).get("calls_ghl", 0)
    result["calls_ghl"] = staged_calls + ghl_hook.calls["ghl"]
    write_jsonl(Path(scan_result["findings_path"]), findings)
    return result


def _brake(findings: list[dict], scan_result: ScanResult, max_share: float) -> tuple[set[str], str | None]:
    """Which kinds repair nothing this run, and why.

    A short store answer stops every repair (anything "missing" may just not have been listed). A
    short GHL answer, or removals above ``max_share`` of the store's customers, stop the removals
    (disable/delete): the share is the real guard, since GHL's ``total`` may agree with a short list.
    """
    truncated = scan_result["truncated"]
    if "store" in truncated:
        return {"*"}, "the store's pages held fewer customers than its count: nothing is repaired"
    removing = [f for f in findings if f["planned"] in REMOVING]
    if not removing and "ghl" not in truncated:
        return set(), None
    base = max(scan_result["read"]["store_count"], scan_result["read"]["store_customers"])
    share = len(removing) / base if base else 1.0
    kinds = {f["kind"] for f in removing}
    if "ghl" in truncated:
        # An id-map row looks dangling when its contact was merely left out: keep those too.
        kinds |= {f["kind"] for f in findings if f["planned"] in GONE_ACTIONS} | {"count_mismatch"}
        return kinds, f"GHL's search answer was short: {len(removing)} customers are not disabled or deleted"
    if share > max_share:
        return kinds, (
            f"{len(removing)} of {base} customers ({share:.1%}) would be disabled or deleted, more than "
            f"GHL_S4S_RECONCILE_MAX_DELETE_SHARE ({max_share:.1%}): none are"
        )
    return set(), None


def _refetch(repairs: list[dict], run_id: str, settings: Settings, ghl_hook: GhlHook) -> tuple[list, list]:
    """The repaired contacts read afresh and run through validate → fetch_children → transform."""
    from ghl_shift4shop import sync

    ids = sorted({f["source_id"] for f in repairs})
    if not ids:
        return [], []
    # Read afresh, not the copies from the comparison: the sync may have loaded a newer version
    # since, and a repair must never write an older one over it. One call per repaired contact.
    current = fresh_contacts(ghl_hook, ids, settings.ghl_workers)
    contacts = [c for c in current.values() if isinstance(c, dict)]
    for f in repairs:
        answer = current.get(f["source_id"])
        if answer is None:
            f.update(action="skipped", detail="the contact was deleted in GHL after the comparison")
        elif isinstance(answer, ApiError):
            f.update(action="failed", detail=mask_email(f"reading it again failed: {answer}"))
    size = max(1, settings.batch_size)
    refs = []
    for i in range(0, len(contacts), size):
        path = stage_path(settings.data_dir, run_id, STREAM, "extract", i // size + 1)
        refs.append({"batch": i // size + 1, "path": str(path), "rows": write_jsonl(path, contacts[i : i + size])})
    crm = sync.crm_config(settings)
    # Every child stream is fetched for these contacts, whatever its watermark.
    window = {"run_id": run_id, "mode": "window", "since": EPOCH, "until": None, "stream": STREAM}
    window["streams"] = dict.fromkeys(crm.enabled_children, "")
    t = settings.tenant
    fetched = [sync.fetch_children(sync.validate(ref, run_id, tenant=t), window, tenant=t) for ref in refs]
    return fetched, [sync.transform(ref, run_id, tenant=t) for ref in fetched]


@fail_without_retry
def repair(scan_result: ScanResult, rechecked: RecheckResult, tenant: str | None = None) -> RepairResult:
    """The store side (``shift4shop_api`` pool): removals checked against the customer as it is now,
    then the policy applied (nothing in a dry run)."""
    from ghl_shift4shop import sync
    from ghl_shift4shop.idmaps import CustomerMap, DisabledMap

    settings = load_settings(tenant)
    findings = list(read_jsonl(rechecked["findings_path"]))
    load_summary: dict = {}
    store_calls = 0
    if not scan_result["dry_run"]:
        state = sync.state_store(settings)
        customers, disabled = CustomerMap(state), DisabledMap(state)
        store_hook = sync.shift4shop_hook(settings)
        # Settled by recheck already: braked, skipped (the contact is back) or failed (not known to be gone).
        todo = [f for f in findings if f["planned"] != "report" and f["action"] not in SETTLED]
        _still_theirs(todo, store_hook, sync.contacts_mapping(settings).source_id_field)
        todo = [f for f in todo if f["action"] not in SETTLED]
        _hand_over(todo, customers, disabled)
        load_summary = _reload(todo, rechecked, customers, state, settings)
        _switch(todo, store_hook, customers, disabled)
        store_calls = store_hook.calls["shift4shop"] + load_summary.get("calls_shift4shop", 0)
        forget = [f for f in todo if f["planned"] == "forget"]
        if forget:
            customers.forget(f["source_id"] for f in forget)
            for f in forget:
                f["action"] = "forgotten"
    write_jsonl(Path(rechecked["findings_path"]), findings)
    return {
        "run_id": scan_result["run_id"],
        "findings_path": rechecked["findings_path"],
        "braked": rechecked["braked"],
        "brake_reason": rechecked["brake_reason"],
        "load": load_summary,
        "calls_ghl": rechecked["calls_ghl"],
        "calls_shift4shop": store_calls,
    }


def _still_theirs(todo: list[dict], hook: Shift4ShopHook, source_field: str) -> None:
    """Each customer about to be switched off, deleted or handed over must still carry the gone
    contact's GHL id (``GET /Customers/{id}``): a sync or a merchant may have changed it since.

    A handed-over customer that already carries its successor's id passes too (a retried repair).
    A customer the store will not answer about is left alone (``failed``); the rest goes on.
    """
    for f in todo:
        if f["planned"] not in GONE_ACTIONS or not f.get("target_id"):
            continue
        try:
            customer = hook.get_customer(f["target_id"])
        except (AuthError, DailyBudgetLow):
            raise
        except ApiError as exc:
            f.update(action="failed", detail=mask_email(f"reading the customer again failed: {exc}"))
            continue
        carries = _text(customer.get(source_field)) if customer else None
        if f["kind"] == "dangling_id_map":  # the comparison saw the customer gone, or carrying another id
            was_gone = f.get("store_value") is None
            if (customer is None) != was_gone or carries == f["source_id"]:
                f.update(action="skipped", detail="the customer changed after the comparison")
        elif customer is None:
            f.update(action="skipped", detail="the customer is no longer in the store")
        elif carries not in (f["source_id"], f.get("handover_to")):
            f.update(action="skipped", detail="the customer carries another GHL id now (changed after the comparison)")
    left = {f["source_id"] for f in todo if f["planned"] == "handover" and f["action"] not in SETTLED}
    for f in todo:
        took = f.get("handover")
        if took and took["from"] not in left and f["action"] not in SETTLED:
            f.update(action="skipped", detail=f"customer {took['customer_id']} changed after the comparison")


def _hand_over(todo: list[dict], customers, disabled) -> None:
    """Move the id-map row of a deleted contact to the new contact with its e-mail (see _handovers)."""
    from ghl_shift4shop.idmaps import CustomerLink

    moves = [f for f in todo if f.get("handover")]
    if not moves:
        return
    gone = [f["handover"]["from"] for f in moves]
    customers.forget(gone)
    disabled.forget(gone)
    # No digest: the load writes the customer from the new contact whatever it last sent. Where the
    # old customer is gone too, there is nothing to move: the load makes the new contact's customer.
    customers.record(
        CustomerLink(f["source_id"], f["handover"]["customer_id"], f["handover"]["email"], None)
        for f in moves
        if f["handover"]["customer_id"]
    )
    # A customer this job had switched off is now the new contact's: _switch enables it. Should that
    # fail, the next run finds it disabled by this job with its contact present (reappeared).
    disabled.record({f["source_id"]: f["handover"]["customer_id"] for f in moves if f["handover"]["enable"]})
    for f in todo:
        if f["planned"] == "handover" and f["source_id"] in gone:
            f["action"] = "handed_over"


def _reload(todo: list[dict], rechecked: RecheckResult, customers, state: StateStore, settings: Settings) -> dict:
    """Load what ``recheck`` read afresh through the sync's own load (GHL wins)."""
    from ghl_shift4shop import sync

    repairs = [f for f in todo if f["planned"] == "repair"]
    ids = {f["source_id"] for f in repairs}
    if not ids or not rechecked["transformed"]:
        return {}
    run_id = work_id(rechecked["run_id"])
    # A mapping to a customer the (complete) store read did not hold is stale: the loader looks the
    # contact up by e-mail and creates it. A drifted customer's stored digest still matches what the
    # sync last sent, so it is forgotten: the loader then writes the customer whatever the digest.
    stale = {f["source_id"] for f in repairs if f["kind"] == "missing_in_store" and f["target_id"]}
    if stale:
        customers.forget(stale)
    customers.forget_digests(ids - stale)
    loaded = sync.load(rechecked["transformed"], run_id, tenant=settings.tenant)
    if sync.crm_config(settings).ticket_streams:
        sync.load_crm(rechecked["fetched"], run_id, tenant=settings.tenant)
    after = customers.get(ids)
    quarantined = {q["source_id"]: q["reason"] for q in state.open_quarantine(STREAM) if q["source_id"] in ids}
    for f in repairs:
        sid = f["source_id"]
        link = after.get(sid)
        if sid in quarantined:
            f.update(action="failed", detail=f"quarantined: {quarantined[sid]}")
        elif link is None or link.digest is None:
            f.update(action="failed", detail="not loaded (see the dead-letter table)")
        else:
            f["action"] = "repaired"
            if f["kind"] == "missing_in_store":
                f["target_id"] = link.customer_id
    return loaded


def fresh_contacts(hook: GhlHook, contact_ids: list[str], workers: int) -> dict[str, dict | ApiError | None]:
    """Each contact as GHL has it now (``GET /contacts/{id}``): None for one GHL says does not exist,
    the error for one it would not answer (after the transport's retries). Credentials refused or the
    daily budget running low stop the whole task instead: every other call would fail the same way."""
    from concurrent.futures import ThreadPoolExecutor

    from ghl_shift4shop.ghl.hook import contact_not_found, normalize_search_item
    from ghl_shift4shop.transport import ApiError, AuthError, DailyBudgetLow

    def one(contact_id: str) -> dict | ApiError | None:
        try:
            return normalize_search_item(hook.get_contact(contact_id))
        except (AuthError, DailyBudgetLow):
            raise
        except ApiError as exc:
            return None if contact_not_found(exc) else exc

    if not contact_ids:
        return {}
    _ = hook.session  # set up once, before the threads share it
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(contact_ids)))) as pool:
        return dict(zip(contact_ids, pool.map(one, contact_ids), strict=True))


def _switch(todo: list[dict], hook: Shift4ShopHook, customers, disabled) -> None:
    """Disable, enable and delete customers: the reconciliation's only own store writes."""
    back_on = [f for f in todo if (f.get("handover") or {}).get("enable")]
    if back_on:  # a customer this job disabled, handed over to its contact's successor
        results = set_enabled(hook, [f["handover"]["customer_id"] for f in back_on], True)
        for f in back_on:
            res = results[f["handover"]["customer_id"]]
            if res.ok:
                disabled.forget([f["source_id"]])
            else:
                f.update(action="failed", detail=mask_email(f"not enabled again: {res.status} {res.message}"))
    for enabled, planned in ((False, "disable"), (True, "enable")):
        items = [f for f in todo if f["planned"] == planned]
        if not items:
            continue
        results = set_enabled(hook, [f["target_id"] for f in items], enabled)
        done = {}
        for f in items:
            res = results[f["target_id"]]
            if res.ok:
                f["action"] = DONE[planned]
                done[f["source_id"]] = f["target_id"]
            else:
                f.update(action="failed", detail=mask_email(f"{res.status} {res.message}"))
        if enabled:
            disabled.forget(done)
        else:
            disabled.record(done)
    deleted = []
    for f in (f for f in todo if f["planned"] == "delete"):
        res = hook.delete_one(f"/Customers/{f['target_id']}")
        if res.ok:
            f["action"] = "deleted"
            deleted.append(f["source_id"])
        else:
            f.update(action="failed", detail=mask_email(f"{res.status} {res.message}"))
    if deleted:
        customers.forget(deleted)
        disabled.forget(deleted)


def set_enabled(hook: Shift4ShopHook, customer_ids: list[str], enabled: bool) -> dict:
    """``Enabled`` for these customers through bulk ``PUT /Customers``; CustomerID → its result.

    Results are matched by the id they name; an item the store answered only as part of the whole
    request is sent again on its own, so every customer gets its own answer.
    """
    results = {}
    for i in range(0, len(customer_ids), PUT_CHUNK):
        chunk = customer_ids[i : i + PUT_CHUNK]
        answer = hook.update_customers([{"CustomerID": int(cid), "Enabled": enabled} for cid in chunk])
        for cid in chunk:
            res = answer.by_id.get(str(cid))
            if res is None:
                res = hook.update_customers([{"CustomerID": int(cid), "Enabled": enabled}]).by_id[str(cid)]
            results[cid] = res
    return results


# -- the report ------------------------------------------------------------------------------------
CSV_FIELDS = ("kind", "source_id", "target_id", "field", "ghl_value", "store_value", "action", "detail")

HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Reconciliation {{ run_id }}</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;font-size:90%}</style></head><body>
<h1>Reconciliation {{ run_id }}</h1>
<p>Status: <b>{{ status }}</b>{% if dry_run %} (dry run: nothing was written){% endif %}.
{% if brake_reason %}Brake: {{ brake_reason }}.{% endif %}</p>
<p>Read {{ read.ghl_contacts }} GHL contacts (search total {{ read.ghl_total }}), {{ read.store_customers }}
store customers (count {{ read.store_count }}), {{ read.tasks }} tasks.</p>
<table><tr><th>kind</th><th>findings</th></tr>
{% for kind, n in kinds.items() %}<tr><td>{{ kind }}</td><td>{{ n }}</td></tr>{% endfor %}</table>
<table><tr><th>action</th><th>findings</th></tr>
{% for action, n in actions.items() %}<tr><td>{{ action }}</td><td>{{ n }}</td></tr>{% endfor %}</table>
{% for kind, rows in by_kind.items() %}<h2>{{ kind }} ({{ rows|length }})</h2>
<table><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for f in rows[:limit] %}<tr>{% for c in columns %}<td>{{ f[c] if f[c] is not none else "" }}</td>{% endfor %}</tr>
{% endfor %}</table>{% if rows|length > limit %}<p>… {{ rows|length - limit }} more in findings.csv</p>{% endif %}
{% endfor %}</body></html>
"""
HTML_ROWS_PER_KIND = 200


def write_report(out: Path, summary: ReconcileSummary, findings: list[dict]) -> None:
    """``findings.csv`` (every finding) and ``summary.html`` (counts, and a table per kind)."""
    import jinja2

    out.mkdir(parents=True, exist_ok=True)
    with (out / "findings.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for f in findings:
            writer.writerow({k: _cell(f.get(k)) for k in CSV_FIELDS})
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for f in findings:
        by_kind[f["kind"]].append({k: _cell(f.get(k)) for k in CSV_FIELDS})
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    html = env.from_string(HTML).render(
        **summary, by_kind=by_kind, columns=[c for c in CSV_FIELDS if c != "kind"], limit=HTML_ROWS_PER_KIND
    )
    (out / "summary.html").write_text(html, encoding="utf-8")


def _cell(value):
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def finish(
    scan_result: ScanResult | None, repaired: RepairResult | None, tenant: str | None = None
) -> ReconcileSummary:
    """Write the report, store the run, log the summary; fail the task when braked or failed."""
    from airflow.sdk.exceptions import AirflowFailException

    from ghl_shift4shop import sync

    if scan_result is None:
        raise AirflowFailException("the comparison did not finish: nothing to report")
    settings = load_settings(tenant)
    run_id = scan_result["run_id"]
    findings = list(read_jsonl((repaired or scan_result)["findings_path"]))
    if repaired is None:  # recheck or repair failed after their retries: what was done is unknown
        for f in findings:
            if f["planned"] != "report" and f["action"] not in SETTLED:
                f.update(action="failed", detail="the repair task failed; see its log")
    kinds = dict(Counter(f["kind"] for f in findings))
    actions = dict(Counter(f["action"] for f in findings))
    brake_reason = repaired["brake_reason"] if repaired else None
    if repaired is None or actions.get("failed"):
        status = "failed"
    elif repaired["braked"]:
        status = "braked"
    else:
        status = "ok"
    summary: ReconcileSummary = {
        "run_id": run_id,
        "status": status,
        "dry_run": scan_result["dry_run"],
        "report_dir": scan_result["report_dir"],
        "findings": len(findings),
        "kinds": kinds,
        "actions": actions,
        "read": scan_result["read"],
        "brake_reason": brake_reason,
        "calls_ghl": scan_result["calls_ghl"] + (repaired["calls_ghl"] if repaired else 0),
        "calls_shift4shop": scan_result["calls_shift4shop"] + (repaired["calls_shift4shop"] if repaired else 0),
    }
    out = Path(scan_result["report_dir"])
    write_report(out, summary, findings)
    sync.state_store(settings).save_reconcile(
        run_id,
        started_at=datetime.fromisoformat(scan_result["started_at"]),
        dry_run=scan_result["dry_run"],
        status=status,
        summary={"kinds": kinds, "actions": actions, "read": scan_result["read"], "brake_reason": brake_reason},
        findings=[{k: f.get(k) for k in CSV_FIELDS} for f in findings],
        report_dir=str(out),
    )
    lines = [f"reconcile summary for {run_id}: {status}{' (dry run)' if scan_result['dry_run'] else ''}"]
    lines += [f"  {k:<20}{v}" for k, v in sorted(kinds.items())] or ["  no findings"]
    lines += [f"  -> {k:<17}{v}" for k, v in sorted(actions.items())]
    lines.append(f"  report            {out}")
    log.info("\n".join(lines))  # ids and counts only: e-mails stay in the report files
    if status == "braked":
        raise AirflowFailException(f"reconcile braked: {brake_reason} (report: {out})")
    if status == "failed":
        raise AirflowFailException(
            f"reconcile could not repair {actions.get('failed', 'all')} findings (report: {out})"
        )
    return summary
