"""Every DAG parses without network, secrets or connections, and follows the house rules."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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
