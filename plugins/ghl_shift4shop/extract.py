"""Extract: GHL contacts changed in a window → batch files on disk.

Memory is one batch, whatever the number of contacts. Search items that hide fields the contact
has (HighLevel's search-doc shape carries only lower-cased names) are replaced by the full contact
(``GET /contacts/{id}``, concurrently within the shared budget), so no mapped field is ever blank
because the search answered in another shape.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from ghl_shift4shop.batches import stage_path, write_jsonl
from ghl_shift4shop.cursors import complete_through
from ghl_shift4shop.ghl.hook import GhlHook, contact_not_found, lacks_detail, normalize_search_item
from ghl_shift4shop.payloads import BatchRef, ExtractSummary
from ghl_shift4shop.timeutil import format_ts
from ghl_shift4shop.transport import ApiError, DailyBudgetLow

log = logging.getLogger(__name__)


def full_contacts(hook: GhlHook, items: list[dict], workers: int) -> tuple[list[dict], int, int]:
    """Replace items that lack detail by the full contact; returns (items, fetched, vanished)."""
    partial = [c["id"] for c in items if c.get("id") and lacks_detail(c)]
    if not partial:
        return items, 0, 0

    def full(contact_id: str) -> dict | None:
        try:
            return hook.get_contact(contact_id)
        except ApiError as exc:
            if contact_not_found(exc):  # deleted since the search listed it
                return None
            raise

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(partial)))) as pool:
        fetched = dict(zip(partial, pool.map(full, partial), strict=True))
    out, vanished = [], 0
    for c in items:
        if c.get("id") in fetched:
            if fetched[c["id"]] is None:
                vanished += 1
                log.info("contact %s was deleted between the search and reading it; skipped", c["id"])
                continue
            c = normalize_search_item(fetched[c["id"]])
        out.append(c)
    return out, len(partial), vanished


def _flush(buffer: dict[str, dict], data_dir: Path, run_id: str, stream: str, batch_no: int) -> BatchRef:
    path = stage_path(data_dir, run_id, stream, "extract", batch_no)
    n = write_jsonl(path, buffer.values())
    return {"batch": batch_no, "path": str(path), "rows": n}


def extract_contacts(
    hook: GhlHook,
    *,
    data_dir: Path,
    run_id: str,
    since: str,
    until: str | None = None,
    batch_size: int = 5000,
    page_limit: int = 500,
    stream: str = "contacts",
    inclusive: bool = True,
    workers: int = 8,
) -> ExtractSummary:
    """Walk the search from ``since`` (through ``until``, inclusive) and write batches of at most
    ``batch_size`` contacts.

    Returns a JSON-safe summary: the batch refs, counts, when the extract started (the watermark
    may never pass it) and the newest ``dateUpdated`` seen.
    """
    started_at = format_ts(datetime.now(UTC))
    batches: list[BatchRef] = []
    buffer: dict[str, dict] = {}
    rows = 0
    total_reported = None
    newest = None
    stopped = None
    fetched_full = vanished = 0
    pages = hook.iter_contacts_updated(since=since, until=until, page_limit=page_limit, inclusive=inclusive)
    while True:
        try:
            page = next(pages)
            items, n_full, n_gone = full_contacts(hook, [normalize_search_item(c) for c in page.contacts], workers)
        except StopIteration:
            break
        except DailyBudgetLow as exc:
            # Everything up to here is in order of dateUpdated: keep it and stop cleanly.
            log.warning("extract stopped early: %s", exc)
            stopped = "ghl_daily_budget"
            break
        if total_reported is None:
            total_reported = page.total
        rows += len(page.contacts)
        fetched_full += n_full
        vanished += n_gone
        for contact in items:
            # A contact changed during the walk moves behind the cursor and comes again: keep
            # the newest copy within the batch (the load is idempotent across batches).
            key = contact.get("id") or f"__noid__{len(buffer)}:{rows}"
            buffer.pop(key, None)
            buffer[key] = contact
            stamp = contact.get("dateUpdated")
            if isinstance(stamp, str) and (newest is None or stamp > newest):
                newest = stamp
            if len(buffer) >= batch_size:
                batches.append(_flush(buffer, data_dir, run_id, stream, len(batches) + 1))
                buffer = {}
    if buffer:
        batches.append(_flush(buffer, data_dir, run_id, stream, len(batches) + 1))
    if stopped is None and total_reported is not None and rows < total_reported:
        # Search said more matched than the cursor walk delivered: pages were skipped.
        raise ApiError("ghl", 200, f"extract incomplete: search reported {total_reported} matches, walk gave {rows}")
    summary: ExtractSummary = {
        "stream": stream,
        "since": since,
        "until": until,
        "started_at": started_at,
        "extracted": sum(b["rows"] for b in batches),
        "pages_rows": rows,
        "fetched_in_full": fetched_full,
        "vanished": vanished,
        "newest_date_updated": newest,
        "stopped": stopped,
        "complete_through": complete_through(newest, stopped_early=bool(stopped)),
        "batches": batches,
        "calls_ghl": hook.calls["ghl"],
    }
    log.info(
        "extracted %d %s (%d batches) changed since %s with %d GHL calls",
        summary["extracted"],
        stream,
        len(batches),
        since,
        summary["calls_ghl"],
    )
    return summary
