"""The sync's task bodies: each builds what it needs from settings and calls one stage.

DAG files call these and nothing else, so the flow reads in one screen there and every step is
testable here without Airflow. Arguments and return values are small JSON-safe dicts (XCom),
named in ``payloads.py``; which changes a run covers and how far watermarks move is ``cursors.py``.
"""

from __future__ import annotations

import functools
import logging
from functools import cache
from typing import TYPE_CHECKING

from ghl_shift4shop.cursors import Cursor
from ghl_shift4shop.errors import PermanentError
from ghl_shift4shop.faultpoints import checkpoint
from ghl_shift4shop.payloads import (
    BatchRef,
    ExtractSummary,
    FetchedRef,
    GateResult,
    LoadResult,
    RunSummary,
    StreamStatus,
    ValidatedRef,
    WatermarkResult,
    Window,
)
from ghl_shift4shop.settings import Settings, load_settings
from ghl_shift4shop.state import StateStore

if TYPE_CHECKING:
    from ghl_shift4shop.ghl.hook import GhlHook
    from ghl_shift4shop.mapping import Mapping
    from ghl_shift4shop.shift4shop.hook import Shift4ShopHook

# Stage modules (pandas, Great Expectations, phonenumbers) are imported inside the task bodies:
# the DAG file imports this module, and parsing must stay light.

log = logging.getLogger(__name__)

STREAM = "contacts"


def fail_without_retry(fn):
    """A :class:`PermanentError` fails the task at once: retries would repeat the same failure."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PermanentError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    return wrapper


MAPPING_FILE = "contacts_to_customers.yaml"


@cache
def _state(url: str, schema: str | None = None) -> StateStore:
    return StateStore(url, schema)


def state_store(settings: Settings | None = None) -> StateStore:
    """The state database of the settings' tenant (one store object per process and database)."""
    settings = settings or load_settings()
    return _state(settings.state_url, settings.state_schema)


def contacts_mapping(settings: Settings) -> Mapping:
    from ghl_shift4shop.mapping import load_mapping

    return load_mapping(settings.mapping_file(MAPPING_FILE))


def crm_config(settings: Settings):
    from ghl_shift4shop.crm_config import load_crm_config

    return load_crm_config(settings.mappings_dir, settings.mapping_overrides)


def ghl_hook(settings: Settings) -> GhlHook:
    from ghl_shift4shop.ghl.hook import GhlHook

    return GhlHook(settings.ghl_conn_id, settings=settings, token_state=state_store(settings))


def shift4shop_hook(settings: Settings) -> Shift4ShopHook:
    from ghl_shift4shop.shift4shop.hook import Shift4ShopHook

    return Shift4ShopHook(settings.shift4shop_conn_id, settings=settings)


@fail_without_retry
def plan_window(
    run_id: str, run_type: str, data_interval: tuple | None, params: dict, tenant: str | None = None
) -> Window:
    """Which changes this run covers (``cursors.Cursor.plan``).

    * ``window_start``/``window_end`` params, or a backfill run's data interval: exactly that
      half-open window, and no watermark moves (a backfill must not move incremental progress).
    * otherwise: everything changed since each stream's stored watermark (incremental).
    """
    from ghl_shift4shop.preflight import check_tenant_alone

    settings = load_settings(tenant)
    check_tenant_alone(settings.tenant)  # before anything of this run is written to the store
    streams = [STREAM, *crm_config(settings).enabled_children]
    state = state_store(settings)
    cursor = Cursor.plan(
        streams=streams,
        stored={s: state.get_watermark(s) for s in streams},
        initial=settings.initial_watermark,
        run_type=run_type,
        data_interval=data_interval,
        params=params,
    )
    window = cursor.to_payload(run_id, STREAM)
    log.info("run %s covers %s", run_id, window)
    return window


@fail_without_retry
def extract(window: Window, tenant: str | None = None) -> ExtractSummary:
    from ghl_shift4shop import extract as extract_stage

    settings = load_settings(tenant)
    hook = ghl_hook(settings)
    since, last, inclusive = Cursor.from_payload(window).search_range()
    summary = extract_stage.extract_contacts(
        hook,
        data_dir=settings.data_dir,
        run_id=window["run_id"],
        since=since,
        until=last,
        batch_size=settings.batch_size,
        page_limit=settings.ghl_page_limit,
        stream=window["stream"],
        inclusive=inclusive,
        workers=settings.ghl_workers,
    )
    state_store(settings).add_stats(
        window["run_id"],
        f"extract:{window['stream']}",
        {
            "extracted": summary["extracted"],
            "calls_ghl": summary["calls_ghl"],
            "stopped_early": int(bool(summary["stopped"])),
            "contacts_read_in_full": summary["fetched_in_full"],
        },
    )
    checkpoint("after_extract")
    return summary


