"""Monitor: the read-only view of the sync that the "GHL → Shift4Shop" page and its JSON API show.

Everything here reads the state database through :class:`StateStore` (watermarks, run summaries,
quarantine, dead letters, held children, reconciliations) or lists a run's GX Data Docs on disk; it
never writes. E-mails in reasons and record previews are masked (``transport.mask_email``): the page
is behind Airflow's authentication, but an address on a dashboard is still one too many.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ghl_shift4shop.batches import run_dir
from ghl_shift4shop.state import StateStore
from ghl_shift4shop.timeutil import parse_ts
from ghl_shift4shop.transport import mask_email

# The run counts the page tabulates and charts, in this order (the summary has more; the JSON has all).
RUN_COUNTS = ("extracted", "valid", "quarantined", "created", "updated", "unchanged", "dead_lettered")
PREVIEW_CHARS = 240


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:  # SQLite hands back naive datetimes; they were written in UTC
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def _matches(q: str | None, *texts) -> bool:
    """Case-insensitive substring filter over the shown (masked) texts; no ``q`` matches all."""
    if not q:
        return True
    needle = q.strip().lower()
    return any(needle in str(t).lower() for t in texts if t is not None)


def _preview(text: str | None) -> str | None:
    if text is None:
        return None
    masked = mask_email(text)
    return masked if len(masked) <= PREVIEW_CHARS else masked[: PREVIEW_CHARS - 1] + "…"


def human_lag(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def watermarks(state: StateStore, now: datetime | None = None) -> list[dict]:
    """Each stream's watermark, when it was set and by which run, and its lag (now − watermark)."""
    now = now or datetime.now(UTC)
    out = []
    for row in state.list_watermarks():
        lag = (now - parse_ts(row["value"])).total_seconds()
        out.append(
            {
                "stream": row["stream"],
                "watermark": row["value"],
                "run_id": row["run_id"],
                "updated_at": _iso(row["updated_at"]),
                "lag_seconds": round(lag, 3),
                "lag": human_lag(lag),
            }
        )
    return out


def runs(state: StateStore, data_dir: Path, limit: int = 30) -> list[dict]:
    """The latest runs' summaries, newest first, each with how many Data Docs sites it left."""
    out = []
    for summary in state.recent_summaries(limit):
        run_id = summary["run_id"]
        out.append(
            {
                **{k: v for k, v in summary.items() if k not in ("run_id", "finished_at")},
                "run_id": run_id,
                "finished_at": _iso(summary["finished_at"]),
                "counts": {k: int(summary.get(k) or 0) for k in RUN_COUNTS},
                "data_docs": len(data_docs(data_dir, run_id)),
            }
        )
    return out


def quarantine(state: StateStore, stream: str | None = None, q: str | None = None, limit: int = 500) -> dict:
    """Open quarantine entries (unresolved), optionally of one stream and matching ``q``."""
    items = []
    for row in state.open_quarantine(stream or None):
        reason = mask_email(row["reason"])
        record = _preview(row["record"])
        # Not masked: ids are GHL ids (child keys read "<item id>@<contact id>", not addresses), or a
        # digest for a record without one.
        source_id = row["source_id"]
        if not _matches(q, source_id, row["stage"], reason, record):
            continue
        items.append(
            {
                "stream": row["stream"],
                "source_id": source_id,
                "stage": row["stage"],
                "reason": reason,
                "record": record,
                "run_id": row["run_id"],
                "first_seen": _iso(row["first_seen"]),
                "last_seen": _iso(row["last_seen"]),
            }
        )
    return {"total": len(items), "items": items[:limit]}


def dead_letters(state: StateStore, stream: str | None = None, q: str | None = None, limit: int = 500) -> dict:
    """Items the store refused with a retryable status, waiting to be loaded again."""
    items = []
    for row in state.list_dead_letters(stream or None):
        message = _preview(row["message"])
        if not _matches(q, row["source_id"], row["status"], message):
            continue
        items.append(
            {
                "stream": row["stream"],
                "source_id": row["source_id"],
                "status": row["status"],
                "reason": message,
                "attempts": row["attempts"],
                "first_seen": _iso(row["first_seen"]),
                "last_seen": _iso(row["last_seen"]),
            }
        )
    return {"total": len(items), "items": items[:limit]}


