"""docker-compose.yaml is checked without a Docker engine: it parses, and what it runs exists."""

from __future__ import annotations

import itertools
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
        # One JWT key for every service, from the operator's environment, never written in the file.
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET:?")
        assert env["AIRFLOW__API__SECRET_KEY"].startswith("${AIRFLOW_SECRET_KEY:?")
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
    assert "scripts/airflow_pools.py" in services["airflow-init"]["command"][-1]
    assert (ROOT / "requirements-scaleout.txt").exists()
    init_sql = services["postgres"]["volumes"][1].split(":")[0]
    assert (ROOT / init_sql).exists()


# What the scale-out test may set differently from the compose file: where things are (hosts,
# ports, paths, database names, secrets) and the knobs that make its small run mean something.
WHERE = {
    "AIRFLOW_HOME",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__PLUGINS_FOLDER",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "PYTHONPATH",
    "GHL_S4S_STATE_URL",
    "GHL_S4S_TENANTS_FILE",
    "GHL_S4S_DATA_DIR",
    "GHL_S4S_RATE_BACKEND",
}


def test_the_scaleout_test_runs_what_the_compose_file_runs(tmp_path):
    """tests/e2e/test_scaleout_celery.py is this file run as processes: same settings, same commands."""
    from tests.e2e import test_scaleout_celery as scaleout

    services = compose()["services"]
    env = services["airflow-worker"]["environment"]
    ran = scaleout.deployment_env(tmp_path, 8080, "postgresql+psycopg://u@h/a", "postgresql+psycopg://u@h/s", 1, 2)
    for key, value in env.items():
        if key.startswith("AIRFLOW_CONN_"):
            continue  # the test's own simulators, one pair per tenant
        assert key in ran, f"the scale-out test does not set {key}"
        if key not in WHERE:
            assert ran[key] == value, f"{key}: compose {value!r}, test {ran[key]!r}"
    # Both name their state, broker and budgets the same way (Postgres; Redis; Redis).
    assert ran["GHL_S4S_STATE_URL"].startswith("postgresql+psycopg2://")
    assert ran["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert ran["GHL_S4S_RATE_BACKEND"].startswith("redis://")
    assert ran["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")

    # Every long-running Airflow service's command is one the test starts (the test adds only
    # where to listen and, as two workers share one machine, a Celery node name).
    started = list(scaleout.part_commands(8080).values())
    for name in AIRFLOW_SERVICES - {"airflow-init", "airflow-triggerer"}:
        argv = services[name]["command"]
        assert argv[0] == "airflow"
        words = list(itertools.takewhile(lambda a: not a.startswith("-"), argv[1:]))
        assert any(cmd[: len(words)] == words for cmd in started), f"{name}: {argv} is not run by the test"
    # airflow-init's steps are the test's set-up steps, in the same order.
    init = services["airflow-init"]["command"][-1]
    steps = [" ".join(argv) for argv in scaleout.setup_commands(Path("/tmp/pools.json"))]
    assert init == " && ".join(steps)
