"""Assets, failure notices and deadline alerts of the sync, seen through Airflow itself.

Real ``dag.test()`` runs against the simulators; the asset events are read back from Airflow's
metadata database (``AssetEvent``), and e-mails are received by a real SMTP server on a local port.
"""

from __future__ import annotations

import asyncore
import json
import logging
import os
import signal
import smtpd
import subprocess
import sys
import threading
import time
from datetime import timedelta
from email import message_from_string
from email.header import decode_header, make_header

import pytest
import requests

from sandbox.seed import generate_contacts
from tests.builders import ASSET_URI, customers_events, seed_ghl
from tests.conftest import GHL_TOKEN, LOCATION_ID, ROOT, SECRETS

pytestmark = pytest.mark.usefixtures("airflow_db")


def test_each_sync_run_emits_a_customers_asset_event_with_its_counts(sims, sync_dag):
    from ghl_shift4shop.sync import state_store

    before = len(customers_events())
    contacts = generate_contacts(60, seed=8, dirty_share=0.0, location_id=LOCATION_ID)
    contacts[5]["email"] = "not-an-email"  # quarantined by validation, before the load
    contacts[6]["email"] = None
    sims.ghl_state.load_contacts(contacts)
    first = sync_dag.test()
    assert first.state == "success"

    events = customers_events()
    assert len(events) == before + 1
    dag_id, task_id, run_id, extra = events[-1]
    assert (dag_id, task_id, run_id) == ("ghl_shift4shop_sync", "load", first.run_id)
    created = len(sims.customers())
    summary = state_store().recent_summaries(1)[0]
    assert summary["quarantined"] >= 2  # the two bad e-mails at least
    assert extra == {
        "created": created,
        "updated": 0,
        "unchanged": 0,
        "quarantined": summary["quarantined"],
        "dead_lettered": 0,
        "run_id": first.run_id,
        "connection": "shift4shop_default",
    }
    assert created == 58

    # A second run with three contacts changed: a new event with its own counts.
    for c in contacts[10:13]:
        r = requests.put(
            f"{sims.ghl.url}/contacts/{c['id']}",
            json={"city": "Tromsø"},
            headers={"Authorization": f"Bearer {GHL_TOKEN}", "Version": "2021-07-28"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
    second = sync_dag.test()
    assert second.state == "success"
    events = customers_events()
    assert len(events) == before + 2
    assert events[-1][:3] == ("ghl_shift4shop_sync", "load", second.run_id)
    assert events[-1][3] == {**extra, "created": 0, "updated": 3, "quarantined": 0, "run_id": second.run_id}


def test_the_asset_is_the_load_tasks_outlet_and_one_per_store_connection(sync_dag):
    from ghl_shift4shop.observability import customers_asset

    load = sync_dag.get_task("load")
    assert [a.uri for a in load.outlets] == [ASSET_URI]
    other = customers_asset("shift4shop_tenant_b")
    assert other.uri == "shift4shop://shift4shop_tenant_b/customers" and other.name != customers_asset().name


# ----------------------------------------------------------------------------------------- failures


def break_store_credentials(monkeypatch, sims) -> None:
    """The store connection with a wrong token: the store answers 401 and the load fails at once."""
    conn = json.loads(sims.connections_env()["AIRFLOW_CONN_SHIFT4SHOP_DEFAULT"])
    conn["extra"]["token"] = "tk-wrong-0000"
    monkeypatch.setenv("AIRFLOW_CONN_SHIFT4SHOP_DEFAULT", json.dumps(conn))


def fresh_sync_dag():
    """The sync DAG parsed again, so settings read at parse time (GHL_S4S_NOTIFY...) take effect."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["ghl_shift4shop_sync"]


def test_a_failed_run_is_logged_by_the_default_notifier(sims, sync_dag, monkeypatch, caplog):
    seed_ghl(sims, 5, location_id=LOCATION_ID, crm=False)
    break_store_credentials(monkeypatch, sims)
    with caplog.at_level(logging.ERROR, logger="ghl_shift4shop.observability"):
        dr = sync_dag.test()
    assert dr.state == "failed"
    notices = [r.getMessage() for r in caplog.records if r.getMessage().startswith("GHL_S4S NOTICE")]
    assert len(notices) == 1, notices
    notice = notices[0]
    assert "[ghl_shift4shop_sync]" in notice and f"run: {dr.run_id}" in notice
    assert "task: load" in notice and "reason: task_failure" in notice
    assert not any(secret in notice for secret in SECRETS)


class SmtpSink(smtpd.SMTPServer):
    """A real SMTP server on a free local port, keeping what it receives."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), None, decode_data=True)
        self.port = self.socket.getsockname()[1]
        self.messages: list = []
        self.thread = threading.Thread(target=asyncore.loop, kwargs={"timeout": 0.1}, daemon=True)
        self.thread.start()

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        self.messages.append((mailfrom, rcpttos, message_from_string(data)))

    def stop(self):
        self.close()
        self.thread.join(timeout=5)


@pytest.fixture
def smtp_server(monkeypatch):
    sink = SmtpSink()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": sink.port,
                "extra": {"from_email": "airflow@example.org", "disable_ssl": True, "disable_tls": True, "timeout": 5},
            }
        ),
    )
    yield sink
    sink.stop()