@fail_without_retry
def validate(ref: BatchRef, run_id: str, tenant: str | None = None) -> ValidatedRef:
    from ghl_shift4shop import validate as validate_stage

    settings = load_settings(tenant)
    result = validate_stage.validate_batch(
        ref,
        state=state_store(settings),
        data_dir=settings.data_dir,
        expectations_dir=settings.expectations_dir,
        data_docs=settings.data_docs,
        run_id=run_id,
        stream=STREAM,
    )
    checkpoint("after_validate")
    return result


@fail_without_retry
def quality_gate(
    results: list[ValidatedRef], max_bad_share: float | None = None, tenant: str | None = None
) -> GateResult:
    from ghl_shift4shop import validate as validate_stage

    settings = load_settings(tenant)
    threshold = settings.max_bad_share if max_bad_share is None else float(max_bad_share)
    return validate_stage.quality_gate(list(results), threshold)


@fail_without_retry
def fetch_children(ref: ValidatedRef, window: Window, tenant: str | None = None) -> FetchedRef:
    """Tasks, notes and appointments of the batch's changed contacts; returns the ref plus them."""
    from ghl_shift4shop.children import fetch_children as fetch_stage

    settings = load_settings(tenant)
    result = fetch_stage(
        ref,
        hook=ghl_hook(settings),
        state=state_store(settings),
        cfg=crm_config(settings),
        data_dir=settings.data_dir,
        expectations_dir=settings.expectations_dir,
        data_docs=settings.data_docs,
        run_id=window["run_id"],
        cursor=Cursor.from_payload(window),
        workers=settings.ghl_workers,
    )
    return {**ref, "children": result["streams"]}


@fail_without_retry
def transform(ref: FetchedRef, run_id: str, tenant: str | None = None) -> BatchRef:
    from ghl_shift4shop import transform as transform_stage

    settings = load_settings(tenant)
    return transform_stage.transform_batch(
        ref,
        mapping=contacts_mapping(settings),
        data_dir=settings.data_dir,
        run_id=run_id,
        crm=crm_config(settings),
        state=state_store(settings),
    )


@fail_without_retry
def load(refs: list[BatchRef], run_id: str, tenant: str | None = None) -> LoadResult:
    from ghl_shift4shop import load as load_stage

    settings = load_settings(tenant)
    result = load_stage.load_customers(
        list(refs),
        hook=shift4shop_hook(settings),
        state=state_store(settings),
        mapping=contacts_mapping(settings),
        run_id=run_id,
        put_chunk=settings.shift4shop_put_chunk,
        bulk_create=settings.shift4shop_bulk_create,
        page_limit=settings.shift4shop_page_limit,
    )
    checkpoint("after_load")
    return result


@fail_without_retry
def load_crm(fetched: list[FetchedRef], run_id: str, tenant: str | None = None) -> dict[str, StreamStatus]:
    """Load each CRM child stream; a failing stream is recorded and the others carry on."""
    from ghl_shift4shop.tickets import load_crm_stream
    from ghl_shift4shop.transport import ApiError, AuthError

    settings = load_settings(tenant)
    cfg = crm_config(settings)
    state = state_store(settings)
    hook = shift4shop_hook(settings)
    status: dict[str, StreamStatus] = {}
    for stream in cfg.enabled_children:
        infos = [(ref.get("children") or {}).get(stream) or {"ok": False, "error": "not fetched"} for ref in fetched]
        refs = [{"path": i["path"]} for i in infos if i.get("ok")]
        failed = [i.get("error") for i in infos if not i.get("ok") and not i.get("deferred")]
        deferred = any(i.get("deferred") for i in infos)
        calls_before = hook.calls["shift4shop"]
        try:
            counts = load_crm_stream(stream, refs, hook=hook, state=state, cfg=cfg, run_id=run_id)
            if "held" in counts:
                counts[f"{stream}_held"] = counts.pop("held")
        except AuthError:
            raise  # the store refuses our credentials: every stream would fail the same way
        except (ApiError, PermanentError) as exc:
            log.error("%s: loading into the store failed; its watermark will not move: %s", stream, exc)
            failed.append(str(exc)[:300])
            counts = {}
        calls = hook.calls["shift4shop"] - calls_before
        state.add_stats(
            run_id, f"load_crm:{stream}", {**counts, "calls_shift4shop": calls, f"{stream}_failed": int(bool(failed))}
        )
        status[stream] = {"ok": not failed and not deferred, "deferred": deferred, "errors": failed[:3], **counts}
    return status


