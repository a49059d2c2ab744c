"""Validate: run a batch through its Great Expectations suite; bad rows go to quarantine.

Suites are JSON files in ``include/expectations/<stream>.json``; each expectation's
``meta.reason`` is the quarantine reason a failing row gets. GX is imported inside the function:
it costs seconds and hundreds of MB, which DAG parsing must not pay.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pandas as pd

from ghl_shift4shop.batches import read_jsonl, stage_path, write_jsonl
from ghl_shift4shop.errors import PermanentError
from ghl_shift4shop.state import StateStore

log = logging.getLogger(__name__)


class QualityGateError(PermanentError):
    """Too large a share of the run failed validation."""


def load_suite_spec(expectations_dir: Path, stream: str) -> dict:
    return json.loads((Path(expectations_dir) / f"{stream}.json").read_text(encoding="utf-8"))


def suite_frame(spec: dict, records: list[dict]) -> pd.DataFrame:
    """The columns the suite checks, blanks as nulls (so "missing" covers empty strings too)."""
    return pd.DataFrame({c: [_blank_to_none(r.get(c)) for r in records] for c in _suite_columns(spec)}, dtype=object)


def _suite_columns(spec: dict) -> list[str]:
    cols = []
    for e in spec["expectations"]:
        col = e["kwargs"].get("column")
        if col and col not in cols:
            cols.append(col)
    return cols


def _blank_to_none(value):
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def run_suite(spec: dict, frame: pd.DataFrame) -> dict[int, list[str]]:
    """Validate ``frame``; returns row position → reasons for every failing row."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite = gx.ExpectationSuite(name=spec["name"])
    for e in spec["expectations"]:
        suite.add_expectation_configuration(
            ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"], meta=e.get("meta") or {})
        )
    suite = ctx.suites.add(suite)
    batch_def = (
        ctx.data_sources.add_pandas("batch")
        .add_dataframe_asset(spec["name"])
        .add_batch_definition_whole_dataframe("all")
    )
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=spec["name"], data=batch_def, suite=suite))
    result = vd.run(batch_parameters={"dataframe": frame}, result_format={"result_format": "COMPLETE"})
    failures: dict[int, list[str]] = {}
    for res in result.results:
        if res.success:
            continue
        cfg = res.expectation_config
        reason = (cfg.meta or {}).get("reason") or f"{cfg.type}({cfg.kwargs.get('column')})"
        indexes = (res.result or {}).get("unexpected_index_list")
        if indexes is None:
            # An expectation that failed without row detail fails every row: never drop silently.
            indexes = list(range(len(frame)))
        for idx in indexes:
            failures.setdefault(int(idx), []).append(reason)
    return failures


def quarantine_key(record: dict) -> str:
    """The contact id, or a digest of the record when it has none (so reruns converge)."""
    rid = record.get("id")
    if isinstance(rid, str) and rid.strip():
        return rid
    digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"no-id:{digest}"


def validate_batch(
    ref: dict, *, state: StateStore, data_dir: Path, expectations_dir: Path, run_id: str, stream: str = "contacts"
) -> dict:
    records = list(read_jsonl(ref["path"]))
    spec = load_suite_spec(expectations_dir, stream)
    frame = suite_frame(spec, records)
    failures = run_suite(spec, frame) if records else {}
    bad = [(quarantine_key(records[i]), "; ".join(reasons), records[i]) for i, reasons in sorted(failures.items())]
    good = [r for i, r in enumerate(records) if i not in failures]
    if bad:
        state.quarantine(stream, "validate", run_id, bad)
    state.resolve_quarantine(stream, [r["id"] for r in good])
    out = stage_path(data_dir, run_id, stream, "validated", ref["batch"])
    write_jsonl(out, good)
    result = {
        "batch": ref["batch"],
        "path": str(out),
        "rows": len(records),
        "valid": len(good),
        "quarantined": len(bad),
    }
    state.add_stats(run_id, f"validate:{stream}:{ref['batch']}", {"valid": len(good), "quarantined": len(bad)})
    log.info("batch %d: %d valid, %d quarantined", ref["batch"], len(good), len(bad))
    return result


def quality_gate(results: list[dict], max_bad_share: float) -> dict:
    rows = sum(r["rows"] for r in results)
    bad = sum(r["quarantined"] for r in results)
    share = bad / rows if rows else 0.0
    summary = {"rows": rows, "quarantined": bad, "bad_share": round(share, 4), "max_bad_share": max_bad_share}
    if share > max_bad_share:
        raise QualityGateError(
            f"{bad} of {rows} records ({share:.1%}) failed validation, above the {max_bad_share:.1%} threshold; "
            "see the quarantine table for reasons"
        )
    return summary
