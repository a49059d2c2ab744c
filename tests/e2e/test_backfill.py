"""Full loads and backfills through the real commands, run by a real scheduler.

A throw-away Airflow home (a fresh Postgres metadata database, LocalExecutor, parallelism 4) with its own
``airflow scheduler``, ``airflow dag-processor`` (serializes the DAG) and ``airflow api-server
--apps execution`` (Airflow 3's task runners report to the Execution API) runs the DAG from dags/
against the simulators this test process serves. The scheduler creates no scheduled runs
(``use_job_schedule`` off): the only runs are the ones the test asks for with ``airflow dags
trigger`` and ``airflow backfill create``. Run states are read from the metadata database.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sandbox.seed import generate_contacts
from tests.builders import postgres_database
from tests.conftest import LOCATION_ID, ROOT

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAG_ID = "ghl_shift4shop_sync"
STARTUP_TIMEOUT_S = 120
RUNS_TIMEOUT_S = 300  # generous: on a busy 2-core machine one task instance can take 20 s

pytestmark = [
    # One worker runs the whole module, and builds its scheduler and metadata database once.
    pytest.mark.xdist_group("backfill"),
    # The harsher reading only: windows and watermarks do not depend on the reading, and one run
    # of the real scheduler costs about 90 s.
    pytest.mark.profiles("strict"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Airflow's metadata database. SQLite works with the LocalExecutor, but with a scheduler, a
# dag-processor, an API server and the CLI writing at once, `backfill create` failed with "database
# is locked" (twice in a row, a busy timeout of 60 s notwithstanding): a fresh Postgres database per
# module instead (tests/builders.py).


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group has exited
        os.killpg(pgid, sig)


class AirflowStack:
    """The scheduler, dag-processor and execution API of one throw-away Airflow home."""

    def __init__(self, home: Path, env: dict[str, str]):
        self.home, self.env = home, env
        self.procs: dict[str, subprocess.Popen] = {}
        self.outputs: list = []
        self.engine = None

    def cli(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=self.home
        )
        if check and done.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def start(self, name: str, *args: str) -> None:
        out = open(self.home / f"{name}.log", "w")  # noqa: SIM115 - closed in stop()
        self.outputs.append(out)
        # Own session: stopping it signals its workers too, and nothing else.
        self.procs[name] = subprocess.Popen(
            [AIRFLOW, *args], env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.home, start_new_session=True
        )

    def logs(self, tail: int = 80) -> str:
        parts = []
        for name in self.procs:
            lines = (self.home / f"{name}.log").read_text(errors="replace").splitlines()
            parts.append(f"----- airflow {name} (last {tail} lines) -----\n" + "\n".join(lines[-tail:]))
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM each process group (the scheduler stops its workers), then SIGKILL what is left."""
        for proc in self.procs.values():
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.time() + 20
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.time()))
            _signal_group(proc.pid, signal.SIGKILL)  # stragglers of an exited leader too
            proc.wait(timeout=10)
        for out in self.outputs:
            out.close()
        if self.engine is not None:
            self.engine.dispose()

    def query(self, sql: str) -> list[dict]:
        """Read Airflow's metadata database (the CLI costs seconds per call, this milliseconds)."""
        import sqlalchemy as sa

        if self.engine is None:
            self.engine = sa.create_engine(self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], poolclass=sa.pool.NullPool)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(sa.text(sql))]

    def task_logs(self, run_ids: list[str], tail: int = 40) -> str:
        parts = []
        for run_id in run_ids:
            for path in sorted((self.home / "logs").glob(f"dag_id={DAG_ID}/run_id={run_id}/**/*.log")):
                lines = path.read_text(errors="replace").splitlines()
                parts.append(f"----- {path.relative_to(self.home)} -----\n" + "\n".join(lines[-tail:]))
        return "\n".join(parts)

    def runs(self) -> list[dict]:
        return self.query(
            "SELECT run_id, state, run_type, data_interval_start, data_interval_end FROM dag_run"
            f" WHERE dag_id = '{DAG_ID}'"
        )


@pytest.fixture(scope="session")
def stack(_sims, tmp_path_factory):
    """A running scheduler with the sync DAG serialized and unpaused; stopped at the end of the session."""
    home = tmp_path_factory.mktemp("backfill-airflow-home")
    with postgres_database("airflow_backfill") as db_url:
        yield from _stack(_sims, home, db_url)


