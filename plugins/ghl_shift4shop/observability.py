"""What the sync tells the outside world about itself: asset events, failure notices, deadline alerts.

Owns three things, so the DAG files only call in here:

* **Assets.** One Airflow asset per store connection (:func:`customers_asset`); the sync's load task
  and the reconciliation each emit an event on it with their counts in ``extra``
  (:func:`emit_customers_event`), so Airflow's asset and lineage views show every change to the
  store's customers and who made it.
* **Notifications.** ``GHL_S4S_NOTIFY`` picks one notifier per deployment (:func:`build_notifier`):
  ``log`` (default, :class:`LogNotifier`), ``smtp:<to-address>`` (the smtp provider's
  ``SmtpNotifier`` over the ``smtp_default`` connection) or ``slack:<conn_id>`` (the slack
  provider's ``SlackNotifier``, if installed). :func:`failure_notifier` is the DAGs'
  ``on_failure_callback``.
* **Deadlines.** :func:`sync_deadline` (a sync run not finished ``GHL_S4S_SYNC_DEADLINE_HOURS``
  after it was queued) and :func:`reconcile_deadline` (the nightly reconciliation not finished by
  ``GHL_S4S_RECONCILE_FINISH_BY``). Their callback, :func:`deadline_missed`, runs in the triggerer
  and sends through the same notifier.

Notices carry ids, states and reasons, never connection secrets; e-mails are masked
(``transport.mask_email``) as in every log line of the sync.
"""

from __future__ import annotations

import html
import logging
import re
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from airflow.sdk import Asset
from airflow.sdk.bases.notifier import BaseNotifier
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from ghl_shift4shop.settings import SHIFT4SHOP_CONN_ID, load_settings

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- assets

# The counts every customers event carries, in this order; a producer's missing count is 0.
EVENT_COUNTS = ("created", "updated", "unchanged", "quarantined", "dead_lettered")


def customers_asset(conn_id: str = SHIFT4SHOP_CONN_ID) -> Asset:
    """The store's customers, as an Airflow asset: one per store connection.

    Named after the connection id, not its host: the DAG file builds this at parse time, when
    reading a connection (a secrets backend call) is not allowed, and a connection id names one
    store for good while its host may change (a proxy, a simulator). With several tenants each
    store connection gets its own asset.
    """
    return Asset(name=f"shift4shop_customers__{conn_id}", uri=f"shift4shop://{conn_id}/customers", group="shift4shop")


def emit_customers_event(outlet_events: Any, counts: Mapping[str, Any], conn_id: str = SHIFT4SHOP_CONN_ID) -> dict:
    """Put ``counts`` into the ``extra`` of this task's event on the store's customers asset.

    ``outlet_events`` is the task context's ``outlet_events``; the task must list
    ``customers_asset(conn_id)`` in its ``outlets``, or Airflow refuses the event. Any producer (the
    sync's load, the reconciliation) calls this with its own counts and ``run_id``; returns the extra.
    """
    extra: dict[str, Any] = {name: int(counts.get(name) or 0) for name in EVENT_COUNTS}
    extra["run_id"] = str(counts.get("run_id") or "")
    extra["connection"] = conn_id
    outlet_events[customers_asset(conn_id)].extra = extra
    return extra


def record_sync_load(
    outlet_events: Any,
    loaded: Mapping[str, Any],
    run_id: str,
    conn_id: str = SHIFT4SHOP_CONN_ID,
    tenant: str | None = None,
) -> dict:
    """The sync's load task: its customers event, with :func:`sync_load_counts` of ``tenant``'s run."""
    return emit_customers_event(outlet_events, sync_load_counts(loaded, run_id, tenant), conn_id)


# What a reconciliation's repair did to customers, beyond the load's own counts.
RECONCILE_ACTIONS = ("repaired", "disabled", "enabled", "deleted", "handed_over", "skipped", "braked")


def record_reconcile_repair(outlet_events: Any, repaired: Mapping[str, Any], conn_id: str = SHIFT4SHOP_CONN_ID) -> dict:
    """The reconciliation's repair task: its customers event, the re-sync's load counts plus its actions."""
    from ghl_shift4shop.batches import read_jsonl

    actions = Counter(f["action"] for f in read_jsonl(repaired["findings_path"]))
    counts = {**(repaired.get("load") or {}), "run_id": repaired["run_id"]}
    extra = emit_customers_event(outlet_events, counts, conn_id)
    extra.update({name: actions.get(name, 0) for name in RECONCILE_ACTIONS})
    return extra


