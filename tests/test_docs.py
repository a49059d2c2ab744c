"""docs/connections.md names the connection and DAG ids the code really uses, and the docs point there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ghl_shift4shop.settings import GHL_CONN_ID, SHIFT4SHOP_CONN_ID

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS_DOC = ROOT / "docs" / "connections.md"


def table_ids(markdown: str, heading: str) -> list[str]:
    """The backticked ids in the first column of the table under ``## <heading>``."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE)


def dag_ids_in_code() -> set[str]:
    """``dag_id="..."`` of every ``@dag(...)`` / ``DAG(...)`` in dags/ (read, not imported); a DAG factory's
    ``dag_id=tenant.sync_dag_id`` counts as the default tenant's id."""
    from ghl_shift4shop.tenants import DEFAULT, Tenant

    default = Tenant.make(DEFAULT)
    ids = set()
    for path in (ROOT / "dags").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in {
                "dag",
                "DAG",
            }:
                for k in node.keywords:
                    if k.arg == "dag_id" and isinstance(k.value, ast.Constant):
                        ids.add(k.value.value)
                    elif k.arg == "dag_id" and isinstance(k.value, ast.Attribute):
                        ids.add(getattr(default, k.value.attr))
    return ids


def test_connection_ids_match_the_code():
    doc = CONNECTIONS_DOC.read_text(encoding="utf-8")
    assert table_ids(doc, "Airflow connections") == [GHL_CONN_ID, SHIFT4SHOP_CONN_ID]
    for conn_id in (GHL_CONN_ID, SHIFT4SHOP_CONN_ID):
        assert f"AIRFLOW_CONN_{conn_id.upper()}" in doc  # the environment form Airflow reads


def test_dag_ids_match_the_code():
    documented = table_ids(CONNECTIONS_DOC.read_text(encoding="utf-8"), "DAG ids")
    assert documented and sorted(documented) == sorted(dag_ids_in_code())


def test_the_docs_point_at_the_repository_not_outside_it():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/connections.md" in readme
    texts = [
        ROOT / "README.md",
        *(ROOT / "docs").rglob("*.md"),
        *(ROOT / "plugins").rglob("*.py"),
        *(ROOT / "dags").rglob("*.py"),
    ]
    stale = [str(p.relative_to(ROOT)) for p in texts if "CONTRACT.md" in p.read_text(encoding="utf-8")]
    assert stale == []


def test_the_readme_settings_table_lists_every_setting_with_its_real_default():
    """Each default is written once, in settings.py; the README table must agree with it."""
    from dataclasses import fields

    from ghl_shift4shop.settings import NOT_FROM_ENV, PER_TENANT, Settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Settings (environment)\n", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, str] = {}
    for names, defaults in re.findall(r"^\| ((?:`GHL_S4S_\w+`(?:, )?)+) \| ([^|]+) \|", section, flags=re.M):
        variables = re.findall(r"`GHL_S4S_(\w+)`", names)
        values = [v.strip() for v in defaults.split(",")] if len(variables) > 1 else [defaults.strip()]
        documented.update(zip((v.lower() for v in variables), values, strict=True))
    for f in fields(Settings):
        if f.name in NOT_FROM_ENV | PER_TENANT:  # the tenants file's, not the environment's
            continue
        assert f.name in documented, f"GHL_S4S_{f.name.upper()} is not in the README's settings table"
        if isinstance(f.default, int | float) and not isinstance(f.default, bool):
            assert float(documented[f.name]) == float(f.default), f.name
        elif isinstance(f.default, str) and f.default:
            assert documented[f.name] == f.default, f.name