def _stack(_sims, home: Path, db_url: str):
    api_port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GHL_S4S_"))}
    env.update(_sims.connections_env())
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",  # Airflow runs tasks of unpaused DAGs only
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(40),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": db_url,  # psycopg 3 does both
            # Only the backfill's runs: no scheduled run may touch the incremental watermarks.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
            "GHL_S4S_STATE_URL": f"sqlite:///{home / 'state.db'}",
            "GHL_S4S_DATA_DIR": str(home / "data"),
            "GHL_S4S_WATERMARK_LAG_SECONDS": "0",
            # The simulators' limits are off (the ``sims`` fixture), so the client's budgets are too.
            **{f"GHL_S4S_{n}": "10000" for n in ("GHL_BURST", "GHL_RATE_PER_S", "SHIFT4SHOP_BURST")},
            "GHL_S4S_SHIFT4SHOP_RATE_PER_S": "10000",
        }
    )
    s = AirflowStack(home, env)
    t0 = time.time()
    s.cli("db", "migrate", timeout=180)
    migrated = time.time()
    pools = {"ghl_api": (2, "HighLevel API"), "shift4shop_api": (1, "Shift4Shop API")}
    (home / "pools.json").write_text(json.dumps({k: {"slots": n, "description": d} for k, (n, d) in pools.items()}))
    try:
        # The pools are created while the processes start (each airflow command takes seconds to start).
        s.start("pools", "pools", "import", str(home / "pools.json"))
        s.start("api-server", "api-server", "--apps", "execution", "--port", str(api_port), "--host", "127.0.0.1")
        s.start("dag-processor", "dag-processor")
        s.start("scheduler", "scheduler")
        deadline = time.time() + STARTUP_TIMEOUT_S
        while not s.query(f"SELECT dag_id FROM serialized_dag WHERE dag_id = '{DAG_ID}'"):
            if time.time() > deadline:
                raise AssertionError(f"the DAG was not serialized within {STARTUP_TIMEOUT_S} s\n{s.logs()}")
            time.sleep(1)
        if s.procs["pools"].wait(timeout=max(1, deadline - time.time())) != 0:
            raise AssertionError(f"airflow pools import failed\n{s.logs()}")
        print(f"airflow stack: db migrate {migrated - t0:.0f} s, up and DAG serialized {time.time() - migrated:.0f} s")
        yield s
    finally:
        s.stop()


def _ts(dt: datetime) -> str:
    from ghl_shift4shop.timeutil import format_ts

    return format_ts(dt)


def _utc(value) -> datetime:
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _wait_for_new_runs(stack: AirflowStack, known: set[str], count: int) -> list[dict]:
    """The ``count`` runs not in ``known``, once all have finished (fails with the logs on timeout)."""
    deadline = time.time() + RUNS_TIMEOUT_S
    while True:
        new = [r for r in stack.runs() if r["run_id"] not in known]
        if len(new) >= count and all(r["state"] in ("success", "failed") for r in new):
            return new
        if time.time() > deadline:
            raise AssertionError(f"runs not finished within {RUNS_TIMEOUT_S} s: {new}\n{stack.logs()}")
        time.sleep(1)


def _assert_succeeded(stack: AirflowStack, runs: list[dict]) -> None:
    failed = [r["run_id"] for r in runs if r["state"] != "success"]
    assert not failed, f"runs failed: {failed}\n{stack.task_logs(failed)}\n{stack.logs()}"


# One day per profile: the two tests share the scheduler, and a backfill skips logical dates it already ran.
BASE_BY_PROFILE = {
    "lenient": datetime(2026, 10, 1, 6, 0, tzinfo=UTC),
    "strict": datetime(2026, 10, 2, 6, 0, tzinfo=UTC),
}
HALF_HOUR = timedelta(minutes=30)
MS = timedelta(milliseconds=1)