def sync_load_counts(loaded: Mapping[str, Any], run_id: str, tenant: str | None = None) -> dict:
    """The sync's counts for the customers event: the load's own, plus the run's quarantine so far.

    Rows quarantined by validation never reach the load, so the run's totals (state database) add
    them to the load's own quarantine, the same sum the run summary shows.
    """
    from ghl_shift4shop.sync import state_store

    totals = state_store(load_settings(tenant)).run_totals(run_id)  # tenants' run ids can be equal
    return {
        "created": loaded.get("created", 0),
        "updated": loaded.get("updated", 0),
        "unchanged": loaded.get("unchanged", 0),
        "quarantined": totals.get("quarantined", 0) + totals.get("load_quarantined", 0),
        "dead_lettered": loaded.get("dead_lettered", 0),
        "run_id": run_id,
    }


# --------------------------------------------------------------------------------------- notifications


def _get(obj: Any, name: str) -> Any:
    """An attribute or key of a context value (the triggerer's context holds plain dicts)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def describe(context: Mapping[str, Any]) -> tuple[str, str]:
    """(subject, body) of a notice, from a failure callback's or a missed deadline's context.

    Only ids, states, times and the failure reason; e-mails masked.
    """
    deadline = context.get("deadline")
    dag_run = context.get("dag_run")
    dag_id = _get(context.get("dag"), "dag_id") or _get(dag_run, "dag_id") or "?"
    # The triggerer's context holds the run as the REST API shows it (``dag_run_id``).
    run_id = context.get("run_id") or _get(dag_run, "run_id") or _get(dag_run, "dag_run_id") or "?"
    lines = [f"DAG: {dag_id}", f"run: {run_id}"]
    if deadline:
        subject = f"[{dag_id}] deadline missed: run {run_id} not finished by {deadline.get('deadline_time')}"
        lines += [
            f"state: {_get(dag_run, 'state')}",
            f"queued at: {_get(dag_run, 'queued_at')}",
            f"deadline: {deadline.get('deadline_time')} ({context.get('alert') or 'deadline'})",
        ]
    else:
        ti = context.get("ti") or context.get("task_instance")
        task_id = _get(ti, "task_id")
        reason = context.get("exception") or context.get("reason") or "unknown"
        subject = f"[{dag_id}] run {run_id} failed" + (f" in task {task_id}" if task_id else "")
        if task_id:
            map_index = _get(ti, "map_index")
            suffix = f"[{map_index}]" if map_index not in (None, -1) else ""
            lines.append(f"task: {task_id}{suffix} (try {_get(ti, 'try_number')})")
        lines.append(f"reason: {reason}")
    # Imported here: transport pulls in the http provider, and the DAG file imports this module.
    from ghl_shift4shop.transport import mask_email

    return mask_email(subject), mask_email("\n".join(lines))


class _PlainTemplating:
    """Notifier mix-in: render with a plain Jinja environment when the context's DAG has none.

    Under ``dag.test()`` (and ``airflow dags test``) a DAG callback's context holds the
    scheduler's ``SerializedDAG``, which has no ``get_template_env``, and every notifier would
    fail before sending. The texts here are built in Python, so nothing DAG-specific is lost.
    """

    def get_template_env(self, dag=None):
        return super().get_template_env(dag=dag if hasattr(dag, "get_template_env") else None)


class LogNotifier(_PlainTemplating, BaseNotifier):
    """The default notifier: logs the notice at ERROR in the component that runs the callback.

    A failure notice lands in the DAG processor's log (or the ``airflow dags test`` output), a
    missed deadline in the triggerer's. Point a log-based alert at ``GHL_S4S NOTICE``.
    """

    def notify(self, context: Mapping[str, Any]) -> None:
        subject, body = describe(context)
        log.error("GHL_S4S NOTICE %s\n%s", subject, body)

    async def async_notify(self, context: Mapping[str, Any]) -> None:
        self.notify(context)


def _smtp_notifier_class() -> type[BaseNotifier]:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    class SyncSmtpNotifier(_PlainTemplating, SmtpNotifier):
        """The smtp provider's notifier with this project's text: set at send time from the context."""

        def _fill(self, context: Mapping[str, Any]) -> None:
            subject, body = describe(context)
            self.subject = subject
            self.html_content = f"<pre>{html.escape(body)}</pre>"

        def notify(self, context):
            self._fill(context)
            super().notify(context)

        async def async_notify(self, context):
            self._fill(context)
            await super().async_notify(context)

    return SyncSmtpNotifier


def _slack_notifier_class() -> type[BaseNotifier]:
    try:
        from airflow.providers.slack.notifications.slack import SlackNotifier
    except ImportError:
        raise ValueError(
            "GHL_S4S_NOTIFY=slack:<conn_id> needs the Slack provider: "
            "pip install apache-airflow-providers-slack (then create the Slack API connection)"
        ) from None

    class SyncSlackNotifier(_PlainTemplating, SlackNotifier):
        def _fill(self, context: Mapping[str, Any]) -> None:
            subject, body = describe(context)
            self.text = f"*{subject}*\n```{body}```"

        def notify(self, context):
            self._fill(context)
            super().notify(context)

        async def async_notify(self, context):
            self._fill(context)
            await super().async_notify(context)

    return SyncSlackNotifier


def _masked(text: str) -> str:
    from ghl_shift4shop.transport import mask_email

    return mask_email(text)


_ADDRESS_RE = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")


def build_notifier(spec: str | None = None) -> BaseNotifier:
    """The notifier ``spec`` (default: ``GHL_S4S_NOTIFY``) names; a bad spec fails at parse time.

    * ``log``: :class:`LogNotifier`.
    * ``smtp:<to>[,<to>...]``: e-mail through the ``smtp_default`` connection (its ``from_email``
      extra, or Airflow's ``[email] from_email``, is the sender).
    * ``slack:<conn_id>[#channel]``: a Slack message through that Slack API connection (needs
      apache-airflow-providers-slack; untested here, the provider is not installed).
    """
    spec = (spec if spec is not None else load_settings().notify).strip()
    kind, _, target = spec.partition(":")
    kind, target = kind.strip().lower(), target.strip()
    if kind == "log" and not target:
        return LogNotifier()
    if kind == "smtp":
        recipients = [t.strip() for t in target.split(",") if t.strip()]
        if not recipients or not all(_ADDRESS_RE.match(r) for r in recipients):
            raise ValueError(f"GHL_S4S_NOTIFY={_masked(spec)!r}: expected smtp:<to-address>[,<to-address>...]")
        return _smtp_notifier_class()(to=recipients)
    if kind == "slack":
        conn_id, _, channel = target.partition("#")
        if not conn_id.strip():
            raise ValueError("GHL_S4S_NOTIFY=slack: needs a Slack connection id: slack:<conn_id>[#channel]")
        extra = {"channel": f"#{channel.strip()}"} if channel.strip() else {}  # else the provider's #general
        return _slack_notifier_class()(slack_conn_id=conn_id.strip(), **extra)
    raise ValueError(f"GHL_S4S_NOTIFY={_masked(spec)!r}: expected log, smtp:<to-address> or slack:<conn_id>")


def failure_notifier() -> BaseNotifier:
    """The ``on_failure_callback`` of the sync and reconcile DAGs (one notice per failed run)."""
    return build_notifier()


# ------------------------------------------------------------------------------------------- deadlines


async def deadline_missed(context: dict | None = None, notify: str = "log", alert: str = "deadline") -> None:
    """A missed deadline's callback (runs in the triggerer): one notice through ``notify``.

    A run that already ended failed is not notified again: its failure went out through the
    ``on_failure_callback`` when it happened (Airflow keeps the deadlines of failed runs and would
    otherwise alert hours later about a failure already reported, perhaps since fixed).
    """
    context = dict(context or {})
    context["alert"] = alert
    dag_run = context.get("dag_run") or {}
    if _get(dag_run, "state") == "failed":
        log.info(
            "deadline of %s run %s passed; the run failed and was reported then: no second notice",
            _get(dag_run, "dag_id"),
            _get(dag_run, "dag_run_id") or _get(dag_run, "run_id"),
        )
        return
    await build_notifier(notify).async_notify(context)


def _tolerate_inline_deadlines_in_dag_test() -> None:
    """Work around apache/airflow#73428 (open in 3.3.2): ``dag.test()`` of a DAG with a deadline
    crashes when the run succeeds.

    ``dag.test()`` (so also ``airflow dags test`` and ``make demo``) gives the run's final state
    update a DAG whose ``deadline`` holds the encoded alerts instead of their database ids, and
    ``DeadlineAlert.get_by_id`` fails on them ("'dict' object has no attribute 'hex'"). This reads
    such an entry directly, as the upstream fix (apache/airflow#73430) does; ids take the usual
    path untouched. Remove once the installed Airflow has the fix.
    """
    try:
        from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel
    except ImportError:  # a worker with the Task SDK only: it never runs the scheduler's code
        return
    original = DeadlineAlertModel.get_by_id
    if getattr(original, "_ghl_s4s_tolerant", False):
        return

    def get_by_id(cls, deadline_alert_id, **kwargs):
        if isinstance(deadline_alert_id, dict):
            encoded = deadline_alert_id.get("__var", deadline_alert_id)
            entry = SimpleNamespace(reference=encoded.get("reference") or {})
            entry.reference_class = DeadlineAlertModel.reference_class.fget(entry)
            return entry
        return original(deadline_alert_id, **kwargs)

    get_by_id._ghl_s4s_tolerant = True  # type: ignore[attr-defined]
    DeadlineAlertModel.get_by_id = classmethod(get_by_id)


def _callback(alert: str) -> AsyncCallback:
    _tolerate_inline_deadlines_in_dag_test()
    # The notifier spec travels with the DAG: the triggerer then needs no GHL_S4S_* setting of its own.
    return AsyncCallback(deadline_missed, kwargs={"notify": load_settings().notify, "alert": alert})


def sync_deadline(hours: float | None = None) -> DeadlineAlert:
    """A sync run not finished ``hours`` (default ``GHL_S4S_SYNC_DEADLINE_HOURS``) after it was queued.

    Why the queued time: the sync runs with ``max_active_runs=1`` and ``catchup=False``, so while
    a run hangs no later run is even created; the time it was queued is then when the store last
    had a chance to be brought up to date, and a run still going ``hours`` later means the store
    has not been synced for about that long (``hours`` plus one schedule interval since the last
    success at worst). A run that *fails* is reported at once by the failure callback instead.
    The logical date would be wrong for manual runs and for a scheduler that was down for a
    while; the average-runtime reference would alert on slow runs, not on a stale store.
    """
    hours = load_settings().sync_deadline_hours if hours is None else hours
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(hours=hours),
        callback=_callback(f"sync not finished {hours:g} h after it was queued"),
        name="sync_stale",
    )


def reconcile_deadline(schedule: str, finish_by: str | None = None) -> DeadlineAlert:
    """The nightly reconciliation must finish by ``finish_by`` (HH:MM UTC; ``GHL_S4S_RECONCILE_FINISH_BY``).

    ``schedule`` is the reconcile DAG's daily cron (in UTC, e.g. ``"0 2 * * *"``). The deadline is
    the run's queued time plus the span from the scheduled time to ``finish_by`` (02:00 → 06:00 is
    4 h): the scheduler queues a scheduled run at its scheduled time, so that lands on
    ``finish_by`` with a plain or a data-interval cron timetable alike. A manual run gets the same
    span from when it was triggered.
    """
    from ghl_shift4shop.tenants import first_daily_fire, time_of_day

    finish_by = finish_by if finish_by is not None else load_settings().reconcile_finish_by
    hour, minute = time_of_day(finish_by, "GHL_S4S_RECONCILE_FINISH_BY")
    midnight = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        first = first_daily_fire(schedule)  # the same rule the tenants file is checked with
    except ValueError as exc:
        raise ValueError(f"reconcile_deadline: {exc}") from None
    span = (midnight.replace(hour=hour, minute=minute) - first) % timedelta(days=1) or timedelta(days=1)
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=span,
        callback=_callback(f"reconciliation not finished by {hour:02d}:{minute:02d} UTC"),
        name="reconcile_finish_by",
    )
