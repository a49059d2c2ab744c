"""The sync's own state database: watermarks, id maps, quarantine and run statistics.

SQLite file by default, any SQLAlchemy URL through ``GHL_S4S_STATE_URL`` (Postgres in the
scale-out setup). This is not Airflow's metadata database: tasks may use it freely.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

metadata = sa.MetaData()

watermarks = sa.Table(
    "watermarks",
    metadata,
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(40), nullable=False),
    sa.Column("run_id", sa.String(250)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

id_map = sa.Table(
    "id_map",
    metadata,
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("source_id", sa.String(64), primary_key=True),
    sa.Column("target_id", sa.String(64), nullable=False),
    sa.Column("match_key", sa.String(255)),  # lower-cased email for customers
    sa.Column("payload_hash", sa.String(64)),
    sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_id_map_match_key", "stream", "match_key"),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("source_id", sa.String(255), primary_key=True),
    sa.Column("run_id", sa.String(250)),
    sa.Column("stage", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("record", sa.Text),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
)

run_stats = sa.Table(
    "run_stats",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("stage", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)


dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("source_id", sa.String(255), primary_key=True),
    sa.Column("status", sa.Integer),
    sa.Column("message", sa.Text),
    sa.Column("row", sa.Text, nullable=False),  # the transformed row, loaded again next run
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
)

run_summaries = sa.Table(
    "run_summaries",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
)


# What the sync has learned about the store it writes to (e.g. whether it takes an array POST).
store_facts = sa.Table(
    "store_facts",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# A create sent to the store whose outcome is not recorded yet. Written before the request goes
# out and removed once the answer is recorded: a row still here means "this may have landed", so
# whoever creates that record next looks it up first (never a blind second create).
write_intents = sa.Table(
    "write_intents",
    metadata,
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("source_id", sa.String(255), primary_key=True),
    sa.Column("run_id", sa.String(250)),
    sa.Column("detail", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Tasks, notes and appointments of a contact that could not be loaded this run (its customer does
# not exist yet because its load was dead-lettered or quarantined, or a create's answer never came):
# kept here and loaded first on the next run, so advancing the stream's watermark never loses them.
held_children = sa.Table(
    "held_children",
    metadata,
    sa.Column("stream", sa.String(32), primary_key=True),
    sa.Column("contact_id", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(255), nullable=False),
    sa.Column("row", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
)

# The load's e-mail resolver keeps its index here, not in memory, so a load's memory is one batch
# whatever the number of contacts. Rows belong to one load (``token``, a row in resolver_loads);
# the load deletes them when it ends, and a later load deletes those a crashed one left behind.
resolver_loads = sa.Table(
    "resolver_loads",
    metadata,
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column("stream", sa.String(64), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
)

# Before the resolver decides: the e-mails it will be asked about (counted, never held). After:
# the e-mails whose store customers are known (those in resolver_customers; none is a valid answer).
resolver_emails = sa.Table(
    "resolver_emails",
    metadata,
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Index("ix_resolver_emails", "token", "email"),
)

resolver_customers = sa.Table(
    "resolver_customers",
    metadata,
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("customer_id", sa.BigInteger, nullable=False),
    sa.Column("source_id", sa.String(255), nullable=False),  # the customer's GHL id, "" when none
    sa.Index("ix_resolver_customers", "token", "email"),
)

crm_parts = sa.Table(
    "crm_parts",
    metadata,
    sa.Column("contact_id", sa.String(64), primary_key=True),
    sa.Column("stream", sa.String(32), primary_key=True),
    sa.Column("head", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# One row per reconciliation run, and every finding it made (the report the UI and the CSV show).
reconcile_runs = sa.Table(
    "reconcile_runs",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),  # ok | braked | failed
    sa.Column("summary", sa.Text, nullable=False),  # JSON: counts per finding kind and per action
    sa.Column("report_dir", sa.Text),
)

reconcile_findings = sa.Table(
    "reconcile_findings",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),  # missing_in_store, deleted_in_ghl, drift, ...
    sa.Column("source_id", sa.String(255)),  # GHL id (contact or task)
    sa.Column("target_id", sa.String(64)),  # store id (customer)
    sa.Column("field", sa.String(64)),
    sa.Column("ghl_value", sa.Text),
    sa.Column("store_value", sa.Text),
    sa.Column("action", sa.String(32), nullable=False),  # reported, repaired, disabled, enabled, deleted, ...
    sa.Column("detail", sa.Text),
)


def _ddl_lock_key(schema: str) -> int:
    """A signed 64-bit advisory-lock key for making one schema's tables."""
    digest = hashlib.sha256(f"ghl_s4s state ddl\x00{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class MappedId:
    source_id: str
    target_id: str
    match_key: str | None
    payload_hash: str | None


class StateStore:
    """All reads and writes of the state database go through here."""

    def __init__(self, url: str, schema: str | None = None):
        """``schema``: keep every table in this Postgres schema (made if missing), not the URL's own;
        a tenant's state beside the default tenant's in one database (``settings.tenant_state``)."""
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.engine: Engine = sa.create_engine(url, future=True)
        if schema:
            self.engine = self.engine.execution_options(schema_translate_map={None: schema})
        if self.engine.dialect.name == "sqlite":
            # Several task processes share one file: wait for the lock instead of failing.
            @sa.event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

        self.create_tables()

    def create_tables(self, tables: list[sa.Table] | None = None) -> None:
        """Make the schema and ``tables`` (default: all of ``metadata``) where missing.

        A new tenant's first tasks start side by side: CREATE SCHEMA / CREATE TABLE "if not exists"
        both race on Postgres (a unique violation in the catalog), so one process at a time makes
        them, under a transaction-scoped advisory lock named after the schema.
        """
        if self.engine.dialect.name != "postgresql":
            metadata.create_all(self.engine, tables=tables)
            return
        with self.engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ddl_lock_key(self.schema or "")})
            if self.schema:
                conn.execute(sa.schema.CreateSchema(self.schema, if_not_exists=True))
            metadata.create_all(conn, tables=tables)

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _upsert(self, conn: sa.Connection, table: sa.Table, values: dict, keys: list[str]) -> None:
        """Insert or update one row by primary key, portable across SQLite and Postgres."""
        self._upsert_many(conn, table, [values], keys)

    def _upsert_many(
        self, conn: sa.Connection, table: sa.Table, rows: Iterable[dict], keys: list[str], keep: tuple[str, ...] = ()
    ) -> None:
        """Insert or update rows by primary key: one statement, compiled once, sent as an executemany.

        Rows with the same key: the last one wins, as if they were written one after another
        (a multi-row ``INSERT … ON CONFLICT`` may not touch one row twice on Postgres). Columns in
        ``keep`` are written when the row is new and left as they are when it exists.
        """
        latest: dict[tuple, dict] = {}
        for values in rows:
            latest[tuple(values[k] for k in keys)] = values
        if not latest:
            return
        batch = list(latest.values())
        dialect = conn.dialect.name
        if dialect in ("sqlite", "postgresql"):
            mod = sa.dialects.sqlite if dialect == "sqlite" else sa.dialects.postgresql
            stmt = mod.insert(table)
            update = {k: stmt.excluded[k] for k in batch[0] if k not in keys and k not in keep}
            stmt = stmt.on_conflict_do_update(index_elements=keys, set_=update)
            for i in range(0, len(batch), 1000):  # a bounded statement, whatever the batch size
                conn.execute(stmt, batch[i : i + 1000])
            return
        for values in batch:
            where = sa.and_(*(table.c[k] == values[k] for k in keys))
            changes = {k: v for k, v in values.items() if k not in keep}
            if conn.execute(sa.update(table).where(where).values(**changes)).rowcount == 0:
                conn.execute(sa.insert(table).values(**values))

    def _delete_keys(self, table: sa.Table, stream: str, key: str, ids: Iterable[str]) -> None:
        """Delete ``stream``'s rows whose ``key`` column is one of ``ids`` (500 at a time)."""
        ids = list(ids)
        with self.begin() as conn:
            for i in range(0, len(ids), 500):
                conn.execute(sa.delete(table).where(table.c.stream == stream, table.c[key].in_(ids[i : i + 500])))

    def _stored_rows(self, table: sa.Table, stream: str) -> list[dict]:
        """The JSON ``row`` column of ``stream``'s rows, oldest first."""
        with self.begin() as conn:
            rows = conn.execute(
                sa.select(table.c.row).where(table.c.stream == stream).order_by(table.c.first_seen)
            ).scalars()
            return [json.loads(r) for r in rows]

    # -- watermarks ---------------------------------------------------------------------------
    def get_watermark(self, stream: str) -> str | None:
        with self.begin() as conn:
            return conn.execute(sa.select(watermarks.c.value).where(watermarks.c.stream == stream)).scalar_one_or_none()

    def set_watermark(self, stream: str, value: str, run_id: str | None) -> None:
        with self.begin() as conn:
            self._upsert(
                conn,
                watermarks,
                {"stream": stream, "value": value, "run_id": run_id, "updated_at": utcnow()},
                ["stream"],
            )

    def reset_watermark(self, stream: str) -> bool:
        with self.begin() as conn:
            return conn.execute(sa.delete(watermarks).where(watermarks.c.stream == stream)).rowcount > 0

    def list_watermarks(self) -> list[dict]:
        with self.begin() as conn:
            rows = conn.execute(sa.select(watermarks).order_by(watermarks.c.stream)).mappings()
            return [dict(r) for r in rows]

    # -- id map -------------------------------------------------------------------------------
    def get_mapped(self, stream: str, source_ids: Iterable[str]) -> dict[str, MappedId]:
        ids = list(source_ids)
        out: dict[str, MappedId] = {}
        with self.begin() as conn:
            for i in range(0, len(ids), 500):
                rows = conn.execute(
                    sa.select(id_map).where(id_map.c.stream == stream, id_map.c.source_id.in_(ids[i : i + 500]))
                ).mappings()
                for r in rows:
                    out[r["source_id"]] = MappedId(r["source_id"], r["target_id"], r["match_key"], r["payload_hash"])
        return out

    def find_by_match_key(self, stream: str, keys: Iterable[str]) -> dict[str, MappedId]:
        """Map match key (lower-cased email) → the id-map row that already owns it."""
        wanted = [k for k in set(keys) if k]
        out: dict[str, MappedId] = {}
        with self.begin() as conn:
            for i in range(0, len(wanted), 500):
                rows = conn.execute(
                    sa.select(id_map).where(id_map.c.stream == stream, id_map.c.match_key.in_(wanted[i : i + 500]))
                ).mappings()
                for r in rows:
                    out[r["match_key"]] = MappedId(r["source_id"], r["target_id"], r["match_key"], r["payload_hash"])
        return out

    def record_mapped(self, stream: str, rows: Iterable[MappedId]) -> None:
        now = utcnow()
        with self.begin() as conn:
            self._upsert_many(
                conn,
                id_map,
                (
                    {
                        "stream": stream,
                        "source_id": m.source_id,
                        "target_id": m.target_id,
                        "match_key": m.match_key,
                        "payload_hash": m.payload_hash,
                        "synced_at": now,
                    }
                    for m in rows
                ),
                ["stream", "source_id"],
            )

    def all_mapped(self, stream: str) -> list[MappedId]:
        """Every id-map row of ``stream`` (the reconciliation reads them all once)."""
        with self.begin() as conn:
            rows = conn.execute(sa.select(id_map).where(id_map.c.stream == stream)).mappings()
            return [MappedId(r["source_id"], r["target_id"], r["match_key"], r["payload_hash"]) for r in rows]

    def forget_mapped(self, stream: str, source_ids: Iterable[str]) -> None:
        self._delete_keys(id_map, stream, "source_id", source_ids)

    def target_ids(self, stream: str, prefix: str | None = None) -> set[str]:
        """Every target id of ``stream`` (optionally only those starting with ``prefix``)."""
        q = sa.select(id_map.c.target_id).where(id_map.c.stream == stream)
        if prefix:
            q = q.where(id_map.c.target_id.startswith(prefix, autoescape=True))
        with self.begin() as conn:
            return set(conn.execute(q).scalars())

    def count_mapped(self, stream: str) -> int:
        with self.begin() as conn:
            return conn.execute(
                sa.select(sa.func.count()).select_from(id_map).where(id_map.c.stream == stream)
            ).scalar_one()

    # -- quarantine ---------------------------------------------------------------------------
    def quarantine(self, stream: str, stage: str, run_id: str, items: Iterable[tuple[str, str, dict]]) -> int:
        """Store (source_id, reason, record) rows; a record seen again keeps its first_seen."""
        now = utcnow()
        rows = [
            {
                "stream": stream,
                "source_id": source_id,
                "run_id": run_id,
                "stage": stage,
                "reason": reason,
                "record": json.dumps(record, default=str, ensure_ascii=False),
                "first_seen": now,
                "last_seen": now,
                "resolved_at": None,
            }
            for source_id, reason, record in items
        ]
        with self.begin() as conn:
            self._upsert_many(conn, quarantine, rows, ["stream", "source_id"], keep=("first_seen",))
        return len(rows)

    def resolve_quarantine(self, stream: str, source_ids: Iterable[str]) -> None:
        """Records that later passed are marked resolved (kept for the audit trail)."""
        ids = list(source_ids)
        now = utcnow()
        with self.begin() as conn:
            for i in range(0, len(ids), 500):
                conn.execute(
                    sa.update(quarantine)
                    .where(
                        quarantine.c.stream == stream,
                        quarantine.c.source_id.in_(ids[i : i + 500]),
                        quarantine.c.resolved_at.is_(None),
                    )
                    .values(resolved_at=now)
                )

    def open_quarantine(self, stream: str | None = None) -> list[dict]:
        q = sa.select(quarantine).where(quarantine.c.resolved_at.is_(None))
        if stream:
            q = q.where(quarantine.c.stream == stream)
        with self.begin() as conn:
            return [dict(r) for r in conn.execute(q.order_by(quarantine.c.source_id)).mappings()]

    # -- run statistics -----------------------------------------------------------------------
    def add_stats(self, run_id: str, stage: str, stats: dict[str, int]) -> None:
        """Replace a stage's counters for a run (a retried task overwrites, never double counts)."""
        with self.begin() as conn:
            self._upsert_many(
                conn,
                run_stats,
                (
                    {"run_id": run_id, "stage": stage, "name": name, "value": int(value)}
                    for name, value in stats.items()
                ),
                ["run_id", "stage", "name"],
            )

    def run_totals(self, run_id: str) -> dict[str, int]:
        """Sum of every counter over the run's stages (mapped batches are separate stages)."""
        with self.begin() as conn:
            rows = conn.execute(
                sa.select(run_stats.c.name, sa.func.sum(run_stats.c.value))
                .where(run_stats.c.run_id == run_id)
                .group_by(run_stats.c.name)
            ).all()
        return {name: int(total) for name, total in rows}

    def save_summary(self, run_id: str, summary: dict) -> None:
        with self.begin() as conn:
            self._upsert(
                conn,
                run_summaries,
                {"run_id": run_id, "finished_at": utcnow(), "summary": json.dumps(summary, default=str)},
                ["run_id"],
            )

    def recent_summaries(self, limit: int = 10) -> list[dict]:
        with self.begin() as conn:
            rows = conn.execute(
                sa.select(run_summaries).order_by(run_summaries.c.finished_at.desc()).limit(limit)
            ).mappings()
            return [{"run_id": r["run_id"], "finished_at": r["finished_at"], **json.loads(r["summary"])} for r in rows]

    # -- the last known summary part of each child stream, per contact ---------------------------
    def get_parts(self, contact_ids: Iterable[str]) -> dict[str, dict[str, tuple[str, str]]]:
        ids = list(contact_ids)
        out: dict[str, dict[str, tuple[str, str]]] = {}
        with self.begin() as conn:
            for i in range(0, len(ids), 500):
                rows = conn.execute(sa.select(crm_parts).where(crm_parts.c.contact_id.in_(ids[i : i + 500])))
                for r in rows.mappings():
                    out.setdefault(r["contact_id"], {})[r["stream"]] = (r["head"], r["text"])
        return out

    def save_parts(self, rows: Iterable[tuple[str, str, tuple[str, str]]]) -> None:
        now = utcnow()
        values = [
            {"contact_id": contact_id, "stream": stream, "head": head, "text": text, "updated_at": now}
            for contact_id, stream, (head, text) in rows
        ]
        with self.begin() as conn:
            self._upsert_many(conn, crm_parts, values, ["contact_id", "stream"])

    def mapped_for_match_keys(self, stream: str, keys: Iterable[str]) -> list[MappedId]:
        """Every id-map row of ``stream`` whose match key is one of ``keys`` (e.g. tasks of contacts)."""
        wanted = [k for k in set(keys) if k]
        out: list[MappedId] = []
        with self.begin() as conn:
            for i in range(0, len(wanted), 500):
                rows = conn.execute(
                    sa.select(id_map).where(id_map.c.stream == stream, id_map.c.match_key.in_(wanted[i : i + 500]))
                ).mappings()
                out.extend(MappedId(r["source_id"], r["target_id"], r["match_key"], r["payload_hash"]) for r in rows)
        return out

    # -- dead letters: items the store failed with a retryable status ----------------------------
    def dead_letter(
        self, stream: str, source_id: str, status: int, message: str, row: dict, *, count: bool = True
    ) -> int:
        """Store (or refresh) a failed item; returns how many times it has failed.

        ``count=False`` replaces the stored row (a newer copy) without counting another failure.
        """
        now = utcnow()
        with self.begin() as conn:
            prev = conn.execute(
                sa.select(dead_letters.c.attempts, dead_letters.c.first_seen).where(
                    dead_letters.c.stream == stream, dead_letters.c.source_id == source_id
                )
            ).first()
            attempts = (prev.attempts if prev else 0) + (1 if count or prev is None else 0)
            self._upsert(
                conn,
                dead_letters,
                {
                    "stream": stream,
                    "source_id": source_id,
                    "status": status,
                    "message": message[:2000],
                    "row": json.dumps(row, ensure_ascii=False),
                    "attempts": attempts,
                    "first_seen": prev.first_seen if prev else now,
                    "last_seen": now,
                },
                ["stream", "source_id"],
            )
        return attempts

    def dead_letter_rows(self, stream: str) -> list[dict]:
        """Rows waiting to be loaded again, oldest first. They stay stored until
        :meth:`clear_dead_letters` is called for them (after they landed or were quarantined)."""
        return self._stored_rows(dead_letters, stream)

    def clear_dead_letters(self, stream: str, source_ids: Iterable[str]) -> None:
        self._delete_keys(dead_letters, stream, "source_id", source_ids)

    def list_dead_letters(self, stream: str | None = None) -> list[dict]:
        q = sa.select(dead_letters)
        if stream:
            q = q.where(dead_letters.c.stream == stream)
        with self.begin() as conn:
            return [dict(r) for r in conn.execute(q.order_by(dead_letters.c.source_id)).mappings()]

    # -- write intents: creates whose outcome is not recorded yet ---------------------------------
    def intend(self, stream: str, items: dict[str, dict], run_id: str | None = None) -> None:
        """Record, before sending, that these creates are about to go out (source id → detail)."""
        now = utcnow()
        with self.begin() as conn:
            self._upsert_many(
                conn,
                write_intents,
                (
                    {
                        "stream": stream,
                        "source_id": source_id,
                        "run_id": run_id,
                        "detail": json.dumps(detail, default=str, ensure_ascii=False),
                        "created_at": now,
                    }
                    for source_id, detail in items.items()
                ),
                ["stream", "source_id"],
            )

    def settle(self, stream: str, source_ids: Iterable[str]) -> None:
        """The outcome of these creates is recorded (or known to be nothing): forget the intent."""
        self._delete_keys(write_intents, stream, "source_id", source_ids)

    def pending(self, stream: str, source_ids: Iterable[str] | None = None) -> dict[str, dict]:
        """Creates of ``stream`` that may have landed without being recorded (source id → detail)."""
        q = sa.select(write_intents.c.source_id, write_intents.c.detail).where(write_intents.c.stream == stream)
        out: dict[str, dict] = {}
        with self.begin() as conn:
            if source_ids is None:
                rows = conn.execute(q).all()
            else:
                ids, rows = list(source_ids), []
                for i in range(0, len(ids), 500):
                    rows += conn.execute(q.where(write_intents.c.source_id.in_(ids[i : i + 500]))).all()
        for source_id, detail in rows:
            out[source_id] = json.loads(detail) if detail else {}
        return out

    # -- children held for the next run --------------------------------------------------------
    def hold_children(self, stream: str, rows: Iterable[dict], reason: str) -> int:
        """Keep child rows (``{"contact_id", "items", ...}``) for the next run; returns how many."""
        now = utcnow()
        n = 0
        with self.begin() as conn:
            for row in rows:
                prev = conn.execute(
                    sa.select(held_children.c.attempts, held_children.c.first_seen).where(
                        held_children.c.stream == stream, held_children.c.contact_id == row["contact_id"]
                    )
                ).first()
                self._upsert(
                    conn,
                    held_children,
                    {
                        "stream": stream,
                        "contact_id": row["contact_id"],
                        "reason": reason[:255],
                        "row": json.dumps(row, ensure_ascii=False),
                        "attempts": (prev.attempts if prev else 0) + 1,
                        "first_seen": prev.first_seen if prev else now,
                        "last_seen": now,
                    },
                    ["stream", "contact_id"],
                )
                n += 1
        return n

    def held_rows(self, stream: str) -> list[dict]:
        return self._stored_rows(held_children, stream)

    def release_children(self, stream: str, contact_ids: Iterable[str]) -> None:
        self._delete_keys(held_children, stream, "contact_id", contact_ids)

    def list_held(self, stream: str | None = None) -> list[dict]:
        q = sa.select(
            held_children.c.stream,
            held_children.c.contact_id,
            held_children.c.reason,
            held_children.c.attempts,
            held_children.c.first_seen,
        )
        if stream:
            q = q.where(held_children.c.stream == stream)
        with self.begin() as conn:
            return [dict(r) for r in conn.execute(q.order_by(held_children.c.first_seen)).mappings()]

    # -- the load's e-mail resolver: its index on disk, one load (token) at a time ----------------
    def resolver_open(self, stream: str, stale_after: timedelta = timedelta(days=1)) -> str:
        """A new resolver index for one load; first drops those of loads started long ago (crashed)."""
        token = uuid.uuid4().hex
        with self.begin() as conn:
            stale = list(
                conn.execute(
                    sa.select(resolver_loads.c.token).where(resolver_loads.c.started_at < utcnow() - stale_after)
                ).scalars()
            )
            conn.execute(sa.insert(resolver_loads).values(token=token, stream=stream, started_at=utcnow()))
        if stale:
            log.info("dropping the e-mail index of %d loads that never finished", len(stale))
            for old in stale:
                self.resolver_close(old)
        return token

    def resolver_close(self, token: str) -> None:
        """Delete everything the load ``token`` kept."""
        with self.begin() as conn:
            for table in (resolver_customers, resolver_emails, resolver_loads):
                conn.execute(sa.delete(table).where(table.c.token == token))

    def resolver_want(self, token: str, emails: Iterable[str]) -> None:
        rows = [{"token": token, "email": e} for e in set(emails)]
        if rows:
            with self.begin() as conn:
                conn.execute(sa.insert(resolver_emails), rows)

    def resolver_count(self, token: str) -> int:
        """How many distinct e-mails the load ``token`` has (wanted before it decides, known after)."""
        with self.begin() as conn:
            return conn.execute(
                sa.select(sa.func.count(sa.distinct(resolver_emails.c.email))).where(resolver_emails.c.token == token)
            ).scalar_one()

    def resolver_unwant(self, token: str) -> None:
        """The wanted e-mails were only counted: nothing is known yet (each is looked up when asked)."""
        with self.begin() as conn:
            conn.execute(sa.delete(resolver_emails).where(resolver_emails.c.token == token))

    def resolver_index_page(self, token: str, found: dict[str, list[tuple[int, str]]]) -> int:
        """Keep the store customers of one scanned page whose e-mail is wanted; returns how many."""
        emails = list(found)
        rows = []
        with self.begin() as conn:
            for i in range(0, len(emails), 500):
                wanted = conn.execute(
                    sa.select(resolver_emails.c.email)
                    .where(resolver_emails.c.token == token, resolver_emails.c.email.in_(emails[i : i + 500]))
                    .distinct()
                ).scalars()
                rows += [
                    {"token": token, "email": e, "customer_id": cid, "source_id": src}
                    for e in wanted
                    for cid, src in found[e]
                ]
            if rows:
                conn.execute(sa.insert(resolver_customers), rows)
        return len(rows)

    def resolver_known(self, token: str, emails: Iterable[str]) -> dict[str, list[tuple[int, str]]]:
        """The store customers of each of ``emails`` that is known (an empty list: none)."""
        emails = list(set(emails))
        known: dict[str, list[tuple[int, str]]] = {}
        with self.begin() as conn:
            for i in range(0, len(emails), 500):
                part = emails[i : i + 500]
                for e in conn.execute(
                    sa.select(resolver_emails.c.email)
                    .where(resolver_emails.c.token == token, resolver_emails.c.email.in_(part))
                    .distinct()
                ).scalars():
                    known[e] = []
                rc = resolver_customers.c
                for e, cid, src in conn.execute(
                    sa.select(rc.email, rc.customer_id, rc.source_id)
                    .where(rc.token == token, rc.email.in_(part))
                    .order_by(rc.customer_id)
                ):
                    if e in known:
                        known[e].append((int(cid), src))
        return known

    def resolver_record(self, token: str, email: str, customers: list[tuple[int, str]]) -> None:
        """The store's answer for one e-mail (possibly no customer): known from now on."""
        with self.begin() as conn:
            conn.execute(sa.insert(resolver_emails).values(token=token, email=email))
            if customers:
                conn.execute(
                    sa.insert(resolver_customers),
                    [{"token": token, "email": email, "customer_id": cid, "source_id": src} for cid, src in customers],
                )

    def resolver_forget(self, token: str, emails: Iterable[str]) -> None:
        """These e-mails are no longer known (the store changed for them)."""
        emails = list(set(emails))
        with self.begin() as conn:
            for i in range(0, len(emails), 500):
                part = emails[i : i + 500]
                for table in (resolver_customers, resolver_emails):
                    conn.execute(sa.delete(table).where(table.c.token == token, table.c.email.in_(part)))

    # -- facts learned about the store ------------------------------------------------------------
    def get_fact(self, name: str) -> str | None:
        with self.begin() as conn:
            return conn.execute(sa.select(store_facts.c.value).where(store_facts.c.name == name)).scalar_one_or_none()

    def set_fact(self, name: str, value: str) -> None:
        with self.begin() as conn:
            self._upsert(conn, store_facts, {"name": name, "value": value, "updated_at": utcnow()}, ["name"])

    # -- reconciliation runs and their findings ------------------------------------------------
    FINDING_FIELDS = ("kind", "source_id", "target_id", "field", "ghl_value", "store_value", "action", "detail")

    def save_reconcile(
        self,
        run_id: str,
        *,
        started_at: datetime,
        dry_run: bool,
        status: str,
        summary: dict,
        findings: Iterable[dict],
        report_dir: str | None = None,
    ) -> int:
        """Store a run and its findings (a retried run replaces its earlier findings); returns how many."""
        rows = [
            {"run_id": run_id, "seq": i, **{k: _text(f.get(k)) for k in self.FINDING_FIELDS}}
            for i, f in enumerate(findings)
        ]
        with self.begin() as conn:
            conn.execute(sa.delete(reconcile_findings).where(reconcile_findings.c.run_id == run_id))
            for i in range(0, len(rows), 500):
                conn.execute(sa.insert(reconcile_findings), rows[i : i + 500])
            self._upsert(
                conn,
                reconcile_runs,
                {
                    "run_id": run_id,
                    "started_at": started_at,
                    "finished_at": utcnow(),
                    "dry_run": dry_run,
                    "status": status,
                    "summary": json.dumps(summary, default=str),
                    "report_dir": report_dir,
                },
                ["run_id"],
            )
        return len(rows)

    def recent_reconciles(self, limit: int = 10) -> list[dict]:
        """The latest reconciliation runs, newest first, with their summary decoded."""
        with self.begin() as conn:
            rows = conn.execute(
                sa.select(reconcile_runs).order_by(reconcile_runs.c.finished_at.desc()).limit(limit)
            ).mappings()
            return [{**dict(r), "summary": json.loads(r["summary"])} for r in rows]

    def reconcile_findings(self, run_id: str, kind: str | None = None, limit: int | None = None) -> list[dict]:
        """A run's findings in the order they were made, optionally of one kind."""
        q = sa.select(reconcile_findings).where(reconcile_findings.c.run_id == run_id)
        if kind:
            q = q.where(reconcile_findings.c.kind == kind)
        q = q.order_by(reconcile_findings.c.seq)
        if limit:
            q = q.limit(limit)
        with self.begin() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]


def _text(value) -> str | None:
    """Finding values as text (numbers, booleans and lists as JSON), ``None`` kept."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str)
