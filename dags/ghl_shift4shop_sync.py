"""
### GHL → Shift4Shop incremental sync

Pulls HighLevel contacts changed since the stored watermarks, validates each batch with Great
Expectations (bad rows → quarantine), fetches the changed contacts' tasks, notes and appointments,
maps everything to Shift4Shop (`include/mappings/*.yaml`: customer fields, a Comments summary, tag →
customer group, CRM tickets and messages), bulk-upserts it, then advances each stream's watermark.

* GHL calls share the `ghl_api` pool and store writes the `shift4shop_api` pool (create them:
  `airflow pools set ghl_api 2 "HighLevel API"`, `airflow pools set shift4shop_api 1 "Shift4Shop API"`),
  on top of the client's request budgets.
* One DAG per tenant of `include/tenants.yaml` (README "Tenants"): the default tenant is
  `ghl_shift4shop_sync`; tenant `T` is `ghl_shift4shop_sync__T`, with its own connections, pools,
  schedule, mapping overrides and state.
* A stream that fails keeps its watermark; the others advance, and the run ends failed.

* Connections: `ghl_default`, `shift4shop_default` (see docs/connections.md).
* Manual run over a window: trigger with `window_start` (and optionally `window_end`, excluded),
  ISO-8601; it moves no watermark. A backfill run (`airflow backfill create --dag-id
  ghl_shift4shop_sync --from-date … --to-date …`) takes its data interval `[start, end)` as the
  window the same way: it re-syncs the contacts changed in it, writes only what differs and moves
  no watermark (tested with the real command and scheduler; README "Backfill").
* A new tenant's full history: `airflow dags trigger ghl_shift4shop_sync` (the first run starts
  from no watermark), not a backfill.
* CRM tickets and messages are off by default: the store e-mails customers for them
  (include/mappings/crm_to_store.yaml).
* The run summary is the `report` task's return value (XCom tab) and its log.
* `load` emits an event on the store's customers asset with the run's counts (Assets view).
* A failed run is notified through `GHL_S4S_NOTIFY`; so is a run not finished
  `GHL_S4S_SYNC_DEADLINE_HOURS` after it was queued (deadline alert).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable
from ghl_shift4shop import observability, sync
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
from ghl_shift4shop.tenants import Tenant, build_dags


def _run_id() -> str:
    return get_current_context()["run_id"]


def build(tenant: Tenant):
    """The sync DAG of one tenant; its tasks pass ``tenant.name`` to every task body."""
    name = tenant.name
    store_asset = observability.customers_asset(tenant.shift4shop_conn_id)

    @dag(
        dag_id=tenant.sync_dag_id,
        schedule=CronDataIntervalTimetable(tenant.schedule, timezone="UTC"),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,  # one writer per watermark
        default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True},
        tags=["ghl", "shift4shop", "sync", *([] if tenant.is_default else [f"tenant:{name}"])],
        params={
            "window_start": Param(None, type=["null", "string"], description="ISO-8601; sync exactly this window"),
            "window_end": Param(None, type=["null", "string"], description="ISO-8601; end of the window (exclusive)"),
            "max_bad_share": Param(None, type=["null", "number"], description="override GHL_S4S_MAX_BAD_SHARE"),
        },
        doc_md=__doc__,
        on_failure_callback=observability.failure_notifier(),  # GHL_S4S_NOTIFY
        deadline=observability.sync_deadline(),  # GHL_S4S_SYNC_DEADLINE_HOURS
    )
    def ghl_shift4shop_sync():
        @task
        def plan_window() -> Window:
            ctx = get_current_context()
            dr = ctx["dag_run"]
            interval = (ctx.get("data_interval_start"), ctx.get("data_interval_end"))
            run_type = getattr(dr.run_type, "value", dr.run_type)
            return sync.plan_window(ctx["run_id"], str(run_type), interval, dict(ctx["params"]), tenant=name)

        @task(pool=tenant.ghl_pool)
        def extract(window: Window) -> list[BatchRef]:
            summary: ExtractSummary = sync.extract(window, tenant=name)
            get_current_context()["ti"].xcom_push(key="summary", value=summary)
            return summary["batches"]  # mapped over: one validate/transform per batch file

        @task(max_active_tis_per_dagrun=2)
        def validate(ref: BatchRef) -> ValidatedRef:
            return sync.validate(ref, _run_id(), tenant=name)

        @task(trigger_rule="none_failed")
        def quality_gate(results: list[ValidatedRef]) -> GateResult:
            return sync.quality_gate(results, get_current_context()["params"].get("max_bad_share"), tenant=name)

        @task(pool=tenant.ghl_pool, max_active_tis_per_dagrun=2)
        def fetch_children(ref: ValidatedRef, window: Window) -> FetchedRef:
            return sync.fetch_children(ref, window, tenant=name)

        @task(max_active_tis_per_dagrun=2)
        def transform(ref: FetchedRef) -> BatchRef:
            return sync.transform(ref, _run_id(), tenant=name)

        @task(trigger_rule="none_failed", pool=tenant.shift4shop_pool, outlets=[store_asset])
        def load(refs: list[BatchRef]) -> LoadResult:
            loaded = sync.load(refs, _run_id(), tenant=name)
            outlet_events = get_current_context()["outlet_events"]
            observability.record_sync_load(outlet_events, loaded, _run_id(), tenant.shift4shop_conn_id, name)
            return loaded

        @task(trigger_rule="none_failed", pool=tenant.shift4shop_pool)
        def load_crm(fetched: list[FetchedRef]) -> dict[str, StreamStatus]:
            return sync.load_crm(fetched, _run_id(), tenant=name)

        @task(trigger_rule="none_failed")
        def commit_watermark(
            window: Window, extracted: ExtractSummary, loaded: LoadResult, crm: dict[str, StreamStatus]
        ) -> WatermarkResult:
            return sync.commit_watermark(window, extracted, loaded, crm, tenant=name)

        @task(trigger_rule="none_failed")
        def report(watermark: WatermarkResult) -> RunSummary:
            return sync.report(_run_id(), watermark, tenant=name)

        window = plan_window()
        extracted = extract(window)
        validated = validate.expand(ref=extracted)
        gate = quality_gate(validated)
        fetched = fetch_children.partial(window=window).expand(ref=validated)
        gate >> fetched
        transformed = transform.expand(ref=fetched)
        loaded = load(transformed)
        crm = load_crm(fetched)
        loaded >> crm  # tickets need the customers' ids
        mark = commit_watermark(window, extracted["summary"], loaded, crm)
        report(mark)

    return ghl_shift4shop_sync()


# One tenant's DAG that cannot be built is an import error of its own; the others are still built.
globals().update(build_dags(build, lambda t: t.sync_dag_id))