def body_of(message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    return "".join(p.get_payload(decode=True).decode() for p in parts if not p.is_multipart())


def test_smtp_notifier_mails_a_failed_run_to_the_configured_address(sims, monkeypatch, smtp_server):
    monkeypatch.setenv("GHL_S4S_NOTIFY", "smtp:ops@example.org")
    dag = fresh_sync_dag()
    seed_ghl(sims, 5, location_id=LOCATION_ID, crm=False)
    break_store_credentials(monkeypatch, sims)
    dr = dag.test()
    assert dr.state == "failed"
    assert len(smtp_server.messages) == 1
    mailfrom, rcpttos, message = smtp_server.messages[0]
    assert (mailfrom, rcpttos) == ("airflow@example.org", ["ops@example.org"])
    subject = str(make_header(decode_header(message["Subject"])))
    assert subject == f"[ghl_shift4shop_sync] run {dr.run_id} failed in task load"
    body = body_of(message)
    assert "reason: task_failure" in body and "task: load" in body
    assert not any(secret in body for secret in SECRETS)


# --------------------------------------------------------------------------------------------- setup


def test_notify_setting_is_checked_at_parse_time():
    from ghl_shift4shop.observability import LogNotifier, build_notifier

    assert isinstance(build_notifier("log"), LogNotifier)
    assert build_notifier("smtp:a@example.org,b@example.org").to == ["a@example.org", "b@example.org"]
    for bad in ("smtp:", "smtp:not-an-address", "pager:7", "log:x"):
        with pytest.raises(ValueError, match="GHL_S4S_NOTIFY"):
            build_notifier(bad)
    try:
        import airflow.providers.slack  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="pip install apache-airflow-providers-slack"):
            build_notifier("slack:slack_alerts")


def test_notices_mask_emails_and_name_dag_run_task_and_reason():
    from ghl_shift4shop.observability import describe

    subject, body = describe(
        {
            "dag": type("D", (), {"dag_id": "ghl_shift4shop_sync"})(),
            "run_id": "manual__1",
            "ti": type("T", (), {"task_id": "load", "map_index": -1, "try_number": 3})(),
            "exception": ValueError("customer jane.doe@example.com refused"),
        }
    )
    assert subject == "[ghl_shift4shop_sync] run manual__1 failed in task load"
    assert body.splitlines() == [
        "DAG: ghl_shift4shop_sync",
        "run: manual__1",
        "task: load (try 3)",
        "reason: customer j***@example.com refused",
    ]


# ------------------------------------------------------------------------------------------ deadlines


def test_the_sync_dag_carries_its_deadline_from_the_setting(monkeypatch):
    from airflow.sdk.definitions.deadline import DeadlineReference

    monkeypatch.setenv("GHL_S4S_SYNC_DEADLINE_HOURS", "2.5")
    monkeypatch.setenv("GHL_S4S_NOTIFY", "smtp:ops@example.org")
    dag = fresh_sync_dag()
    (alert,) = dag.deadline
    assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert alert.interval == timedelta(hours=2.5)
    assert alert.callback.path == "ghl_shift4shop.observability.deadline_missed"
    assert alert.callback.kwargs["notify"] == "smtp:ops@example.org"


def test_reconcile_deadline_lands_on_the_finish_by_time():
    from ghl_shift4shop.observability import reconcile_deadline

    assert reconcile_deadline("0 2 * * *", finish_by="06:00").interval == timedelta(hours=4)
    assert reconcile_deadline("30 23 * * *", finish_by="05:15").interval == timedelta(hours=5, minutes=45)
    with pytest.raises(ValueError, match="once-a-day"):
        reconcile_deadline("0 */6 * * *", finish_by="06:00")
    with pytest.raises(ValueError, match="HH:MM"):
        reconcile_deadline("0 2 * * *", finish_by="6am")


def pause(dag_id: str) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=True))


