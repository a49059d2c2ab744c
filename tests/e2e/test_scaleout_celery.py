"""The scale-out deployment (docker-compose.yaml), run for real without a container engine.

The same programs the compose file runs, started here as processes of this machine:

* Airflow's metadata database on Postgres (a throw-away database), the sync's state database on
  Postgres (another one), Celery's broker on Redis and the client's shared request budgets
  (``GHL_S4S_RATE_BACKEND``) on Redis, each on a Redis database of its own;
* ``airflow api-server``, ``scheduler``, ``dag-processor`` and two ``airflow celery worker``
  (distinct hostnames, concurrency 2 each) on the CeleryExecutor;
* for every tenant its own GHL location and its own store: one simulator of each per tenant,
  served by this test process (so their request logs can be read), rate limits on, at scaled-down
  values (``GHL_LIMIT``, ``STORE_LIMIT``) with the client's budgets scaled the same way.

The syncs are triggered at once through the REST API (a JWT from ``/auth/token``), as an operator's
script would. Then: every run succeeded; both workers ran task instances; the budgets spent were
the ones in Redis; each store holds exactly its own tenant's valid contacts, once each, and each
tenant's watermarks are in its own state schema; and no location's or store's limit was exceeded
in any window by the requests the client sent, read from the simulators' own request logs.
Everything started is stopped (none may be left) and the databases are dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml

from sandbox.common import ServerThread, free_port
from sandbox.ghl import GhlState
from sandbox.ghl import create_app as create_ghl_app
from sandbox.profiles import apply_profile
from sandbox.seed import generate_contacts, generate_crm
from sandbox.shift4shop import Shift4ShopState
from sandbox.shift4shop import create_app as create_s4s_app
from scripts.airflow_ui import SIMPLE_AUTH_MANAGER, Supervisor
from tests.builders import postgres_database
from tests.conftest import ROOT

pytestmark = [
    # One xdist worker runs the module; it starts its own processes on free ports, databases and
    # Redis databases of its own, so the other worker's tests run beside it undisturbed.
    pytest.mark.xdist_group("scaleout"),
]
# The harsher reading of the APIs' unconfirmed behaviours only (sandbox/profiles.py): one run of
# the whole deployment is the cost, and what it checks does not depend on the reading.
PROFILE = "strict"

# The default tenant (the CONTRACT's DAG and connection ids) beside two more (tenants.py's rules).
TENANTS = ("default", "acme", "globex")
CONTACTS_PER_TENANT = 30
INVALID_PER_TENANT = 2  # no e-mail: quarantined by validation, never a store customer
WORKERS = ("worker-1", "worker-2")
STARTUP_TIMEOUT_S = 180
RUNS_TIMEOUT_S = 420  # three tenants' runs on a loaded 2-core machine

# The simulators' limits, scaled down from the documented ones (GHL 100 per 10 s per location;
# the store's bucket of 50 leaking 2/s) so that 30 contacts a tenant reach them; the client's
# budgets are scaled the same way, GHL's with a 10% margin (the default, 9.8/s, keeps 2%: here two
# workers share one budget, so the wider margin of the old 9/s default is kept).
GHL_LIMIT = {"burst_max": 30, "burst_window_ms": 10_000}
STORE_LIMIT = {"bucket_size": 10, "leak_per_s": 2.0}
CLIENT_BUDGETS = {
    "GHL_S4S_GHL_BURST": "3",
    "GHL_S4S_GHL_RATE_PER_S": "2.7",  # ⌊2.7 × 10 s⌋ = 27 ≤ 30 per window
    "GHL_S4S_GHL_WINDOW_SECONDS": "10",
    "GHL_S4S_SHIFT4SHOP_BURST": "8",  # 8 + 1.6 t ≤ 10 + 2 t
    "GHL_S4S_SHIFT4SHOP_RATE_PER_S": "1.6",
}
# Two batches a tenant, so two of its GHL fetch tasks run side by side (pool ghl_api: 2 slots),
# mostly on different workers, spending one location's budget (Redis). The client also slows down
# when GHL's X-RateLimit-Remaining runs low, and a run with a budget per worker (SQLite each) was
# seen to keep within the limit too: the window check shows both together, not the sharing alone.
BATCH_SIZE = 15


# -- one tenant: its GHL location and its store, each a simulator with limits on ----------------------
@dataclass
class Tenant:
    name: str
    seed: int
    location_id: str = ""
    ghl_token: str = ""
    secure_url: str = ""
    private_key: str = ""
    s4s_token: str = ""
    ghl_state: GhlState | None = None
    s4s_state: Shift4ShopState | None = None
    servers: list[ServerThread] = field(default_factory=list)
    contacts: list[dict] = field(default_factory=list)

    @property
    def suffix(self) -> str:
        return "" if self.name == "default" else f"__{self.name}"

    @property
    def dag_id(self) -> str:
        return f"ghl_shift4shop_sync{self.suffix}"

    @property
    def conn_ids(self) -> tuple[str, str]:
        if self.name == "default":
            return "ghl_default", "shift4shop_default"
        return f"ghl_{self.name}", f"shift4shop_{self.name}"

    @property
    def pools(self) -> tuple[str, str]:
        return f"ghl_api{self.suffix}", f"shift4shop_api{self.suffix}"

    def start(self, profile: str) -> Tenant:
        tag = secrets.token_hex(3)
        self.location_id = f"loc{self.name[:6]}{tag}".ljust(20, "0")[:20]
        self.ghl_token = f"pit-{self.name}-{secrets.token_hex(8)}"
        self.secure_url = f"https://{self.name.replace('_', '-')}-{tag}.3dcartstores.com"
        self.private_key, self.s4s_token = f"pk-{secrets.token_hex(8)}", f"tk-{secrets.token_hex(8)}"
        self.ghl_state = GhlState(
            location_id=self.location_id, tokens={self.ghl_token: {"location_id": self.location_id}}
        )
        self.s4s_state = Shift4ShopState(
            stores={self.secure_url: {"private_key": self.private_key, "token": self.s4s_token}}
        )
        apply_profile(profile, ghl=self.ghl_state, shift4shop=self.s4s_state)
        self.ghl_state.configure(rate_limit=True, **GHL_LIMIT)
        self.s4s_state.configure(rate_limit=True, **STORE_LIMIT)
        # Clean contacts with their tasks, notes and appointments, and a few without an e-mail.
        contacts = generate_contacts(CONTACTS_PER_TENANT, seed=self.seed, dirty_share=0.0, location_id=self.location_id)
        for c in contacts[:INVALID_PER_TENANT]:
            c["email"] = None
        self.contacts = contacts
        self.ghl_state.load_contacts(contacts)
        crm = generate_crm(contacts, seed=self.seed, location_id=self.location_id)
        self.ghl_state.load_tasks(crm["tasks"])
        self.ghl_state.load_notes(crm["notes"])
        self.ghl_state.load_calendars(crm["calendars"])
        self.ghl_state.load_events(crm["events"])
        self.servers = [
            ServerThread(create_ghl_app(self.ghl_state)).start(),
            ServerThread(create_s4s_app(self.s4s_state)).start(),
        ]
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def connections_env(self) -> dict[str, str]:
        ghl_conn, s4s_conn = self.conn_ids
        ghl, s4s = self.servers
        return {
            f"AIRFLOW_CONN_{ghl_conn.upper()}": json.dumps(
                {
                    "conn_type": "http",
                    "host": ghl.url,
                    "password": self.ghl_token,
                    "extra": {"location_id": self.location_id, "version": "2021-07-28"},
                }
            ),
            f"AIRFLOW_CONN_{s4s_conn.upper()}": json.dumps(
                {
                    "conn_type": "http",
                    "host": s4s.url,
                    "extra": {"secure_url": self.secure_url, "private_key": self.private_key, "token": self.s4s_token},
                }
            ),
        }

    def valid_emails(self) -> set[str]:
        return {c["email"].lower() for c in self.contacts if c.get("email")}

    def customers(self) -> list[dict]:
        return self.s4s_state.all_customers(self.secure_url)


# -- Redis: a database of our own for the broker and one for the budgets ---------------------------
REDIS = os.environ.get("GHL_S4S_TEST_REDIS", "redis://127.0.0.1:6379")
CLAIM_KEY = "ghl-s4s-test:claimed"


@contextlib.contextmanager
def redis_databases(count: int):
    """``count`` empty Redis database numbers (1-15; 0 is the budget tests'), claimed, flushed after."""
    import redis

    claimed: list[tuple[int, redis.Redis]] = []
    try:
        for db in range(1, 16):
            if len(claimed) == count:
                break
            client = redis.Redis.from_url(f"{REDIS}/{db}")
            try:
                empty = client.dbsize() == 0
            except redis.ConnectionError as exc:
                if os.environ.get("CI"):
                    pytest.fail(f"Redis is not reachable in CI (.ci/run starts it): {exc}")
                pytest.skip(f"Redis not reachable at {REDIS} (make test starts it): {exc}")
            # The claim itself is the first key, so a concurrent test sees the database as taken.
            if empty and client.set(CLAIM_KEY, os.getpid(), nx=True, ex=3600):
                claimed.append((db, client))
            else:
                client.close()
        assert len(claimed) == count, "no free Redis databases"
        yield [db for db, _ in claimed]
    finally:
        for _db, client in claimed:
            client.flushdb()
            client.close()


# -- the Airflow deployment --------------------------------------------------------------------
USER, PASSWORD = "admin", secrets.token_urlsafe(12)


@dataclass
class Deployment:
    home: Path
    env: dict[str, str]
    supervisor: Supervisor
    url: str
    budget_db: int
    token: str = ""

    def api(self, method: str, path: str, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kw)

    def logs(self, tail: int = 60) -> str:
        parts = []
        for name in self.supervisor.parts:
            path = self.supervisor.log_dir / f"{name}.log"
            lines = path.read_text(errors="replace").splitlines() if path.exists() else []
            parts.append(f"----- airflow {name} (last {tail} lines) -----\n" + "\n".join(lines[-tail:]))
        return "\n".join(parts)

    def task_logs(self, dag_id: str, run_id: str, tail: int = 40) -> str:
        parts = []
        for path in sorted((self.home / "logs").glob(f"dag_id={dag_id}/run_id={run_id}/**/*.log")):
            lines = path.read_text(errors="replace").splitlines()
            parts.append(f"----- {path.relative_to(self.home)} -----\n" + "\n".join(lines[-tail:]))
        return "\n".join(parts)


def setup_commands(pools_file: Path) -> list[list[str]]:
    """docker-compose.yaml's ``airflow-init``, step by step (tests/test_compose.py holds them equal)."""
    return [
        ["airflow", "db", "migrate"],
        ["python", "scripts/airflow_pools.py", str(pools_file)],
        ["airflow", "pools", "import", str(pools_file)],
    ]


def part_commands(api_port: int) -> dict[str, list[str]]:
    """The long-running services' commands (after ``airflow``), as docker-compose.yaml runs them,
    plus where to listen, one API worker (2 cores) and a Celery node name per worker (one machine)."""
    return {
        "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"],
        "scheduler": ["scheduler"],
        "dag-processor": ["dag-processor"],
        **{w: ["celery", "worker", "--celery-hostname", f"{w}@%h"] for w in WORKERS},
    }


