"""Batch files: how records travel between stages (on disk, never through XCom).

A run's files live under ``<data_dir>/runs/<run id>/<stream>/<stage>/<batch>.jsonl``. XCom only
carries the small :class:`BatchRef` dicts that point at them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def run_dir(data_dir: Path, run_id: str) -> Path:
    return Path(data_dir) / "runs" / _UNSAFE.sub("_", run_id)


def stage_path(data_dir: Path, run_id: str, stream: str, stage: str, batch: int) -> Path:
    return run_dir(data_dir, run_id) / stream / stage / f"{batch:05d}.jsonl"


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    """Write atomically (temp file + rename), so a killed task never leaves half a batch."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
            fh.write("\n")
            n += 1
    os.replace(tmp, path)
    return n


def read_jsonl(path: Path | str) -> Iterator[dict]:
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def prune_runs(data_dir: Path, keep_days: float) -> int:
    """Delete run folders older than ``keep_days``; returns how many were removed."""
    root = Path(data_dir) / "runs"
    if not root.exists():
        return 0
    cutoff = time.time() - keep_days * 86400
    removed = 0
    for child in root.iterdir():
        if child.is_dir() and child.stat().st_mtime < cutoff:
            shutil.rmtree(child, ignore_errors=True)
            removed += 1
    return removed
