"""Fetch the rest of the CRM record (tasks, notes, appointments) for contacts changed in the window.

One call pattern per stream, chosen for the fewest GHL calls:
* tasks: the location task search, 100 contact ids per call (paged with ``skip``);
* notes: ``GET /contacts/{id}/notes``, one per changed contact (GHL has no bulk notes endpoint),
  run concurrently on a thread pool that shares the process's GHL request budget;
* appointments: ``GET /contacts/{id}/appointments`` per contact, or the calendar events of every
  calendar, a fortnight per call (``CALENDAR_SLICE``), when that costs fewer calls. Either way the
  same window is kept (a day back to ``horizon_days`` ahead) and every time is turned into UTC: the
  per-contact endpoint writes times without a zone, in the location's time zone; the calendar
  endpoint writes them with an offset.
  So which strategy ran never changes what reaches the store.

Each stream is validated with its own suite (bad items → quarantine) and written to its own file.
A stream whose calls fail (after the HTTP layer's retries) is recorded as failed for this batch;
the other streams carry on, and the failed stream's watermark does not move.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import requests

from ghl_shift4shop.batches import read_jsonl, stage_path, write_jsonl
from ghl_shift4shop.crm_config import CrmConfig
from ghl_shift4shop.crm_summary import parse_when
from ghl_shift4shop.cursors import Cursor
from ghl_shift4shop.ghl.hook import GhlHook
from ghl_shift4shop.state import StateStore
from ghl_shift4shop.timeutil import format_ts
from ghl_shift4shop.transport import ApiError, AuthError, DailyBudgetLow
from ghl_shift4shop.validate import data_docs_dir, load_suite_spec, run_suite, suite_frame

log = logging.getLogger(__name__)

TASK_IDS_PER_SEARCH = 100


def by_contact(items: list[dict], contact_ids: list[str]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {cid: [] for cid in contact_ids}
    for item in items:
        cid = item.get("contactId")
        if cid in grouped:
            grouped[cid].append(item)
    return grouped


APPOINTMENT_LOOKBACK = timedelta(days=1)
APPOINTMENT_TIME_KEYS = ("startTime", "endTime")


def appointment_window(cfg: CrmConfig, now: datetime) -> tuple[datetime, datetime]:
    """The span of appointments the sync keeps, whichever endpoint they came from."""
    return now - APPOINTMENT_LOOKBACK, now + timedelta(days=cfg.streams["appointments"].horizon_days)


def to_utc(value, zone: ZoneInfo):
    """An appointment time as ISO UTC (``...Z``); zone-less times are in the location's zone.

    A value that is not a time is returned unchanged, for validation to quarantine.
    """
    dt = parse_when(value, zone)
    return format_ts(dt) if dt else value


def _in_window(event: dict, start: datetime, end: datetime) -> bool:
    """Overlap with the window, as the calendar endpoint decides it; unreadable times are kept."""
    ev_start = parse_when(event.get("startTime"))
    if ev_start is None:
        return True
    ev_end = parse_when(event.get("endTime")) or ev_start
    return ev_start <= end and max(ev_end, ev_start + timedelta(milliseconds=1)) > start


def fetch_tasks(hook: GhlHook, contact_ids: list[str], cfg: CrmConfig, workers: int) -> dict[str, list[dict]]:
    chunks = [contact_ids[i : i + TASK_IDS_PER_SEARCH] for i in range(0, len(contact_ids), TASK_IDS_PER_SEARCH)]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(chunks) or 1))) as pool:
        pages = list(pool.map(hook.search_tasks, chunks))
    return by_contact([t for page in pages for t in page], contact_ids)


def fetch_notes(hook: GhlHook, contact_ids: list[str], cfg: CrmConfig, workers: int) -> dict[str, list[dict]]:
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return dict(zip(contact_ids, pool.map(hook.contact_notes, contact_ids), strict=True))


# The calendar endpoint answers with every event of the span asked for, whoever it belongs to; a
# batch keeps only its own contacts' events. Asked for the whole window at once, the answer grows
# with the location (136,835 events for one batch at 1M contacts: +325 MB). Asked in slices of this
# span, one answer holds a fortnight of one calendar (it still grows with how busy that is).
CALENDAR_SLICE = timedelta(days=14)


# Which events a [startTime, endTime] query returns is undocumented: those overlapping it, or only
# those wholly inside it (the strict simulator). So the slices cover the window plus this much on
# each side, and each reaches this far into the next: an appointment up to this long, across a cut
# or an end of the window, is wholly inside one slice under either reading. Kept once (by id), and
# then cut to the window exactly (_in_window), as the per-contact endpoint's answers are.
CALENDAR_SLICE_OVERLAP = timedelta(days=1)


def calendar_slices(start: datetime, end: datetime) -> list[tuple[int, int]]:
    """The calendar reads for the window ``[start, end]``, in epoch ms: ``CALENDAR_SLICE`` apart from
    ``CALENDAR_SLICE_OVERLAP`` before ``start``, each reaching ``CALENDAR_SLICE_OVERLAP`` into the
    next, the last ending ``CALENDAR_SLICE_OVERLAP`` after ``end``."""
    start, end = start - CALENDAR_SLICE_OVERLAP, end + CALENDAR_SLICE_OVERLAP
    cuts = [start]
    while cuts[-1] + CALENDAR_SLICE < end:
        cuts.append(cuts[-1] + CALENDAR_SLICE)
    cuts.append(end)
    ms = [int(c.timestamp() * 1000) for c in cuts]
    reach = int(CALENDAR_SLICE_OVERLAP.total_seconds() * 1000)
    return [(lo, min(hi + reach, ms[-1])) for lo, hi in zip(ms, ms[1:], strict=False)]


def _events_of(
    hook: GhlHook, calendars: list[dict], slices: list[tuple[int, int]], contact_ids: list[str]
) -> dict[str, list[dict]]:
    """The events of ``contact_ids``, read calendar by calendar and slice by slice; the rest dropped
    as each answer comes. An event overlapping two slices is in both answers: kept once (by id)."""
    wanted = set(contact_ids)
    seen: set = set()
    events: list[dict] = []
    for cal in calendars:
        for lo, hi in slices:
            for event in hook.calendar_events(cal["id"], lo, hi):
                if event.get("contactId") not in wanted:
                    continue
                key = event.get("id") or repr(sorted(event.items()))
                if key not in seen:
                    seen.add(key)
                    events.append(event)
    return by_contact(events, contact_ids)


def fetch_appointments(hook: GhlHook, contact_ids: list[str], cfg: CrmConfig, workers: int) -> dict[str, list[dict]]:
    zone = ZoneInfo(hook.location_timezone())
    start, end = appointment_window(cfg, datetime.now(UTC))
    slices = calendar_slices(start, end)
    # Per contact costs one call each; by calendar costs 1 (the list) + one per calendar and slice.
    fetched: dict[str, list[dict]] | None = None
    if len(contact_ids) > 1 + len(slices):
        calendars = hook.calendars()
        if 1 + len(calendars) * len(slices) < len(contact_ids):
            fetched = _events_of(hook, calendars, slices, contact_ids)
    if fetched is None:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            fetched = dict(zip(contact_ids, pool.map(hook.contact_appointments, contact_ids), strict=True))
    out: dict[str, list[dict]] = {}
    for cid, items in fetched.items():
        utc = [{**e, **{k: to_utc(e.get(k), zone) for k in APPOINTMENT_TIME_KEYS if k in e}} for e in items]
        out[cid] = [e for e in utc if _in_window(e, start, end)]
    return out


FETCHERS = {"tasks": fetch_tasks, "notes": fetch_notes, "appointments": fetch_appointments}


def validate_items(
    stream: str, fetched: dict[str, list[dict]], expectations_dir: Path, docs_dir: Path | None = None
) -> tuple[dict[str, list[dict]], list[tuple[str, str, dict]]]:
    """Run the stream's suite over all fetched items; returns (valid per contact, quarantine rows).

    With ``docs_dir``, the validation's GX Data Docs are written there (see validate.build_data_docs).
    """
    flat = [(cid, item) for cid, items in fetched.items() for item in items]
    if not flat:
        return fetched, []
    spec = load_suite_spec(expectations_dir, stream)
    frame = suite_frame(spec, [item for _, item in flat])
    failures = run_suite(spec, frame, docs_dir=docs_dir)
    valid: dict[str, list[dict]] = {cid: [] for cid in fetched}
    bad = []
    for pos, (cid, item) in enumerate(flat):
        if pos in failures:
            key = f"{item.get('id') or 'no-id'}@{cid}"
            bad.append((key, "; ".join(failures[pos]), item))
        else:
            valid[cid].append(item)
    return valid, bad


def fetch_children(
    ref: dict,
    *,
    hook: GhlHook,
    state: StateStore,
    cfg: CrmConfig,
    data_dir: Path,
    expectations_dir: Path,
    run_id: str,
    cursor: Cursor,
    workers: int = 8,
    data_docs: bool = True,
) -> dict:
    """Fetch, validate and write every enabled child stream for one validated contact batch.

    Per stream, only the batch's contacts in that stream's part of the run (``cursor.covers``):
    a stream whose watermark is ahead of the others skips contacts it already has.
    """
    contacts = list(read_jsonl(ref["path"]))
    _ = hook.session  # set up once, before the thread pools share it
    result: dict = {"batch": ref["batch"], "streams": {}}
    for stream in cfg.enabled_children:
        ids = [c["id"] for c in contacts if cursor.covers(stream, c.get("dateUpdated"))]
        calls_before = hook.calls["ghl"]
        try:
            fetched = FETCHERS[stream](hook, ids, cfg, workers) if ids else {}
        except AuthError:
            raise  # wrong token or scope: every stream would fail the same way
        except DailyBudgetLow as exc:
            log.warning("%s: deferred to the next run: %s", stream, exc)
            result["streams"][stream] = {"ok": False, "deferred": True, "error": str(exc)[:300]}
            state.add_stats(run_id, f"fetch:{stream}:{ref['batch']}", {f"{stream}_deferred": 1})
            continue
        except (ApiError, requests.RequestException) as exc:
            log.error(
                "%s: fetching batch %d failed; the stream's watermark will not move: %s", stream, ref["batch"], exc
            )
            result["streams"][stream] = {"ok": False, "error": str(exc)[:300]}
            state.add_stats(run_id, f"fetch:{stream}:{ref['batch']}", {f"{stream}_failed": 1})
            continue
        docs = data_docs_dir(data_dir, run_id, stream, ref["batch"]) if data_docs else None
        valid, bad = validate_items(stream, fetched, expectations_dir, docs_dir=docs)
        if bad:
            state.quarantine(stream, "validate", run_id, bad)
        quarantined_ids = defaultdict(list)
        for key, _reason, item in bad:
            quarantined_ids[key.split("@", 1)[1]].append(item.get("id"))
        path = stage_path(data_dir, run_id, stream, "fetched", ref["batch"])
        write_jsonl(
            path,
            (
                {"contact_id": cid, "items": items, "quarantined_ids": quarantined_ids.get(cid, [])}
                for cid, items in valid.items()
            ),
        )
        n_items = sum(len(v) for v in valid.values())
        calls = hook.calls["ghl"] - calls_before
        result["streams"][stream] = {
            "ok": True,
            "path": str(path),
            "contacts": len(ids),
            "items": n_items,
            "quarantined": len(bad),
        }
        state.add_stats(
            run_id,
            f"fetch:{stream}:{ref['batch']}",
            {f"{stream}_fetched": n_items, "quarantined": len(bad), "calls_ghl": calls, f"calls_ghl_{stream}": calls},
        )
        log.info(
            "%s: %d items for %d contacts (%d quarantined) with %d GHL calls",
            stream,
            n_items,
            len(ids),
            len(bad),
            calls,
        )
    return result
