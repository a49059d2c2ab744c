"""Every DAG parses without network, secrets or connections, and follows the house rules."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_DAGS = {"ghl_shift4shop_sync", "ghl_shift4shop_reconcile"}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) >= EXPECTED_DAGS


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_policy_tags_retries_docs(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags, "every DAG carries tags"
    assert dag.doc_md and len(dag.doc_md) > 100
    for t in dag.tasks:
        assert t.retries >= 2, f"{t.task_id} has retries={t.retries}"


def test_sync_shape(dagbag):
    dag = dagbag.dags["ghl_shift4shop_sync"]
    assert dag.max_active_runs == 1
    assert {t.task_id for t in dag.tasks} == {
        "plan_window",
        "extract",
        "validate",
        "quality_gate",
        "fetch_children",
        "transform",
        "load",
        "load_crm",
        "commit_watermark",
        "report",
    }
    assert dag.get_task("commit_watermark").upstream_task_ids >= {"load", "load_crm"}
    assert dag.get_task("load_crm").upstream_task_ids >= {"load", "fetch_children"}
    assert dag.get_task("fetch_children").pool == "ghl_api"
    assert dag.get_task("extract").pool == "ghl_api"
    assert dag.get_task("load").pool == dag.get_task("load_crm").pool == "shift4shop_api"


def test_reconcile_shape(dagbag):
    dag = dagbag.dags["ghl_shift4shop_reconcile"]
    assert dag.max_active_runs == 1
    assert {t.task_id for t in dag.tasks} == {"compare", "recheck", "repair", "report"}
    assert dag.get_task("recheck").upstream_task_ids == {"compare"}
    assert dag.get_task("repair").upstream_task_ids == {"compare", "recheck"}
    assert dag.get_task("report").upstream_task_ids == {"compare", "repair"}
    assert dag.get_task("report").trigger_rule == "all_done"  # the report is written even when repair fails
    # GHL is read in its own pool; the store's single slot is never held while waiting on GHL.
    assert dag.get_task("compare").pool == dag.get_task("recheck").pool == "ghl_api"
    assert dag.get_task("repair").pool == "shift4shop_api"  # queues behind the sync's store writes
    assert dag.params["dry_run"] is False


@pytest.mark.parametrize("dag_file", ["ghl_shift4shop_sync.py", "ghl_shift4shop_reconcile.py"])
def test_parsing_needs_no_connection_and_no_heavy_imports(dag_file):
    """Parse in a clean interpreter with no connections: must not fail and must not import GX or pandas."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    code = (
        "import sys, runpy, time; t=time.time();"
        f"runpy.run_path({str(ROOT / 'dags' / dag_file)!r});"
        "bad=[m for m in ('great_expectations','pandas','phonenumbers') if m in sys.modules];"
        "print('heavy:', bad); print('secs:', round(time.time()-t,2))"
    )
    started = time.time()
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PYTHONPATH": f"{ROOT / 'plugins'}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "heavy: []" in out.stdout, out.stdout
    assert time.time() - started < 120