def commit_watermark(
    window: Window,
    extracted: ExtractSummary,
    loaded: LoadResult,
    crm: dict[str, StreamStatus] | None = None,
    tenant: str | None = None,
) -> WatermarkResult:
    """Advance each stream's watermark after its successful load (incremental runs only)."""
    settings = load_settings(tenant)
    state = state_store(settings)
    cursor = Cursor.from_payload(window)
    stored = {stream: state.get_watermark(stream) for stream in cursor.marks}
    ok = {window["stream"]: True, **{s: bool(v.get("ok")) for s, v in (crm or {}).items()}}
    step = cursor.advance(
        stored=stored,
        extracted=extracted,
        newest_loaded=loaded.get("newest_date_updated"),
        stream_ok=ok,
        lag_s=settings.watermark_lag_seconds,
    )
    for stream, mark in step.marks.items():
        state.set_watermark(stream, mark, window["run_id"])
    for stream in cursor.marks:
        log.info("watermark %s: %s → %s", stream, stored[stream], step.marks.get(stream, stored[stream]))
    if step.held:
        log.warning("watermarks held back for failed streams: %s", ", ".join(step.held))
    result: WatermarkResult = {
        "watermark": state.get_watermark(window["stream"]),
        "advanced": step.advanced,
        "held": step.held,
    }
    if step.reason:
        result["reason"] = step.reason
    return result


SUMMARY_FIELDS = (
    "extracted",
    "valid",
    "quarantined",
    "created",
    "updated",
    "unchanged",
    "calls_ghl",
    "calls_shift4shop",
)
CRM_FIELDS = (
    "tasks_fetched",
    "notes_fetched",
    "appointments_fetched",
    "tickets_created",
    "tickets_updated",
    "tickets_closed",
    "messages_added",
    "messages_updated",
    "messages_deleted",
    "messages_cut",
    "settled_by_lookup",
    "tasks_held",
    "notes_held",
    "appointments_held",
)


def report(run_id: str, watermark: WatermarkResult, tenant: str | None = None) -> RunSummary:
    """The run's summary: logged as a table, stored, and returned (visible in the UI's XCom tab)."""
    from ghl_shift4shop.batches import prune_runs

    settings = load_settings(tenant)
    pruned = prune_runs(settings.data_dir, settings.keep_run_days)
    if pruned:
        log.info("removed %d run folders older than %s days", pruned, settings.keep_run_days)
    totals = state_store(settings).run_totals(run_id)
    totals["quarantined"] = totals.get("quarantined", 0) + totals.pop("load_quarantined", 0)
    summary: RunSummary = {name: totals.get(name, 0) for name in SUMMARY_FIELDS}
    summary["adopted"] = totals.get("adopted", 0)
    for name in ("dead_lettered", "dead_letters_retried", "stopped_early"):
        if totals.get(name):
            summary[name] = totals[name]
    deferred = sorted({n.removesuffix("_deferred") for n, v in totals.items() if n.endswith("_deferred") and v})
    if deferred:
        summary["deferred_streams"] = ", ".join(deferred)
    summary.update({name: totals[name] for name in CRM_FIELDS if totals.get(name)})
    failed = sorted({name.removesuffix("_failed") for name, v in totals.items() if name.endswith("_failed") and v})
    summary["failed_streams"] = ", ".join(failed) or "none"
    summary["watermark"] = watermark.get("watermark")
    state_store(settings).save_summary(run_id, summary)
    lines = [f"sync summary for {run_id}"] + [f"  {k:<17}{v}" for k, v in summary.items()]
    log.info("\n".join(lines))
    if failed:
        from airflow.sdk.exceptions import AirflowFailException

        # The healthy streams' progress is saved; the run goes red so someone looks at the rest.
        raise AirflowFailException(f"streams failed this run: {', '.join(failed)} (their watermarks were held)")
    return summary
