"""The sync's task bodies: each builds what it needs from settings and calls one stage.

DAG files call these and nothing else, so the flow reads in one screen there and every step is
testable here without Airflow. Arguments and return values are small JSON-safe dicts (XCom).
"""

from __future__ import annotations

import functools
import logging
from functools import cache
from typing import TYPE_CHECKING

from ghl_shift4shop.errors import PermanentError
from ghl_shift4shop.settings import Settings, load_settings
from ghl_shift4shop.state import StateStore
from ghl_shift4shop.timeutil import format_ts, next_watermark, parse_ts

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
def _state(url: str) -> StateStore:
    return StateStore(url)


def state_store(settings: Settings | None = None) -> StateStore:
    return _state((settings or load_settings()).state_url)


def contacts_mapping(settings: Settings) -> Mapping:
    from ghl_shift4shop.mapping import load_mapping

    return load_mapping(settings.mappings_dir / MAPPING_FILE)


def ghl_hook(settings: Settings) -> GhlHook:
    from ghl_shift4shop.ghl.hook import GhlHook

    return GhlHook(timeout=settings.http_timeout_seconds, max_attempts=settings.http_max_attempts)


def shift4shop_hook(settings: Settings) -> Shift4ShopHook:
    from ghl_shift4shop.shift4shop.hook import Shift4ShopHook

    return Shift4ShopHook(timeout=settings.http_timeout_seconds, max_attempts=settings.http_max_attempts)


def plan_window(run_id: str, run_type: str, data_interval: tuple | None, params: dict) -> dict:
    """Which changes this run covers.

    * ``window_start``/``window_end`` params, or a backfill run's data interval: exactly that
      window, and the watermark is left alone (a backfill must not move incremental progress).
    * otherwise: everything changed since the stored watermark (incremental).
    """
    settings = load_settings()
    start, end = params.get("window_start"), params.get("window_end")
    if not start and run_type == "backfill" and data_interval and data_interval[0]:
        start, end = format_ts(data_interval[0]), format_ts(data_interval[1])
    if start:
        window = {"mode": "window", "since": format_ts(parse_ts(start)), "until": end and format_ts(parse_ts(end))}
    else:
        mark = state_store(settings).get_watermark(STREAM)
        window = {"mode": "incremental", "since": mark or settings.initial_watermark, "until": None}
    log.info("run %s covers %s", run_id, window)
    return {**window, "run_id": run_id, "stream": STREAM}


@fail_without_retry
def extract(window: dict) -> dict:
    from ghl_shift4shop import extract as extract_stage

    settings = load_settings()
    hook = ghl_hook(settings)
    summary = extract_stage.extract_contacts(
        hook,
        data_dir=settings.data_dir,
        run_id=window["run_id"],
        since=window["since"],
        until=window["until"],
        batch_size=settings.batch_size,
        page_limit=settings.ghl_page_limit,
        stream=window["stream"],
    )
    state_store(settings).add_stats(
        window["run_id"],
        f"extract:{window['stream']}",
        {"extracted": summary["extracted"], "calls_ghl": summary["calls_ghl"]},
    )
    return summary


@fail_without_retry
def validate(ref: dict, run_id: str) -> dict:
    from ghl_shift4shop import validate as validate_stage

    settings = load_settings()
    return validate_stage.validate_batch(
        ref,
        state=state_store(settings),
        data_dir=settings.data_dir,
        expectations_dir=settings.expectations_dir,
        run_id=run_id,
        stream=STREAM,
    )


@fail_without_retry
def quality_gate(results: list[dict], max_bad_share: float | None = None) -> dict:
    from ghl_shift4shop import validate as validate_stage

    settings = load_settings()
    threshold = settings.max_bad_share if max_bad_share is None else float(max_bad_share)
    return validate_stage.quality_gate(list(results), threshold)


@fail_without_retry
def transform(ref: dict, run_id: str) -> dict:
    from ghl_shift4shop import transform as transform_stage

    settings = load_settings()
    return transform_stage.transform_batch(
        ref, mapping=contacts_mapping(settings), data_dir=settings.data_dir, run_id=run_id
    )


@fail_without_retry
def load(refs: list[dict], run_id: str) -> dict:
    from ghl_shift4shop import load as load_stage

    settings = load_settings()
    return load_stage.load_customers(
        list(refs),
        hook=shift4shop_hook(settings),
        state=state_store(settings),
        mapping=contacts_mapping(settings),
        run_id=run_id,
        put_chunk=settings.shift4shop_put_chunk,
        bulk_create=settings.shift4shop_bulk_create,
        page_limit=settings.shift4shop_page_limit,
    )


def commit_watermark(window: dict, extracted: dict, loaded: dict) -> dict:
    """Advance the stream's watermark after a successful load (incremental runs only)."""
    settings = load_settings()
    state = state_store(settings)
    current = state.get_watermark(window["stream"])
    if window["mode"] != "incremental":
        return {"watermark": current, "advanced": False, "reason": "explicit window"}
    new = next_watermark(
        current, extracted["started_at"], loaded.get("newest_date_updated"), settings.watermark_lag_seconds
    )
    advanced = new is not None and new != current
    if advanced:
        state.set_watermark(window["stream"], new, window["run_id"])
    log.info("watermark %s: %s → %s", window["stream"], current, new)
    return {"watermark": new, "previous": current, "advanced": advanced}


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


def report(run_id: str, watermark: dict) -> dict:
    """The run's summary: logged as a table, stored, and returned (visible in the UI's XCom tab)."""
    from ghl_shift4shop.batches import prune_runs

    settings = load_settings()
    pruned = prune_runs(settings.data_dir, settings.keep_run_days)
    if pruned:
        log.info("removed %d run folders older than %s days", pruned, settings.keep_run_days)
    totals = state_store(settings).run_totals(run_id)
    totals["quarantined"] = totals.get("quarantined", 0) + totals.pop("load_quarantined", 0)
    summary = {name: totals.get(name, 0) for name in SUMMARY_FIELDS}
    summary["adopted"] = totals.get("adopted", 0)
    summary["watermark"] = watermark.get("watermark")
    state_store(settings).save_summary(run_id, summary)
    lines = [f"sync summary for {run_id}"] + [f"  {k:<17}{v}" for k, v in summary.items()]
    log.info("\n".join(lines))
    return summary