def held(state: StateStore, stream: str | None = None, q: str | None = None, limit: int = 500) -> dict:
    """Tasks/notes/appointments held for the next run because their customer does not exist yet."""
    items = []
    for row in state.list_held(stream or None):
        reason = mask_email(row["reason"])
        if not _matches(q, row["contact_id"], reason):
            continue
        items.append({**row, "reason": reason, "first_seen": _iso(row["first_seen"])})
    return {"total": len(items), "items": items[:limit]}


def latest_reconcile(state: StateStore, kind: str | None = None, limit: int = 500) -> dict | None:
    """The newest reconciliation run with its findings (values masked), or ``None`` before the first."""
    recent = state.recent_reconciles(1)
    if not recent:
        return None
    run = recent[0]
    findings = [
        {
            **f,
            "ghl_value": _preview(f["ghl_value"]),
            "store_value": _preview(f["store_value"]),
            "detail": _preview(f["detail"]),
        }
        for f in state.reconcile_findings(run["run_id"], kind=kind or None, limit=limit)
    ]
    return {
        "run_id": run["run_id"],
        "started_at": _iso(run["started_at"]),
        "finished_at": _iso(run["finished_at"]),
        "dry_run": bool(run["dry_run"]),
        "status": run["status"],
        "summary": run["summary"],
        "report_dir": run["report_dir"],
        "findings": findings,
    }


def data_docs_root(data_dir: Path, run_id: str) -> Path:
    return run_dir(data_dir, run_id) / "data_docs"


def data_docs(data_dir: Path, run_id: str) -> list[dict]:
    """The run's Data Docs sites (one per validated stream and batch), as paths under its docs folder."""
    root = data_docs_root(data_dir, run_id)
    if not root.is_dir():
        return []
    sites = []
    for index in sorted(root.glob("*/*/index.html")):
        stream, batch = index.parent.parent.name, index.parent.name
        if ".tmp-" in batch:  # a site still being built (or left by a killed task)
            continue
        site = f"{stream}/{batch}"
        sites.append(
            {
                "stream": stream,
                "batch": int(batch),
                "index": f"{site}/index.html",
                "validations": [f"{site}/{page}" for page in _read_json(index.parent / "validations.json", [])],
                **_read_json(index.parent / "summary.json", {}),
            }
        )
    return sites


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


CHART_COUNTS = ("extracted", "created", "updated", "quarantined")


def runs_chart_svg(run_rows: list[dict], counts: tuple[str, ...] = CHART_COUNTS) -> str:
    """A line chart of the runs' counts over time (oldest left), rendered to SVG on the server."""
    import pygal  # imported here: only the page needs it
    from pygal.style import LightStyle

    ordered = list(reversed(run_rows))
    chart = pygal.Line(
        style=LightStyle,
        height=260,
        width=900,
        x_label_rotation=20,
        show_minor_x_labels=False,
        disable_xml_declaration=True,
        js=[],  # no script from a CDN: the SVG stands alone (tooltips off, the table has the numbers)
        title="Counts per run",
    )
    chart.x_labels = [(r["finished_at"] or "")[:16].replace("T", " ") for r in ordered]
    chart.x_labels_major_every = max(1, len(ordered) // 8)
    for name in counts:
        chart.add(name, [r["counts"].get(name, 0) for r in ordered])
    return chart.render(is_unicode=True)


def overview(state: StateStore, data_dir: Path, now: datetime | None = None) -> dict:
    """Everything the page's top shows, in one call."""
    return {
        "generated_at": _iso(now or datetime.now(UTC)),
        "watermarks": watermarks(state, now),
        "runs": runs(state, data_dir, limit=10),
        "open_quarantine": quarantine(state, limit=0)["total"],
        "dead_letters": dead_letters(state, limit=0)["total"],
        "held": held(state, limit=0)["total"],
        "reconcile": _reconcile_head(state),
    }


def _reconcile_head(state: StateStore) -> dict | None:
    recent = state.recent_reconciles(1)
    if not recent:
        return None
    run = recent[0]
    return {
        "run_id": run["run_id"],
        "finished_at": _iso(run["finished_at"]),
        "status": run["status"],
        "dry_run": bool(run["dry_run"]),
        "summary": run["summary"],
    }
