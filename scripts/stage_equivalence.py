"""Digest of what validate + transform write, to compare two versions of the code (issue 9, throughput).

    .venv/bin/python scripts/stage_equivalence.py --out /tmp/new.json
    git archive <old commit> plugins include | tar -x -C /tmp/old
    .venv/bin/python scripts/stage_equivalence.py --code /tmp/old --out /tmp/old.json
    cmp /tmp/old.json /tmp/new.json

The input is the bench's (``scripts/bench.py`` throughput phase): generated contacts, seed 3, 2% dirty,
batches of 5,000, at a fixed ``now`` so both runs see the same data. Two passes over the same state
database (as the bench's warm-up and timed pass), the second one re-quarantining and resolving. The digest
lists the sha256 of every file the stages wrote (validated and transformed batches) and the rows of every
state table, timestamps left out (they are the wall clock).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--code", default=str(ROOT), help="tree whose plugins/ and include/ run (default: this one)")
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--out", required=True, help="write the digest (JSON) here")
    args = ap.parse_args()
    code = Path(args.code).resolve()
    sys.path[:0] = [str(code / "plugins"), str(ROOT)]  # the generator (sandbox/) always from this tree

    import logging

    import sqlalchemy as sa
    from ghl_shift4shop import validate as validate_stage
    from ghl_shift4shop.batches import write_jsonl
    from ghl_shift4shop.crm_config import load_crm_config
    from ghl_shift4shop.ghl.hook import normalize_search_item
    from ghl_shift4shop.mapping import load_mapping
    from ghl_shift4shop.state import StateStore
    from ghl_shift4shop.transform import transform_batch

    from sandbox.__main__ import LOCATION_ID
    from sandbox.seed import generate_contacts

    logging.disable(logging.WARNING)
    assert Path(validate_stage.__file__).is_relative_to(code), validate_stage.__file__
    include = code / "include"
    mapping = load_mapping(include / "mappings" / "contacts_to_customers.yaml")
    crm = load_crm_config(include / "mappings")
    now = datetime(2026, 11, 29, tzinfo=UTC)
    contacts = generate_contacts(args.rows, seed=3, dirty_share=0.02, location_id=LOCATION_ID, now=now)
    digest: dict = {"files": {}, "tables": {}}
    with tempfile.TemporaryDirectory(prefix="stage-equiv-") as tmp:
        work = Path(tmp)
        data = work / "data"
        state = StateStore(f"sqlite:///{work / 'state.db'}")
        refs = []
        for b, start in enumerate(range(0, args.rows, args.batch), start=1):
            path = work / "extract" / f"{b:05d}.jsonl"
            chunk = contacts[start : start + args.batch]
            write_jsonl(path, [normalize_search_item(c) for c in chunk])
            refs.append({"batch": b, "path": str(path), "rows": len(chunk)})
        for run_id in ("first", "second"):
            for ref in refs:
                v = validate_stage.validate_batch(
                    ref, state=state, data_dir=data, expectations_dir=include / "expectations", run_id=run_id,
                    data_docs=False,
                )  # fmt: skip
                ref_v = {**v, "children": {}}
                transform_batch(ref_v, mapping=mapping, data_dir=data, run_id=run_id, crm=crm, state=state)
        for f in sorted(data.rglob("*")):
            if f.is_file():
                digest["files"][f.relative_to(data).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
        meta = sa.MetaData()
        meta.reflect(bind=state.engine)
        with state.engine.connect() as conn:
            for name, table in sorted(meta.tables.items()):
                cols = [
                    c for c in table.columns if not isinstance(c.type, (sa.DateTime, sa.TIMESTAMP)) and c.name != "at"
                ]
                stamped = [c for c in table.columns if c not in cols]  # kept as "is it set" only
                rows = conn.execute(sa.select(*cols, *[c.is_(None).label(f"{c.name}_null") for c in stamped])).all()
                lines = sorted(json.dumps(list(r), default=str) for r in rows)
                digest["tables"][name] = {
                    "rows": len(lines),
                    "sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
                }
    Path(args.out).write_text(json.dumps(digest, indent=1, sort_keys=True) + "\n")
    print(f"{len(digest['files'])} files, {sum(t['rows'] for t in digest['tables'].values())} state rows -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
