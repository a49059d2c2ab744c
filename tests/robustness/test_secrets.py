"""A full sync, then every log line, XCom value, file and exception it produced is scanned for the
tokens and keys. Any hit fails. Contact emails must not appear unmasked in the logs either."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.seed import generate_contacts, generate_crm
from tests.conftest import GHL_TOKEN, LOCATION_ID, PRIVATE_KEY, S4S_TOKEN
from tests.e2e.test_sync_dag import run

pytestmark = pytest.mark.usefixtures("airflow_db")
SECRETS = (GHL_TOKEN, PRIVATE_KEY, S4S_TOKEN)


def files_under(*roots: str) -> list[Path]:
    out = []
    for root in roots:
        for dirpath, _, names in os.walk(root):
            out.extend(Path(dirpath) / n for n in names)
    return out


def xcom_values(run_ids: list[str]) -> list[str]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel.value).filter(XComModel.run_id.in_(run_ids)).all()
    return [str(r[0]) for r in rows]


def test_no_secret_reaches_logs_xcom_files_or_exceptions(sims, sync_dag, capfd, tmp_path, monkeypatch):
    contacts = generate_contacts(300, seed=51, dirty_share=0.05, location_id=LOCATION_ID)
    crm = generate_crm(contacts, seed=51, location_id=LOCATION_ID)
    sims.ghl_state.load_contacts(contacts)
    sims.ghl_state.load_tasks(crm["tasks"])
    sims.ghl_state.load_notes(crm["notes"])
    runs = [run(sync_dag)]
    assert runs[0].state == "success"

    # A run that fails: the store refuses the key (401), so its error path is scanned too.
    wrong_key = "pk-wrong-0123456789abcdef"
    conn = sims.connections_env()["AIRFLOW_CONN_SHIFT4SHOP_DEFAULT"].replace(PRIVATE_KEY, wrong_key)
    monkeypatch.setenv("AIRFLOW_CONN_SHIFT4SHOP_DEFAULT", conn)
    for c in contacts[:5]:
        sims.ghl_state.load_contacts([{**c, "city": "Changed", "dateUpdated": "2099-01-01T00:00:00.000Z"}])
    runs.append(run(sync_dag))
    assert runs[1].state == "failed"
    out = capfd.readouterr()
    logs = out.out + out.err
    assert "refused the credentials of connection 'shift4shop_default'" in logs  # a clear error, named

    secrets = (*SECRETS, wrong_key)
    hits = [s for s in secrets if s in logs]
    assert not hits, f"secret in logs: {hits}"
    values = xcom_values([r.run_id for r in runs])
    assert values and not [s for s in secrets if any(s in v for v in values)]
    files = files_under(os.environ["AIRFLOW_HOME"], os.environ["GHL_S4S_DATA_DIR"], str(tmp_path))
    assert files
    for path in files:
        data = path.read_bytes()
        leaked = [s for s in secrets if s.encode() in data]
        assert not leaked, f"{path} holds {leaked}"

    raw_emails = [c["email"] for c in contacts if c.get("email") and "@" in c["email"] and len(c["email"]) > 6]
    unmasked = [e for e in raw_emails if e in logs]
    assert not unmasked, f"unmasked emails in logs: {unmasked[:3]}"