def test_airflow_plugin_loader_leaves_the_package_alone():
    """Airflow imports every plugins/*.py as a top-level module; the package's must be ignored (.airflowignore).

    Only the UI plugin's registration module loads, and it must not import the page's app: every task
    process loads plugins.
    """
    package = str(ROOT / "plugins" / "ghl_shift4shop") + "/"
    code = (
        "import sys;"
        "from airflow._shared.plugins_manager.plugins_manager import _load_plugins_from_plugin_directory as f;"
        f"plugins, errors = f({str(ROOT / 'plugins')!r});"
        "print('errors', errors);"
        "print('plugins', sorted(p.name for p in plugins));"
        f"print('ours', [n for n, m in sys.modules.items() if str(getattr(m, '__file__', '')).startswith({package!r})])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "errors {}" in out.stdout and "ours []" in out.stdout, out.stdout
    assert "plugins ['ghl_shift4shop_ui']" in out.stdout, out.stdout


def test_no_module_of_the_package_shadows_the_standard_library():
    """A module named like a stdlib one (``http.py``) breaks anything that puts the package dir on sys.path."""
    package = ROOT / "plugins" / "ghl_shift4shop"
    names = {p.stem for p in package.rglob("*.py")} | {p.name for p in package.rglob("*") if p.is_dir()}
    assert not names & (set(sys.stdlib_module_names) - {"__main__"}), sorted(names & set(sys.stdlib_module_names))


TWO_TENANTS = """
tenants:
  - name: default
  - name: acme
    shift4shop_conn_id: store_of_acme
    schedule: "15,45 * * * *"
    reconcile_schedule: "0 3 * * *"
    reconcile_finish_by: "04:30"
    ghl_pool: ghl_api__acme_shared
"""


@pytest.fixture(scope="module")
def two_tenant_dagbag(tmp_path_factory):
    from airflow.dag_processing.dagbag import DagBag

    path = tmp_path_factory.mktemp("tenants") / "tenants.yaml"
    path.write_text(TWO_TENANTS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GHL_S4S_TENANTS_FILE", str(path))
        return DagBag(dag_folder=str(ROOT / "dags"))


def test_each_tenant_gets_its_own_dags_pools_connections_and_schedules(two_tenant_dagbag, dagbag):
    bag = two_tenant_dagbag
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == EXPECTED_DAGS | {"ghl_shift4shop_sync__acme", "ghl_shift4shop_reconcile__acme"}
    sync, reconcile = bag.dags["ghl_shift4shop_sync__acme"], bag.dags["ghl_shift4shop_reconcile__acme"]
    default_sync, default_reconcile = bag.dags["ghl_shift4shop_sync"], bag.dags["ghl_shift4shop_reconcile"]
    # The same tasks, params and house rules as the default tenant's DAGs.
    for mine, theirs in ((sync, default_sync), (reconcile, default_reconcile)):
        assert {t.task_id for t in mine.tasks} == {t.task_id for t in theirs.tasks}
        assert set(mine.params) == set(theirs.params) and mine.max_active_runs == 1
        assert all(t.retries >= 2 for t in mine.tasks) and "tenant:acme" in mine.tags
        assert mine.doc_md == theirs.doc_md
    assert sync.timetable.summary == "15,45 * * * *" and reconcile.timetable.summary == "0 3 * * *"
    assert default_sync.timetable.summary == "*/30 * * * *" and default_reconcile.timetable.summary == "0 2 * * *"
    # acme's reconciliation must be done by its own 04:30; the default's by GHL_S4S_RECONCILE_FINISH_BY (06:00)
    assert [a.interval for a in reconcile.deadline] == [timedelta(hours=1, minutes=30)]
    assert [a.interval for a in default_reconcile.deadline] == [timedelta(hours=4)]
    assert sync.get_task("extract").pool == sync.get_task("fetch_children").pool == "ghl_api__acme_shared"
    assert sync.get_task("load").pool == sync.get_task("load_crm").pool == "shift4shop_api__acme"
    assert reconcile.get_task("compare").pool == reconcile.get_task("recheck").pool == "ghl_api__acme_shared"
    assert reconcile.get_task("repair").pool == "shift4shop_api__acme"
    # Each store connection has its own customers asset; acme's tasks write acme's.
    assert [a.uri for a in sync.get_task("load").outlets] == ["shift4shop://store_of_acme/customers"]
    assert [a.uri for a in reconcile.get_task("repair").outlets] == ["shift4shop://store_of_acme/customers"]
    assert [a.uri for a in default_sync.get_task("load").outlets] == ["shift4shop://shift4shop_default/customers"]
    # The default tenant's DAGs are the ones a single-tenant deployment parses, unchanged.
    for dag_id in EXPECTED_DAGS:
        single, multi = dagbag.dags[dag_id], bag.dags[dag_id]
        assert [(t.task_id, t.pool, t.trigger_rule) for t in single.tasks] == [
            (t.task_id, t.pool, t.trigger_rule) for t in multi.tasks
        ]
        assert single.tags == multi.tags and single.timetable.summary == multi.timetable.summary


@pytest.mark.parametrize(
    "extra",
    [
        'reconcile_schedule: "0 2 * * 0"',  # weekly: the reconciliation's deadline is a time of day
        'schedule: "every 30 minutes"',  # not a cron line
        'reconcile_finish_by: "6am"',  # not HH:MM
    ],
)
def test_a_tenant_whose_dags_cannot_be_built_leaves_the_others_and_is_an_import_error(tmp_path, monkeypatch, extra):
    """The wrong entry's tenant gets neither DAG (its tasks could not load its settings either); the
    default tenant and globex keep theirs; each DAG file shows an import error naming acme's entry."""
    from airflow.dag_processing.dagbag import DagBag

    path = tmp_path / "tenants.yaml"
    path.write_text(f"tenants:\n  - name: default\n  - name: acme\n    {extra}\n  - name: globex\n")
    monkeypatch.setenv("GHL_S4S_TENANTS_FILE", str(path))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert set(bag.dag_ids) == EXPECTED_DAGS | {f"{kind}__globex" for kind in EXPECTED_DAGS}
    assert sorted(Path(f).name for f in bag.import_errors) == ["ghl_shift4shop_reconcile.py", "ghl_shift4shop_sync.py"]
    for file, error in bag.import_errors.items():
        dag_id = Path(file).stem + "__acme"
        assert f"tenant 'acme': DAG {dag_id!r} not built" in error and f"{path}: tenant 'acme' (entry 2)" in error


def test_a_dag_parse_reads_the_tenants_file_once(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    path = tmp_path / "tenants.yaml"
    path.write_text("tenants:\n  - name: default\n" + "".join(f"  - name: t{i}\n" for i in range(9)))
    monkeypatch.setenv("GHL_S4S_TENANTS_FILE", str(path))
    from tests.builders import count_reads

    reads = count_reads(monkeypatch, path)
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert len(bag.dag_ids) == 20 and not bag.import_errors
    assert len(reads) == 1  # two DAG files, twenty DAGs
