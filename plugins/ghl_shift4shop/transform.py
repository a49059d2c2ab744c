"""Transform: validated GHL contacts → Shift4Shop customer payloads, driven by the YAML mapping."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ghl_shift4shop.batches import read_jsonl, stage_path, write_jsonl
from ghl_shift4shop.mapping import Mapping, payload_hash

log = logging.getLogger(__name__)


def derive_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns the mapping can use besides the GHL fields (see the mapping file's header)."""
    frame = frame.copy()
    for col in ("name", "contactName", "email", "tags"):
        if col not in frame:
            frame[col] = None
    full_name = frame["name"].where(frame["name"].notna(), frame["contactName"]).fillna("").astype(str).str.strip()
    parts = full_name.str.split(n=1, expand=True).reindex(columns=[0, 1])
    frame["name_first"] = parts[0]
    frame["name_last"] = parts[1]
    frame["email_local"] = frame["email"].fillna("").astype(str).str.split("@", n=1).str[0]
    frame["tags_joined"] = frame["tags"].map(lambda t: ", ".join(map(str, t)) if isinstance(t, list) else None)
    return frame.astype(object).where(frame.notna(), None)


def transform_records(records: list[dict], mapping: Mapping) -> list[dict]:
    if not records:
        return []
    frame = derive_columns(pd.DataFrame.from_records(records))
    out = []
    for row in frame.to_dict("records"):
        payload = mapping.apply(row)
        match = payload.get(mapping.match_field)
        out.append(
            {
                "source_id": row["id"],
                "match_key": match.strip().lower() if isinstance(match, str) else None,
                "date_updated": row.get("dateUpdated"),
                "payload": payload,
                "hash": payload_hash(payload),
            }
        )
    return out


def transform_batch(ref: dict, *, mapping: Mapping, data_dir: Path, run_id: str) -> dict:
    rows = transform_records(list(read_jsonl(ref["path"])), mapping)
    out = stage_path(data_dir, run_id, mapping.stream, "transformed", ref["batch"])
    write_jsonl(out, rows)
    log.info("batch %d: %d %s transformed", ref["batch"], len(rows), mapping.target)
    return {"batch": ref["batch"], "path": str(out), "rows": len(rows)}
