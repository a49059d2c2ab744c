"""Validate: run a batch through its Great Expectations suite; bad rows go to quarantine.

Suites are JSON files in ``include/expectations/<stream>.json``; each expectation's
``meta.reason`` is the quarantine reason a failing row gets. GX is imported inside the function:
it costs seconds and hundreds of MB, which DAG parsing must not pay.

Every validation also leaves GX Data Docs (HTML) with its run, one small site per stream and batch
under ``<data_dir>/runs/<run id>/data_docs/<stream>/<batch>/`` (see :func:`data_docs_dir`): mapped
validate tasks run in parallel processes, so each writes its own site and none shares an index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

import pandas as pd

from ghl_shift4shop.batches import (
    dumps_float_free,
    gc_paused,
    read_jsonl_float_free,
    run_dir,
    stage_path,
    write_jsonl,
)
from ghl_shift4shop.errors import PermanentError
from ghl_shift4shop.state import StateStore
from ghl_shift4shop.transport import mask_email

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


def data_docs_dir(data_dir: Path, run_id: str, stream: str, batch: int) -> Path:
    """Where the Data Docs site of one validated batch lives (kept and pruned with its run)."""
    return run_dir(data_dir, run_id) / "data_docs" / stream / f"{int(batch):05d}"


def run_suite(spec: dict, frame: pd.DataFrame, docs_dir: Path | None = None) -> dict[int, list[str]]:
    """Validate ``frame``; returns row position → reasons for every failing row.

    With ``docs_dir``, the validation's GX Data Docs are written there too (see :func:`build_data_docs`):
    a fresh GX context per call, whose results store then holds this validation only. Without, the
    context, suite and batch definition are built once per process and suite (they cost ~40 ms of CPU
    a batch) and GX's Validator runs the suite on the frame; its result is not kept in the context's
    results store (nothing reads it there, and storing serialises every failing row index).
    """
    if docs_dir is not None:
        return _run_fresh(spec, frame, docs_dir)
    from great_expectations.validator.v1_validator import Validator

    key = json.dumps(spec, sort_keys=True)
    cached = _CACHED.pop(key, None)
    if cached is None:
        cached = _gx_objects(spec)  # the context kept alive with its suite and batch definition
    _CACHED[key] = cached  # most recently used last
    while len(_CACHED) > _CACHE_SIZE:  # a long-lived worker whose expectations keep changing
        _CACHED.pop(next(iter(_CACHED)))
    _, suite, batch_def = cached
    validator = Validator(
        batch_definition=batch_def, batch_parameters={"dataframe": frame}, result_format={"result_format": "COMPLETE"}
    )
    return _failures(validator.validate_expectation_suite(suite), len(frame))


# Per process: suite spec (as JSON) → (ephemeral GX context, suite, batch definition).
_CACHED: dict[str, tuple] = {}
_CACHE_SIZE = 8  # suites: contacts, tasks, notes, appointments, and room for a changed file or two


def _gx_objects(spec: dict):
    """A new ephemeral GX context with the suite and a whole-dataframe batch definition added."""
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
    return ctx, suite, batch_def


def _run_fresh(spec: dict, frame: pd.DataFrame, docs_dir: Path | None) -> dict[int, list[str]]:
    """The validation in a context of its own, run as a ValidationDefinition (stored, so Data Docs show it)."""
    import great_expectations as gx

    ctx, suite, batch_def = _gx_objects(spec)
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=spec["name"], data=batch_def, suite=suite))
    result = vd.run(batch_parameters={"dataframe": frame}, result_format={"result_format": "COMPLETE"})
    failures = _failures(result, len(frame))
    if docs_dir is not None:
        build_data_docs(ctx, Path(docs_dir), _docs_summary(result, len(frame)))
    return failures


def _failures(result, rows: int) -> dict[int, list[str]]:
    failures: dict[int, list[str]] = {}
    for res in result.results:
        if res.success:
            continue
        cfg = res.expectation_config
        reason = (cfg.meta or {}).get("reason") or f"{cfg.type}({cfg.kwargs.get('column')})"
        indexes = (res.result or {}).get("unexpected_index_list")
        if indexes is None:
            # An expectation that failed without row detail fails every row: never drop silently.
            indexes = list(range(rows))
        for idx in indexes:
            failures.setdefault(int(idx), []).append(reason)
    return failures


def _docs_summary(result, rows: int) -> dict:
    """What the monitoring page shows next to a Data Docs link, without parsing GX's HTML."""
    stats = result.statistics or {}
    return {
        "success": bool(result.success),
        "rows": rows,
        "evaluated": int(stats.get("evaluated_expectations") or 0),
        "unsuccessful": int(stats.get("unsuccessful_expectations") or 0),
        "failed": [
            {"expectation": r.expectation_config.type, "column": r.expectation_config.kwargs.get("column")}
            for r in result.results
            if not r.success
        ],
    }


