"""
### GHL → Shift4Shop nightly reconciliation

A full pass over both sides, cheap by design: every GHL contact through the search cursor (500 a
page), every task of the location through the task search, every store customer through
`GET /Customers` pages of 500, and both counts. They are joined through the id map and the GHL id
kept on the customer (`AdditionalField1`).

* Findings: `missing_in_store`, `drift` (per mapped field), `tasks_changed`, `deleted_in_ghl`,
  `reappeared`, `duplicate_email`, `dangling_id_map`, `count_mismatch`; each listed with its ids.
* What happens to each kind is `include/mappings/reconcile.yaml` (defaults: repair drift, missing
  customers and changed tasks through the sync's own load path, GHL wins; disable customers whose
  contact is gone, enable them again when it comes back; report duplicates and dangling id-map rows).
* Tasks: `compare` (reads the store and the id map, then GHL) → `recheck` (asks GHL again for every
  contact about to be treated as gone; re-reads the contacts to repair) → `repair` (re-reads each
  customer about to be switched off, then writes the store) → `report`. Only customers the id map
  links to this job are switched off; a contact made again with a gone one's e-mail takes its
  customer over.
* Brake: a run that would disable or delete more than `GHL_S4S_RECONCILE_MAX_DELETE_SHARE` (2%) of
  the store's customers, or whose GHL search delivered fewer contacts than its own `total`, does
  none of it and fails (a short answer whose `total` agrees is caught only by the share).
* `dry_run` param: compare and report, write nothing to the store.
* Report: `<data dir>/reconcile/<run id>/findings.csv` and `summary.html`, the `reconcile_runs` /
  `reconcile_findings` state tables, and the `report` task's log and return value (XCom).
* `repair` emits an event on the store's customers asset with what it changed (Assets view).
* A failed run is notified through `GHL_S4S_NOTIFY`; so is a run not finished by
  `GHL_S4S_RECONCILE_FINISH_BY` (deadline alert).
* Connections: `ghl_default`, `shift4shop_default` (see docs/connections.md).
* One DAG per tenant of `include/tenants.yaml` (README "Tenants"): the default tenant is
  `ghl_shift4shop_reconcile`; tenant `T` is `ghl_shift4shop_reconcile__T`, on its own connections,
  pools, schedule (`reconcile_schedule`), policy override and state.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task
from airflow.timetables.trigger import CronTriggerTimetable
from ghl_shift4shop import observability, reconcile
from ghl_shift4shop.tenants import Tenant, build_dags

# compare and recheck read GHL (the tenant's ghl pool); repair only talks to the store (its store
# pool: it queues behind the sync's loads), so it never holds the store's single slot while waiting on GHL.


def build(tenant: Tenant):
    """The reconciliation DAG of one tenant; its tasks pass ``tenant.name`` to every task body."""
    name = tenant.name
    nightly = tenant.reconcile_schedule  # UTC

    @dag(
        dag_id=tenant.reconcile_dag_id,
        schedule=CronTriggerTimetable(nightly, timezone="UTC"),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        default_args={"retries": 2, "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": True},
        tags=["ghl", "shift4shop", "reconcile", *([] if tenant.is_default else [f"tenant:{name}"])],
        params={"dry_run": Param(False, type="boolean", description="compare and report only; write nothing")},
        doc_md=__doc__,
        on_failure_callback=observability.failure_notifier(),  # GHL_S4S_NOTIFY
        # the tenant's reconcile_finish_by, else GHL_S4S_RECONCILE_FINISH_BY
        deadline=observability.reconcile_deadline(nightly, tenant.reconcile_finish_by),
    )
    def ghl_shift4shop_reconcile():
        @task(pool=tenant.ghl_pool)
        def compare() -> reconcile.ScanResult:
            ctx = get_current_context()
            return reconcile.scan(ctx["run_id"], bool(ctx["params"].get("dry_run")), tenant=name)

        @task(pool=tenant.ghl_pool)
        def recheck(scanned: reconcile.ScanResult) -> reconcile.RecheckResult:
            return reconcile.recheck(scanned, tenant=name)

        @task(pool=tenant.shift4shop_pool, outlets=[observability.customers_asset(tenant.shift4shop_conn_id)])
        def repair(scanned: reconcile.ScanResult, rechecked: reconcile.RecheckResult) -> reconcile.RepairResult:
            repaired = reconcile.repair(scanned, rechecked, tenant=name)
            outlet_events = get_current_context()["outlet_events"]
            observability.record_reconcile_repair(outlet_events, repaired, tenant.shift4shop_conn_id)
            return repaired

        @task(trigger_rule="all_done")
        def report(scanned: reconcile.ScanResult | None, repaired: reconcile.RepairResult | None):
            return reconcile.finish(scanned, repaired, tenant=name)

        scanned = compare()
        report(scanned, repair(scanned, recheck(scanned)))

    return ghl_shift4shop_reconcile()


# One tenant's DAG that cannot be built is an import error of its own; the others are still built.
globals().update(build_dags(build, lambda t: t.reconcile_dag_id))
