"""docker-compose.yaml is checked without a Docker engine: it parses, and what it runs exists."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_services_and_shared_settings():
    services = compose()["services"]
    assert AIRFLOW_SERVICES | {"postgres", "redis", "sandbox"} <= set(services)
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379")
        assert env["GHL_S4S_STATE_URL"].startswith("postgresql+psycopg2://")
        assert env["GHL_S4S_RATE_BACKEND"].startswith("redis://redis:6379/")  # one budget for all hosts
        assert int(env["AIRFLOW__CORE__PARALLELISM"]) <= 4
        for conn in ("AIRFLOW_CONN_GHL_DEFAULT", "AIRFLOW_CONN_SHIFT4SHOP_DEFAULT"):
            assert json.loads(env[conn])["conn_type"] == "http"


def test_connections_match_the_sandbox_it_serves():
    from sandbox.__main__ import GHL_TOKEN, LOCATION_ID, PRIVATE_KEY, S4S_TOKEN, SECURE_URL

    env = compose()["services"]["airflow-worker"]["environment"]
    ghl = json.loads(env["AIRFLOW_CONN_GHL_DEFAULT"])
    s4s = json.loads(env["AIRFLOW_CONN_SHIFT4SHOP_DEFAULT"])
    assert (ghl["password"], ghl["extra"]["location_id"]) == (GHL_TOKEN, LOCATION_ID)
    assert s4s["extra"] == {"secure_url": SECURE_URL, "private_key": PRIVATE_KEY, "token": S4S_TOKEN}


def test_commands_exist(monkeypatch):
    import sandbox.__main__ as cli

    services = compose()["services"]
    cmd = services["sandbox"]["command"]
    assert cmd[:3] == ["python", "-m", "sandbox"]
    # The sandbox's own parser takes the service's arguments as they are (an unknown or malformed
    # one exits 2): the subcommand is stubbed, so nothing is served, and its arguments are checked.
    seen = []
    monkeypatch.setattr(cli, cmd[3], lambda args: seen.append(args) or 0)
    assert cli.main(cmd[3:]) == 0
    [args] = seen
    assert (args.command, args.host) == ("serve", "0.0.0.0")  # reachable from the other containers
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert services[name]["command"][0] == "airflow"
    assert "pools set ghl_api" in services["airflow-init"]["command"][-1]
    assert (ROOT / "requirements-scaleout.txt").exists()
    init_sql = services["postgres"]["volumes"][1].split(":")[0]
    assert (ROOT / init_sql).exists()