def start_airflow(component: str, log_path, fernet_key: str) -> subprocess.Popen:
    """``airflow <component>`` in its own process group, on this session's Airflow home and database.

    Both components need one Fernet key: the scheduler encrypts the callback's arguments, the
    triggerer decrypts them.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "airflow", component],
        stdout=open(log_path, "wb"),  # noqa: SIM115 (closed with the process)
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "AIRFLOW__CORE__PARALLELISM": "2", "AIRFLOW__CORE__FERNET_KEY": fernet_key},
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    proc.stdout and proc.stdout.close()


def test_a_missed_deadline_mails_through_the_scheduler_and_triggerer(sims, monkeypatch, smtp_server, tmp_path):
    """A sync run queued and never finished: Airflow's own scheduler marks its deadline missed and
    the triggerer runs our callback, which mails the configured address through the smtp provider."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.callback import Callback
    from airflow.models.deadline import Deadline
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType
    from cryptography.fernet import Fernet
    from sqlalchemy import select

    monkeypatch.setenv("GHL_S4S_NOTIFY", "smtp:ops@example.org")
    monkeypatch.setenv("GHL_S4S_SYNC_DEADLINE_HOURS", str(3 / 3600))  # three seconds
    # Airflow skips writing a DAG serialized less than this long ago (30 s by default), and an
    # earlier test's run may have just written it with the default deadline.
    monkeypatch.setenv("AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL", "0")
    # What the DAG processor does: parse the bundle and write the serialized DAG (and its alerts).
    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    (bundle,) = [b for b in manager.get_all_dag_bundles() if b.name == "dags-folder"]
    bundle.initialize()
    bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
    assert not bag.import_errors
    sync_bag_to_db(bag, bundle.name, bundle.version)
    pause("ghl_shift4shop_sync")  # the run stays queued: the sync is "stuck"
    dr = trigger_dag("ghl_shift4shop_sync", triggered_by=DagRunTriggeredByType.TEST)
    with create_session() as session:
        (deadline,) = session.scalars(select(Deadline).where(Deadline.dagrun_id == dr.id)).all()
        assert deadline.deadline_time == dr.queued_at + timedelta(seconds=3)
        assert not deadline.missed
        callback_id = deadline.callback_id

    key = Fernet.generate_key().decode()
    procs = [start_airflow(c, tmp_path / f"{c}.log", key) for c in ("scheduler", "triggerer")]
    try:
        waited = 0.0
        while not smtp_server.messages and waited < 90 and all(p.poll() is None for p in procs):
            time.sleep(0.5)
            waited += 0.5
    finally:
        for proc in procs:
            stop(proc)
    logs = {c: (tmp_path / f"{c}.log").read_text(errors="replace")[-3000:] for c in ("scheduler", "triggerer")}
    assert len(smtp_server.messages) == 1, logs
    mailfrom, rcpttos, message = smtp_server.messages[0]
    assert rcpttos == ["ops@example.org"]
    subject = str(make_header(decode_header(message["Subject"])))
    assert subject.startswith(f"[ghl_shift4shop_sync] deadline missed: run {dr.run_id} not finished by")
    body = body_of(message)
    assert "state: queued" in body and "sync not finished" in body
    with create_session() as session:
        assert session.scalar(select(Deadline.missed).where(Deadline.id == deadline.id))
        assert str(session.get(Callback, callback_id).state) in ("success", "CallbackState.SUCCESS")


def test_deadline_callback_mails_a_stuck_run_but_not_one_already_reported_failed(smtp_server):
    """The callback as the triggerer calls it (a coroutine, the run as the REST API shows it)."""
    import asyncio

    from ghl_shift4shop.observability import deadline_missed

    def context(state: str) -> dict:
        return {
            "dag_run": {"dag_id": "ghl_shift4shop_sync", "dag_run_id": f"scheduled__{state}", "state": state},
            "deadline": {"id": "d1", "deadline_time": "2026-11-29 08:00:00+00:00"},
        }

    asyncio.run(deadline_missed(context=context("failed"), notify="smtp:ops@example.org", alert="sync"))
    assert smtp_server.messages == []  # its failure was mailed when it happened
    asyncio.run(deadline_missed(context=context("running"), notify="smtp:ops@example.org", alert="sync"))
    (message,) = [m for _, _, m in smtp_server.messages]
    subject = str(make_header(decode_header(message["Subject"])))
    assert subject == (
        "[ghl_shift4shop_sync] deadline missed: run scheduled__running not finished by 2026-11-29 08:00:00+00:00"
    )
    assert "state: running" in body_of(message)