def _run(env: dict[str, str], argv: list[str], timeout: float = 180) -> None:
    import subprocess

    program = {"airflow": [sys.executable, "-m", "airflow"], "python": [sys.executable]}[argv[0]]
    done = subprocess.run([*program, *argv[1:]], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"


def deployment_env(home: Path, api_port: int, airflow_db: str, state_db: str, broker_db: int, budget_db: int):
    """What every Airflow process gets: the compose file's x-airflow environment, for this machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GHL_S4S_"))}
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}), encoding="utf-8")
    passwords.chmod(0o600)
    sync_db = airflow_db.replace("+psycopg:", "+psycopg2:")
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.e2e.celery_hostname.worker_hostname",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(40),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": airflow_db,  # psycopg 3 does both
            "AIRFLOW__CELERY__BROKER_URL": f"{REDIS}/{broker_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + sync_db,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            # Only the triggered runs (no scheduled run); short loops, so the runs finish soon.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
            "GHL_S4S_STATE_URL": state_db.replace("+psycopg:", "+psycopg2:"),  # tenant T: schema ghl_s4s__T
            "GHL_S4S_TENANTS_FILE": str(home / "tenants.yaml"),
            "GHL_S4S_DATA_DIR": str(home / "data"),  # one volume for every worker (compose: `batches`)
            "GHL_S4S_RATE_BACKEND": f"{REDIS}/{budget_db}",
            "GHL_S4S_WATERMARK_LAG_SECONDS": "0",
            "GHL_S4S_DATA_DOCS": "0",
            "GHL_S4S_BATCH_SIZE": str(BATCH_SIZE),
            **CLIENT_BUDGETS,
        }
    )
    return env


@pytest.fixture(scope="module")
def tenants():
    started = [Tenant(name, seed=41 + i).start(PROFILE) for i, name in enumerate(TENANTS)]
    yield started
    for t in started:
        t.stop()


@pytest.fixture(scope="module")
def deployment(tenants, tmp_path_factory):
    home = tmp_path_factory.mktemp("scaleout-airflow-home")
    with (
        postgres_database("airflow_scaleout") as airflow_db,
        postgres_database("ghl_state_scaleout") as state_db,
        redis_databases(2) as (broker_db, budget_db),
    ):
        api_port = free_port()
        env = deployment_env(home, api_port, airflow_db, state_db, broker_db, budget_db)
        # Every entry takes the interface's defaults: connections ghl_T / shift4shop_T, pools ghl_api__T ...
        (home / "tenants.yaml").write_text(yaml.safe_dump({"tenants": [{"name": t.name} for t in tenants]}))
        for t in tenants:
            env.update(t.connections_env())
        t0 = time.monotonic()
        for argv in setup_commands(home / "pools.json"):
            _run(env, argv)
        migrated = time.monotonic()
        commands = part_commands(api_port)
        part_env = {
            # Each worker serves its task logs on a port of its own, and names itself in task instances.
            w: {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()), "GHL_S4S_TEST_WORKER_HOST": w}
            for w in WORKERS
        }
        sup = Supervisor(list(commands), "127.0.0.1", api_port, env, home / "process-logs", commands, part_env)
        dep = Deployment(home, env, sup, f"http://127.0.0.1:{api_port}", budget_db=budget_db)
        try:
            sup.start()
            assert sup.wait_healthy(STARTUP_TIMEOUT_S), f"the API server did not come up\n{dep.logs()}"
            r = requests.post(f"{dep.url}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=30)
            assert r.status_code in (200, 201), r.text
            dep.token = r.json()["access_token"]
            up = time.monotonic() - migrated
            print(f"scale-out: db migrate + pools {migrated - t0:.0f} s, processes up {up:.0f} s")
            yield dep
        finally:
            left = sup.stop()
            assert not left, f"processes left after stopping the deployment: {left}"


def _wait_for_dags(dep: Deployment, dag_ids: list[str]) -> None:
    """Until the dag-processor has serialized every tenant's DAG (the API then knows it)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    missing = list(dag_ids)
    while missing:
        missing = [d for d in missing if dep.api("GET", f"/api/v2/dags/{d}").status_code != 200]
        if not missing:
            return
        dead = dep.supervisor.dead_part()
        assert not dead, f"{dead} exited\n{dep.logs()}"
        assert time.monotonic() < deadline, f"DAGs not serialized within {STARTUP_TIMEOUT_S} s: {missing}\n{dep.logs()}"
        time.sleep(1)


def _wait_for_runs(dep: Deployment, runs: dict[str, str]) -> dict[str, str]:
    deadline = time.monotonic() + RUNS_TIMEOUT_S
    while True:
        states = {
            dag_id: dep.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
            for dag_id, run_id in runs.items()
        }
        if all(s in ("success", "failed") for s in states.values()):
            return states
        dead = dep.supervisor.dead_part()
        assert not dead, f"{dead} exited while runs were going: {states}\n{dep.logs()}"
        assert time.monotonic() < deadline, f"runs not finished within {RUNS_TIMEOUT_S} s: {states}\n{dep.logs()}"
        time.sleep(1)


def _query(dep: Deployment, sql: str) -> list[dict]:
    import sqlalchemy as sa

    engine = sa.create_engine(dep.env["GHL_S4S_STATE_URL"], poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


# -- reading the simulators' request logs ------------------------------------------------------------
def max_in_sliding_window(stamps: list[float], window_s: float) -> int:
    """The most requests any span of ``window_s`` seconds holds."""
    stamps = sorted(stamps)
    best, lo = 0, 0
    for hi, t in enumerate(stamps):
        while t - stamps[lo] >= window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def max_bucket_level(stamps: list[float], leak_per_s: float) -> float:
    """The highest level a leaky bucket reaches when each request adds one and it leaks ``leak_per_s``."""
    level, last, top = 0.0, None, 0.0
    for t in sorted(stamps):
        if last is not None:
            level = max(0.0, level - (t - last) * leak_per_s)
        level += 1
        last = t
        top = max(top, level)
    return top


def test_max_in_sliding_window_and_bucket_level_read_a_log_as_the_servers_count():
    assert max_in_sliding_window([0, 1, 9.9, 10.0, 10.5], 10) == 4  # 1 .. 10.5
    assert max_in_sliding_window([], 10) == 0
    assert max_bucket_level([0, 0, 0, 0.5], 2.0) == 3.0  # 3, then leaked 1 → 2 + 1
    assert max_bucket_level([0, 1, 2], 2.0) == 1.0


# -- the test --------------------------------------------------------------------------------------
def test_celery_workers_sync_every_tenant_once_within_every_limit(deployment, tenants):
    dep = deployment
    dag_ids = [t.dag_id for t in tenants]
    _wait_for_dags(dep, dag_ids)
    for dag_id in dag_ids:
        r = dep.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        assert r.status_code == 200, r.text

    started = time.monotonic()
    runs = {}
    for dag_id in dag_ids:  # all at once: every run is queued before the first task starts
        r = dep.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
        assert r.status_code == 200, r.text
        runs[dag_id] = r.json()["dag_run_id"]
    states = _wait_for_runs(dep, runs)
    took = time.monotonic() - started
    print(f"scale-out: {len(runs)} tenants' syncs finished in {took:.1f} s")
    failed = [d for d, s in states.items() if s != "success"]
    assert not failed, f"runs failed: {states}\n" + "\n".join(dep.task_logs(d, runs[d]) for d in failed) + dep.logs()

    # Both workers ran task instances (each names itself through hostname_callable).
    hosts: dict[str, int] = {}
    for dag_id, run_id in runs.items():
        tis = dep.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        for ti in tis.json()["task_instances"]:
            if ti["state"] == "success":
                hosts[ti["hostname"]] = hosts.get(ti["hostname"], 0) + 1
    print(f"scale-out: task instances per worker {hosts}")
    assert set(hosts) == set(WORKERS), hosts

    # The workers' request budgets were the shared ones in Redis (GHL_S4S_RATE_BACKEND): one per
    # location and one per store, whichever worker spent them.
    import redis
    from ghl_shift4shop.budget import budget_key

    with redis.Redis.from_url(f"{REDIS}/{dep.budget_db}") as budgets:
        keys = {k.decode() for k in budgets.keys("ghl_s4s:*")}
    for t in tenants:
        for service, account in (("ghl", t.location_id), ("shift4shop", t.secure_url.removeprefix("https://"))):
            assert f"ghl_s4s:{budget_key(service, account)}" in keys, f"{t.name}: no {service} budget in Redis"

    for t in tenants:
        customers = t.customers()
        emails = [str(c.get("Email") or "").lower() for c in customers]
        # Exactly this tenant's valid contacts, each once: no duplicate, none missing, none of another tenant.
        assert len(emails) == len(set(emails)), f"{t.name}: duplicate customers"
        assert set(emails) == t.valid_emails(), f"{t.name}: store differs from the valid contacts"
        ids = {c["id"] for c in t.contacts if c.get("email")}
        assert sorted(c["AdditionalField1"] for c in customers) == sorted(ids), t.name

        # Its state is its own: the default tenant's in the database's own schema, T's in ghl_s4s__T.
        schema = "public" if t.name == "default" else f"ghl_s4s__{t.name}"
        marks = _query(dep, f"SELECT stream FROM {schema}.watermarks")
        assert "contacts" in {m["stream"] for m in marks}, f"{t.name}: no contacts watermark in {schema}"

        ghl_log = t.ghl_state.request_log.snapshot()
        s4s_log = t.s4s_state.request_log.snapshot()
        ghl_429 = sum(r["status"] == 429 for r in ghl_log)
        s4s_429 = sum(r["status"] == 429 for r in s4s_log)
        # Every request the client sent counts, refused ones too: the servers admit no more than
        # their limits anyway, so only what was sent shows whether the client kept to them. A 429
        # means it did not (GHL's fixed windows: 30 admitted in one; the store's bucket: full).
        window_s = GHL_LIMIT["burst_window_ms"] / 1000
        busiest = max_in_sliding_window([r["ts"] for r in ghl_log], window_s)
        level = max_bucket_level([r["ts"] for r in s4s_log], STORE_LIMIT["leak_per_s"])
        print(
            f"scale-out: tenant {t.name}: GHL {len(ghl_log)} requests ({ghl_429} answered 429), busiest "
            f"{window_s:.0f} s window {busiest} of {GHL_LIMIT['burst_max']}; store {len(s4s_log)} requests "
            f"({s4s_429} answered 429), bucket at most {level:.1f} of {STORE_LIMIT['bucket_size']}"
        )
        assert busiest <= GHL_LIMIT["burst_max"], f"{t.name}: a GHL window held {busiest} requests"
        assert level <= STORE_LIMIT["bucket_size"], f"{t.name}: the store's bucket reached {level:.1f}"
