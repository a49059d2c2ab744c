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
    """``dag_id="..."`` of every ``@dag(...)`` / ``DAG(...)`` in dags/ (read, not imported)."""
    ids = set()
    for path in (ROOT / "dags").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in {
                "dag",
                "DAG",
            }:
                ids.update(
                    k.value.value for k in node.keywords if k.arg == "dag_id" and isinstance(k.value, ast.Constant)
                )
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
