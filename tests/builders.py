"""Test data builders: seeded GHL data, and an ``include/`` folder with the mapping files changed.

One place for what many test modules need, so each test says only what differs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import yaml

from sandbox.seed import generate_contacts, generate_crm

ROOT = Path(__file__).resolve().parents[1]


def seed_ghl(sims, n: int, seed: int = 21, *, location_id: str, crm: bool = True) -> tuple[list[dict], dict]:
    """``n`` clean contacts (and their tasks, notes, calendars, events) loaded into the GHL simulator."""
    contacts = generate_contacts(n, seed=seed, dirty_share=0.0, location_id=location_id)
    sims.ghl_state.load_contacts(contacts)
    data: dict = {"tasks": [], "notes": [], "calendars": [], "events": []}
    if crm:
        data = generate_crm(contacts, seed=seed, location_id=location_id)
        sims.ghl_state.load_tasks(data["tasks"])
        sims.ghl_state.load_notes(data["notes"])
        sims.ghl_state.load_calendars(data["calendars"])
        sims.ghl_state.load_events(data["events"])
    return contacts, data


def include_with_crm(tmp_path: Path, monkeypatch, *, tickets=(), **streams: dict) -> Path:
    """A copy of ``include/`` whose crm_to_store.yaml switches on CRM tickets for ``tickets``.

    ``streams`` overrides keys per stream, e.g. ``notes={"status": "Waiting"}``. Turning tickets
    on also sets ``store_may_email_customers: true``, as an operator has to. The sync reads the copy
    (``GHL_S4S_INCLUDE_DIR``).
    """
    include = tmp_path / "include"
    if not include.exists():
        shutil.copytree(ROOT / "include", include)
    path = include / "mappings" / "crm_to_store.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    for name in tickets:
        doc[name]["ticket" if name == "notes" else "tickets"] = True
    if tickets:
        doc["store_may_email_customers"] = True
    for name, changes in streams.items():
        doc[name].update(changes)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("GHL_S4S_INCLUDE_DIR", str(include))
    return include


ASSET_URI = "shift4shop://shift4shop_default/customers"


def customers_events() -> list:
    """Every event on the store's customers asset, oldest first, from Airflow's own tables."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(AssetModel.uri == ASSET_URI)
        ).all()
        return [(e.source_dag_id, e.source_task_id, e.source_run_id, dict(e.extra or {})) for e in rows]


def postgres_url() -> str | None:
    """The test Postgres (``GHL_S4S_TEST_POSTGRES_URL``, default the local one) if it answers, else None."""
    import sqlalchemy as sa

    url = os.environ.get("GHL_S4S_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    try:
        eng = sa.create_engine(url)
        with eng.connect():
            pass
        eng.dispose()
        return url
    except Exception:
        return None


def postgres_schema(also_drop: tuple[str, ...] = ()) -> Iterator[tuple]:
    """Yield ``(engine, url whose search_path is a throw-away schema, schema name)``; the schema (and
    ``also_drop``, e.g. a tenant schema made from it) is dropped after. Postgres unreachable fails in
    CI and skips elsewhere. For pytest fixtures (``yield from``)."""
    import uuid

    import pytest
    import sqlalchemy as sa

    url = postgres_url()
    if url is None:
        if os.environ.get("CI"):
            pytest.fail("Postgres is not reachable in CI (.ci/run starts it)")
        pytest.skip("Postgres not reachable")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA {schema}"))
    yield eng, f"{url}?options=-csearch_path%3D{schema}", schema
    with eng.begin() as c:
        for name in (*also_drop, schema):
            c.execute(sa.text(f"DROP SCHEMA IF EXISTS {name.format(schema=schema)} CASCADE"))
    eng.dispose()


def fresh_state_store(kind: str, tmp_path: Path):
    """Yield a fresh ``StateStore`` of ``kind`` ("sqlite" or "postgresql": a throw-away schema, dropped
    after). For pytest fixtures (``yield from``)."""
    from ghl_shift4shop.state import StateStore

    if kind == "sqlite":
        yield StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        return
    for _eng, url, _schema in postgres_schema():
        store = StateStore(url)
        yield store
        store.engine.dispose()


# The server that throw-away Airflow metadata databases (real schedulers, tests/e2e) are made on.
PG_SERVER = os.environ.get("GHL_S4S_TEST_AIRFLOW_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


def _pg_admin(statement: str) -> None:
    import pytest
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.execute(sa.text(statement))
        engine.dispose()
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Postgres is not reachable in CI (.ci/run starts it): {exc}")
        pytest.skip(f"Postgres not reachable at {PG_SERVER} (make test starts it): {exc}")


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh database on ``PG_SERVER`` named ``<prefix>_<random>``, dropped (forcibly) afterwards.

    Yields its SQLAlchemy URL (psycopg 3, which serves Airflow's sync and async engines alike).
    Postgres unreachable fails in CI and skips elsewhere.
    """
    name = f"{prefix}_{secrets.token_hex(4)}"
    _pg_admin(f"CREATE DATABASE {name}")
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def count_reads(monkeypatch, path: Path) -> list[Path]:
    """A list that grows by one each time ``path`` is read with ``Path.read_text`` from now on."""
    reads: list[Path] = []
    real = Path.read_text

    def counting(self, *args, **kwargs):
        if self == path:
            reads.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting)
    return reads
