"""What both simulators share: the request log, latency, and running a FastAPI app on a port.

Each simulator is a FastAPI app built by its own ``create_app(state)``; the state object is plain
Python guarded by one lock, so tests and the admin endpoints (``/_sim/...``) can read and change it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request

# Where the fault layer (``sandbox/faults.py``, inside the log) names the fault it applied.
FAULT_SCOPE_KEY = "sandbox.fault"


@dataclass
class RequestLog:
    """Every request a simulator answered: what tests count calls from."""

    maxlen: int = 200_000
    entries: deque = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Requests being answered now (a fault may hold one for seconds, after or before its write).
    in_flight: int = 0
    idle: threading.Condition = field(default_factory=threading.Condition)

    def add(self, **entry: Any) -> None:
        with self.lock:
            self.entries.append(entry)
            while len(self.entries) > self.maxlen:
                self.entries.popleft()

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.entries)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()

    def started(self) -> None:
        with self.idle:
            self.in_flight += 1

    def finished(self) -> None:
        with self.idle:
            self.in_flight -= 1
            self.idle.notify_all()

    def wait_idle(self, timeout: float = 15.0) -> bool:
        """Wait until no request is being answered (a held one writes, and is logged, when it ends).

        Tests that share one simulator call this before resetting it: otherwise a request an
        earlier test left held by a fault lands in the next test's store and request log.
        """
        with self.idle:
            return self.idle.wait_for(lambda: self.in_flight == 0, timeout)


def install_request_log(app: FastAPI, log: RequestLog, latency_s: callable) -> None:
    """Log every non-admin request (method, path, query, status, time) and apply latency.

    A request the fault layer changed also gets ``fault``: the action applied (``sandbox/faults.py``).
    """

    @app.middleware("http")
    async def _log(request: Request, call_next):
        path = request.url.path
        admin = path.startswith("/_sim")
        delay = 0.0 if admin else float(latency_s() or 0)
        if delay:
            import asyncio

            await asyncio.sleep(delay)
        started = time.time()
        if not admin:
            log.started()
        try:
            response = await call_next(request)
        finally:
            if not admin:
                log.finished()
        if not admin:
            entry = {
                "ts": started,
                "method": request.method,
                "path": path,
                "query": str(request.url.query),
                "status": response.status_code,
            }
            fault = request.scope.get(FAULT_SCOPE_KEY)
            if fault:
                entry["fault"] = fault
            log.add(**entry)
        return response

    @app.get("/_sim/requests")
    def _requests() -> list[dict]:
        return log.snapshot()

    @app.delete("/_sim/requests")
    def _clear_requests() -> dict:
        log.clear()
        return {"cleared": True}


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """Run an ASGI app with uvicorn in a daemon thread (tests) and stop it cleanly."""

    def __init__(self, app: FastAPI, port: int | None = None, host: str = "127.0.0.1"):
        self.host = host
        self.port = port or free_port()
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name=f"sim-{self.port}")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.time() + 15
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"simulator on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
