"""Transform: validated GHL contacts → Shift4Shop customer payloads, driven by the YAML mapping."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from pandas.core.dtypes.cast import maybe_box_native

from ghl_shift4shop.batches import gc_paused, read_jsonl, stage_path, write_jsonl
from ghl_shift4shop.crm_config import CHILD_STREAMS, CrmConfig
from ghl_shift4shop.mapping import Mapping, payload_hash
from ghl_shift4shop.state import StateStore

log = logging.getLogger(__name__)


_DERIVE_READS = frozenset({"name", "contactName", "email", "phone", "tags"})  # what derive_columns reads


def derive_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns the mapping can use besides the GHL fields (see the mapping file's header)."""
    frame = frame.copy()
    for col in ("name", "contactName", "email", "phone", "tags"):
        if col not in frame:
            frame[col] = None
    # GHL fills contactName with the e-mail (or the phone) of a contact that has no name: that is
    # not a name, and the mapping's later fallbacks (the e-mail's local part) must get their turn.
    contact_name = frame["contactName"].fillna("").astype(str).str.strip()
    not_a_name = (
        contact_name.str.contains("@", regex=False)
        | (contact_name == frame["email"].fillna("").astype(str).str.strip())
        | (contact_name == frame["phone"].fillna("").astype(str).str.strip())
    )
    contact_name = contact_name.where(~not_a_name, "")
    full_name = frame["name"].where(frame["name"].notna(), contact_name).fillna("").astype(str).str.strip()
    parts = full_name.str.split(n=1, expand=True).reindex(columns=[0, 1])
    frame["name_first"] = parts[0]
    frame["name_last"] = parts[1]
    frame["email_local"] = frame["email"].fillna("").astype(str).str.split("@", n=1).str[0]
    frame["tags_joined"] = frame["tags"].map(lambda t: ", ".join(map(str, t)) if isinstance(t, list) else None)
    return frame.astype(object).where(frame.notna(), None)


def crm_enrichment(
    records: list[dict], crm: CrmConfig, children: dict[str, dict[str, list[dict]]], state: StateStore | None
) -> dict[str, dict]:
    """Per contact id: the ``Comments`` summary and the tag group, from this run's child data.

    A stream not fetched for a contact this run (older than the stream's watermark, switched
    off, or failed) contributes the part stored when it last was, so a failing stream never
    blanks the summary.
    """
    from ghl_shift4shop.crm_summary import PART_BUILDERS, compose

    now = datetime.now(UTC)
    ids = [r["id"] for r in records]
    stored = state.get_parts(ids) if (state is not None and crm.comments_enabled) else {}
    fresh: list[tuple[str, str, tuple[str, str]]] = []
    out: dict[str, dict] = {}
    for record in records:
        cid = record["id"]
        extra: dict = {}
        if crm.comments_enabled:
            parts = []
            for stream in CHILD_STREAMS:
                if stream in children and cid in children[stream]:
                    part = PART_BUILDERS[stream](children[stream][cid], now)
                    fresh.append((cid, stream, part))
                else:
                    part = stored.get(cid, {}).get(stream, ("", ""))
                parts.append(part)
            extra["Comments"] = compose(parts)
        if crm.tags_enabled:
            extra["group"] = crm.tag_rules.group_for(record.get("tags"))
        out[cid] = extra
    if fresh and state is not None:
        state.save_parts(fresh)
    return out


def transform_records(
    records: list[dict],
    mapping: Mapping,
    *,
    crm: CrmConfig | None = None,
    children: dict[str, dict[str, list[dict]]] | None = None,
    state: StateStore | None = None,
) -> list[dict]:
    if not records:
        return []
    enrich = crm_enrichment(records, crm, children or {}, state) if crm else {}
    # Only the columns the mapping and derive_columns read (pandas infers each column's type on its
    # own, so the others change nothing); a column no record has comes out all null, as a missing
    # one reads. Column-wise: the mapping reads whole columns (Mapping.apply_columns), the values
    # the rows of frame.to_dict("records") would hold (numpy scalars boxed as to_dict does).
    wanted = {s for rule in mapping.rules for s in rule.sources} | {"id", "dateUpdated", "country"}
    frame = derive_columns(pd.DataFrame.from_records(records, columns=sorted(wanted | _DERIVE_READS)))
    columns = {c: _column(frame[c]) for c in frame.columns if c in wanted}
    rows = len(frame)
    payloads = mapping.apply_columns(columns, rows)
    dates = columns.get("dateUpdated") or [None] * rows
    out = []
    for cid, date_updated, payload in zip(columns["id"], dates, payloads, strict=True):
        extra = enrich.get(cid, {})
        if "Comments" in extra:
            payload["Comments"] = extra["Comments"]
        group = extra.get("group")
        match = payload.get(mapping.match_field)
        out.append(
            {
                "source_id": cid,
                "match_key": match.strip().lower() if isinstance(match, str) else None,
                "date_updated": date_updated,
                "payload": payload,
                # Group name, resolved to a CustomerGroupID at load; None leaves the group alone.
                "group": group,
                "hash": payload_hash({**payload, "_group": group}),
            }
        )
    return out


def _column(series: pd.Series) -> list:
    """One object column as to_dict("records") gives its values (numpy scalars as Python ones)."""
    return [v if v is None or v.__class__ is str else maybe_box_native(v) for v in series.tolist()]


def read_children(ref: dict) -> dict[str, dict[str, list[dict]]]:
    """The child items fetched for this batch, per stream and contact (failed streams absent)."""
    children: dict[str, dict[str, list[dict]]] = {}
    for stream, info in (ref.get("children") or {}).items():
        if info.get("ok") and info.get("path"):
            children[stream] = {row["contact_id"]: row["items"] for row in read_jsonl(info["path"])}
    return children


def transform_batch(
    ref: dict,
    *,
    mapping: Mapping,
    data_dir: Path,
    run_id: str,
    crm: CrmConfig | None = None,
    state: StateStore | None = None,
) -> dict:
    with gc_paused():
        records = list(read_jsonl(ref["path"]))
        rows = transform_records(records, mapping, crm=crm, children=read_children(ref), state=state)
        out = stage_path(data_dir, run_id, mapping.stream, "transformed", ref["batch"])
        write_jsonl(out, rows)
    log.info("batch %d: %d %s transformed", ref["batch"], len(rows), mapping.target)
    return {"batch": ref["batch"], "path": str(out), "rows": len(rows)}