# Text between two tags (and tag-free runs inside <script> data): where GX renders the values.
_HTML_TEXT = re.compile(r">([^<]+)<")


def build_data_docs(ctx, target: Path, summary: dict | None = None) -> Path | None:
    """Render the context's validation result as a GX Data Docs site at ``target``; returns its index.

    Built in a temporary folder and swapped in whole, so a retried task replaces its earlier site and a
    reader never sees half of one. GX copies its ~4 MB of static assets (CSS, fonts) into every site;
    they are identical to the ones in the GX package, so they are dropped here and the monitoring page
    serves them from the package (ghl_shift4shop.ui). E-mails in the rendered values (the failing
    addresses GX lists) are masked, as in logs. A failure here is logged and never fails validation:
    the docs are a view of the result, the quarantine table is the record. ``summary`` is kept beside
    the site as ``summary.json``, and ``validations.json`` lists the site's validation result pages
    (the pages GX renders in HTML; its index lists them only through scripts from CDNs).
    """
    started = time.monotonic()
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        ctx.add_data_docs_site(
            "run",
            {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(tmp)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        ctx.build_data_docs(site_names=["run"])
        shutil.rmtree(tmp / "static", ignore_errors=True)
        for page in tmp.rglob("*.html"):
            html = page.read_text(encoding="utf-8")
            page.write_text(_HTML_TEXT.sub(lambda m: ">" + mask_email(m.group(1)) + "<", html), encoding="utf-8")
        pages = sorted(p.relative_to(tmp).as_posix() for p in (tmp / "validations").rglob("*.html"))
        (tmp / "validations.json").write_text(json.dumps(pages), encoding="utf-8")
        (tmp / "summary.json").write_text(json.dumps(summary or {}), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
    except Exception:  # noqa: BLE001 - the docs must never cost the batch its validation
        log.warning("could not build the Data Docs at %s", target, exc_info=True)
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    log.info("Data Docs built at %s in %.2f s", target, time.monotonic() - started)
    return target / "index.html"


def quarantine_key(record: dict) -> str:
    """The contact id, or a digest of the record when it has none (so reruns converge)."""
    rid = record.get("id")
    if isinstance(rid, str) and rid.strip():
        return rid
    digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"no-id:{digest}"


def validate_batch(
    ref: dict,
    *,
    state: StateStore,
    data_dir: Path,
    expectations_dir: Path,
    run_id: str,
    stream: str = "contacts",
    data_docs: bool = True,
) -> dict:
    with gc_paused():
        return _validate_batch(ref, state, data_dir, expectations_dir, run_id, stream, data_docs)


def _validate_batch(
    ref: dict, state: StateStore, data_dir: Path, expectations_dir: Path, run_id: str, stream: str, data_docs: bool
) -> dict:
    records, float_free = [], []
    for record, free in read_jsonl_float_free(ref["path"]):
        records.append(record)
        float_free.append(free)
    spec = load_suite_spec(expectations_dir, stream)
    frame = suite_frame(spec, records)
    docs = data_docs_dir(data_dir, run_id, stream, ref["batch"]) if data_docs else None
    failures = run_suite(spec, frame, docs_dir=docs) if records else {}
    bad = [(quarantine_key(records[i]), "; ".join(reasons), records[i]) for i, reasons in sorted(failures.items())]
    kept = [i for i in range(len(records)) if i not in failures]
    good = [records[i] for i in kept]
    lines = (dumps_float_free(records[i]) if float_free[i] else records[i] for i in kept)
    if bad:
        state.quarantine(stream, "validate", run_id, bad)
    state.resolve_quarantine(stream, [r["id"] for r in good])
    out = stage_path(data_dir, run_id, stream, "validated", ref["batch"])
    write_jsonl(out, lines)
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
