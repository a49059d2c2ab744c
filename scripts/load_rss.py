"""Peak RSS of the load stage over N contacts (issue 9): prints the figures, changes nothing.

The Shift4Shop simulator runs in its own process (its memory is not the loader's); this process
writes the batch files one batch at a time, then runs ``load_customers`` and reports its peak RSS.
A share of the contacts already exists in the store (same e-mail), so the e-mail scan has work.

    .venv/bin/python scripts/load_rss.py --rows 100000 [--existing-share 0.3] [--batch 5000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

SECURE_URL = "https://rss-store.3dcartstores.com"
PRIVATE_KEY, TOKEN = "pk-rss", "tk-rss"


def _email(i: int) -> str:
    return f"person{i}@example.com"


def _serve(port: int, existing: list[int], ready) -> None:
    from sandbox.common import ServerThread
    from sandbox.shift4shop import Shift4ShopState, create_app

    state = Shift4ShopState(stores={SECURE_URL: {"private_key": PRIVATE_KEY, "token": TOKEN}})
    state.configure(rate_limit=False, latency_s=0.0)
    for i in range(0, len(existing), 10_000):
        state.load_customers(SECURE_URL, [{"Email": _email(n), "Password": "x"} for n in existing[i : i + 10_000]])
    ServerThread(create_app(state), port=port).start()
    ready.set()
    while True:
        time.sleep(3600)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--existing-share", type=float, default=0.3)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--state-url", default=None)
    args = ap.parse_args()

    from sandbox.common import free_port

    port = free_port()
    step = max(1, round(1 / args.existing_share)) if args.existing_share else 0
    existing = list(range(0, args.rows, step)) if step else []
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    server = ctx.Process(target=_serve, args=(port, existing, ready), daemon=True)
    server.start()
    ready.wait(600)
    del existing

    work = Path(tempfile.mkdtemp(prefix="load-rss-"))
    os.environ["AIRFLOW_CONN_SHIFT4SHOP_DEFAULT"] = json.dumps(
        {
            "conn_type": "http",
            "host": f"http://127.0.0.1:{port}",
            "extra": {"secure_url": SECURE_URL, "private_key": PRIVATE_KEY, "token": TOKEN},
        }
    )
    for name in ("SHIFT4SHOP_BURST", "SHIFT4SHOP_RATE_PER_S"):
        os.environ[f"GHL_S4S_{name}"] = "100000"

    from ghl_shift4shop.batches import write_jsonl
    from ghl_shift4shop.load import load_customers
    from ghl_shift4shop.mapping import load_mapping
    from ghl_shift4shop.shift4shop.hook import Shift4ShopHook
    from ghl_shift4shop.state import StateStore
    from ghl_shift4shop.transform import transform_records

    mapping = load_mapping(ROOT / "include" / "mappings" / "contacts_to_customers.yaml")
    refs = []
    for b, start in enumerate(range(0, args.rows, args.batch), start=1):
        stop = min(start + args.batch, args.rows)
        records = [
            {"id": f"ghl{i:017d}", "firstName": f"F{i}", "lastName": f"L{i}", "email": _email(i), "city": "Lyon",
             "dateUpdated": "2026-11-01T10:00:00.000Z"}
            for i in range(start, stop)
        ]  # fmt: skip
        path = work / f"t{b}.jsonl"
        write_jsonl(path, transform_records(records, mapping))
        refs.append({"batch": b, "path": str(path), "rows": stop - start})
    state = StateStore(args.state_url or f"sqlite:///{work / 'state.db'}")
    before = _peak_mb()
    started = time.monotonic()
    try:
        out = load_customers(refs, hook=Shift4ShopHook(), state=state, mapping=mapping, run_id="rss")
    finally:
        server.terminate()
    took = time.monotonic() - started
    print(
        f"rows={args.rows} batch={args.batch} existing={len(range(0, args.rows, step)) if step else 0} "
        f"peak_rss_before_load_mb={before:.1f} peak_rss_mb={_peak_mb():.1f} seconds={took:.0f} "
        f"created={out['created']} adopted={out['adopted']} calls={out['calls_shift4shop']}"
    )


if __name__ == "__main__":
    main()
