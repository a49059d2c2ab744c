"""Batch files: how records travel between stages (on disk, never through XCom).

A run's files live under ``<data_dir>/runs/<run id>/<stream>/<stage>/<batch>.jsonl``. XCom only
carries the small :class:`BatchRef` dicts that point at them.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")

# JSON in and out: msgspec where it gives what the standard library gives, the standard library
# everywhere else (tests/unit/test_jsonl.py compares them). msgspec decodes every JSON text it accepts
# to the same objects as json.loads and refuses the rest (NaN, Infinity, numbers out of range, lone
# surrogates), which then go to json.loads. It encodes str, int, bool, None, lists and dicts with str
# keys to the same text as json.dumps(ensure_ascii=False, separators=(",", ":")); floats it writes in
# another form (1e16, not 1e+16; NaN as null), so anything holding a float goes to json.dumps.
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_encode_sorted = msgspec.json.Encoder(order="sorted").encode
_SCALARS = frozenset({str, int, bool, type(None)})


def _plain(value) -> bool:
    """Only str, int, bool, None, lists and dicts with str keys (exact types): msgspec writes it as json does."""
    cls = value.__class__
    if cls in _SCALARS:
        return True
    if cls is dict:
        return all(k.__class__ is str and (v.__class__ in _SCALARS or _plain(v)) for k, v in value.items())
    if cls is list:
        return all(v.__class__ in _SCALARS or _plain(v) for v in value)
    return False


def dumps(value, *, sort_keys: bool = False) -> bytes:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)`` in UTF-8."""
    if _plain(value):
        return _encode_sorted(value) if sort_keys else _encode(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys).encode("utf-8")


def loads(text: str | bytes):
    """``json.loads(text)``, the same objects, errors included."""
    try:
        return _decode(text)
    except msgspec.DecodeError:
        return json.loads(text)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for one batch, back on after (as it was).

    Decoding a batch allocates tens of containers per record, and every so many allocations the
    collector walks the objects it tracks: after GX and pandas are imported that is hundreds of
    thousands, so a batch paid for many such walks (decoding 5,000 contacts took 3-5x longer with it
    on). A batch's records hold no reference cycles; whatever cycles pandas or GX leave are collected
    as usual once the collector is back on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_dir(data_dir: Path, run_id: str) -> Path:
    return Path(data_dir) / "runs" / _UNSAFE.sub("_", run_id)


def stage_path(data_dir: Path, run_id: str, stream: str, stage: str, batch: int) -> Path:
    return run_dir(data_dir, run_id) / stream / stage / f"{batch:05d}.jsonl"


def write_jsonl(path: Path, rows: Iterable[dict | bytes]) -> int:
    """Write atomically (temp file + rename), so a killed task never leaves half a batch.

    A row is a dict (written as ``json.dumps(row, ensure_ascii=False, separators=(",", ":"))``) or
    that line already encoded (bytes, no newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    n = 0
    with tmp.open("wb") as fh:
        chunk: list[bytes] = []
        for row in rows:
            chunk.append(row if row.__class__ is bytes else dumps(row))
            if len(chunk) == 1000:
                fh.write(b"\n".join(chunk) + b"\n")
                n += len(chunk)
                chunk = []
        if chunk:
            fh.write(b"\n".join(chunk) + b"\n")
            n += len(chunk)
    os.replace(tmp, path)
    return n


def read_jsonl(path: Path | str) -> Iterator[dict]:
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield loads(line)


def read_jsonl_float_free(path: Path | str) -> Iterator[tuple[dict, bool]]:
    """:func:`read_jsonl`, each record with True when it holds no float (nor NaN or Infinity): then
    :func:`dumps_float_free` writes it, as json.dumps would, without walking it first.

    msgspec hands every float's text to the hook, which notes it and converts it with ``float()``,
    what json.loads does too; a text msgspec refuses goes to json.loads and counts as not float-free.
    """
    floats: list[str] = []
    decode = msgspec.json.Decoder(float_hook=lambda text: floats.append(text) or float(text)).decode
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                floats.clear()
                try:
                    record = decode(line)
                except msgspec.DecodeError:
                    yield json.loads(line), False
                    continue
                yield record, not floats


def dumps_float_free(value, *, sort_keys: bool = False) -> bytes:
    """:func:`dumps` of a value known to hold JSON's own types only, exactly (str, int, bool, None, lists,
    dicts with str keys; no float): one :func:`read_jsonl_float_free` called float-free, or one the
    caller checked. Skips :func:`dumps`'s walk over the value."""
    return _encode_sorted(value) if sort_keys else _encode(value)


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
