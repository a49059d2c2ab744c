"""Write the Airflow pools every tenant's DAGs use, as a file for ``airflow pools import``.

    python scripts/airflow_pools.py pools.json && airflow pools import pools.json

One entry per tenant of the tenants file (``GHL_S4S_TENANTS_FILE``, default include/tenants.yaml):
its GHL pool (2 slots: two mapped fetch tasks side by side) and its store pool (1 slot: one writer
per store). docker-compose.yaml's ``airflow-init`` runs this, and so does the scale-out test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GHL_SLOTS = 2
STORE_SLOTS = 1


def pools() -> dict[str, dict]:
    sys.path.insert(0, str(ROOT / "plugins"))
    from ghl_shift4shop.tenants import load_tenants

    out: dict[str, dict] = {}
    for t in load_tenants():
        out[t.ghl_pool] = {"slots": GHL_SLOTS, "description": f"HighLevel API ({t.name})", "include_deferred": False}
        out[t.shift4shop_pool] = {
            "slots": STORE_SLOTS,
            "description": f"Shift4Shop API ({t.name})",
            "include_deferred": False,
        }
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    Path(argv[0]).write_text(json.dumps(pools(), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