def test_full_load_is_one_trigger_and_a_backfill_resyncs_each_interval_without_moving_watermarks(
    sims, stack, profile, monkeypatch
):
    from ghl_shift4shop import sync

    # A fresh state database and data folder for this test (no task is running between tests),
    # shared with the scheduler's task processes.
    for suffix in ("", "-wal", "-shm"):
        (stack.home / f"state.db{suffix}").unlink(missing_ok=True)
    shutil.rmtree(stack.home / "data", ignore_errors=True)
    sync._state.cache_clear()
    monkeypatch.setenv("GHL_S4S_STATE_URL", stack.env["GHL_S4S_STATE_URL"])
    monkeypatch.setenv("GHL_S4S_DATA_DIR", stack.env["GHL_S4S_DATA_DIR"])

    # A new tenant: two years of history, no watermark. One trigger loads it all and sets the marks.
    contacts = generate_contacts(40, seed=31, dirty_share=0.0, location_id=LOCATION_ID)
    history = datetime(2024, 9, 1, tzinfo=UTC)
    for i, c in enumerate(contacts):
        c["dateAdded"] = c["dateUpdated"] = _ts(history + i * timedelta(days=23))
    existing, new = contacts[:30], contacts[30:]
    sims.ghl_state.load_contacts(existing)
    known = {r["run_id"] for r in stack.runs()}
    started = time.time()
    stack.cli("dags", "trigger", DAG_ID)
    _assert_succeeded(stack, _wait_for_new_runs(stack, known, 1))
    print(f"full load (one triggered run) finished in {time.time() - started:.1f} s")
    newest = max(c["dateUpdated"] for c in existing)
    watermarks = sync.state_store().list_watermarks()
    assert {w["stream"]: w["value"] for w in watermarks} == dict.fromkeys(
        ["contacts", "tasks", "notes", "appointments"], newest
    )
    assert sorted(c["AdditionalField1"] for c in sims.customers()) == sorted(c["id"] for c in existing)

    # Changes stamped in three consecutive */30 intervals, and around them.
    base = BASE_BY_PROFILE[profile]
    intervals = [(base + i * HALF_HOUR, base + (i + 1) * HALF_HOUR) for i in range(3)]
    # (contact, new dateUpdated, change a mapped field?, interval index or None when outside all three)
    plan: list[tuple[dict, datetime, bool, int | None]] = []
    same, changed, outside = existing[:12], existing[12:24], existing[24:30]
    for k, c in enumerate(same):  # re-stamped in GHL, nothing mapped differs: never written
        plan.append((c, intervals[k % 3][0] + timedelta(minutes=k), False, k % 3))
    for k, c in enumerate(changed):  # a mapped field differs: updated
        plan.append((c, intervals[k % 3][0] + timedelta(minutes=2 * k + 1), True, k % 3))
    for k, c in enumerate(new):  # not in the store yet: created
        plan.append((c, intervals[k % 3][0] + timedelta(minutes=3 * k + 2, seconds=7), False, k % 3))
    # Boundaries: an interval's start belongs to it, its end to the next one.
    plan[0] = (same[0], intervals[0][0], False, 0)
    plan[13] = (changed[1], intervals[1][0], True, 1)
    plan[-1] = (new[-1], intervals[2][1] - MS, False, 2)
    around = [base - MS, base - timedelta(hours=1), intervals[2][1], intervals[2][1] + MS, base + timedelta(days=1)]
    for c, stamp in zip(outside, [*around, history], strict=True):
        plan.append((c, stamp, True, None))  # changed, but outside the backfill: not written
    sims.ghl_state.load_contacts(
        [
            {**c, "dateUpdated": _ts(at), **({"city": f"Moved {c['id'][:6]}"} if change else {})}
            for c, at, change, _ in plan
        ]
    )
    # The store keeps each customer's last write time (hidden ``_lastUpdate``, whole seconds).
    before = {c["AdditionalField1"]: c["_lastUpdate"] for c in sims.customers()}
    time.sleep(1.1)
    sims.clear_logs()

    started = time.time()
    known = {r["run_id"] for r in stack.runs()}
    stack.cli(
        *("backfill", "create", "--dag-id", DAG_ID, "--max-active-runs", "3"),
        *("--from-date", intervals[0][0].isoformat(), "--to-date", intervals[-1][0].isoformat()),
    )
    runs = _wait_for_new_runs(stack, known, 3)
    print(f"backfill of 3 intervals finished in {time.time() - started:.1f} s")
    _assert_succeeded(stack, runs)
    assert {(r["run_type"], _utc(r["data_interval_start"]), _utc(r["data_interval_end"])) for r in runs} == {
        ("backfill", start, end) for start, end in intervals
    }

    state = sync.state_store()
    by_start = {_utc(r["data_interval_start"]): r["run_id"] for r in runs}
    for i, (start, _end) in enumerate(intervals):
        mine = [c for c, _, _, where in plan if where == i]
        totals = state.run_totals(by_start[start])
        want = {
            "extracted": len(mine),
            "created": sum(1 for c in mine if c in new),
            "updated": sum(1 for c in mine if c in changed),
            "unchanged": sum(1 for c in mine if c in same),
        }
        assert {k: totals.get(k, 0) for k in want} == want, f"interval {start}: {totals}"

    assert state.list_watermarks() == watermarks
    by_id = {}
    for cust in sims.customers():
        assert cust["AdditionalField1"] not in by_id, f"duplicate customer for {cust['AdditionalField1']}"
        by_id[cust["AdditionalField1"]] = cust
    assert set(by_id) == {c["id"] for c in contacts}
    written = {cid for cid, cust in by_id.items() if cust["_lastUpdate"] != before.get(cid)}
    assert written == {c["id"] for c in changed + new}
    assert all(by_id[c["id"]]["BillingCity"] == f"Moved {c['id'][:6]}" for c in changed)
    writes = [r for r in sims.s4s_requests() if r["method"] in ("POST", "PUT", "DELETE")]
    assert writes and all("/Customers" in r["path"] for r in writes), writes

    # Airflow allows one unfinished backfill per DAG; the scheduler marks it complete (every 30 s)
    # once its runs are done. Until then `backfill create` refuses another (the next test makes one).
    deadline = time.time() + 90
    while stack.query(f"SELECT id FROM backfill WHERE dag_id = '{DAG_ID}' AND completed_at IS NULL"):
        assert time.time() < deadline, f"the backfill was not marked complete within 90 s\n{stack.logs()}"
        time.sleep(1)
