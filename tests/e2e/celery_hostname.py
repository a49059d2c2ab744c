"""``[core] hostname_callable`` for the scale-out test's Celery workers.

Both workers run on this one machine, so the default (the machine's FQDN) would give every task
instance the same ``hostname``. Each worker process gets ``GHL_S4S_TEST_WORKER_HOST`` (in
docker-compose.yaml every worker is its own container, with its own host name, and this is not used).
"""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    return os.environ.get("GHL_S4S_TEST_WORKER_HOST") or socket.getfqdn()
