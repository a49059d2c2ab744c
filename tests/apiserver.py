"""A real ``airflow api-server`` (and nothing else: no scheduler) on a free 127.0.0.1 port, for tests.

It uses the test session's throw-away AIRFLOW_HOME and metadata database (create that first with the
``airflow_db`` fixture), the project's plugins folder, and SimpleAuthManager with one known user, so a
test can get a JWT from ``POST /auth/token`` the way any API client does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

USER, PASSWORD = "admin", "monitor-test-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    """Start with :meth:`start`, stop with :meth:`stop` (SIGTERM to its own process group, then SIGKILL)."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "api-server.log"
        passwords = self.workdir / "passwords.json"
        passwords.write_text(json.dumps({USER: PASSWORD}), encoding="utf-8")
        self.env = {
            **os.environ,
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": "monitor-test-jwt-secret-0123456789abcdef",
            "AIRFLOW__API__BASE_URL": self.url,
            **(env or {}),
        }

    def start(self, timeout: float = 60.0) -> ApiServer:
        airflow = str(Path(sys.executable).with_name("airflow"))
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                airflow,
                "api-server",
                "--apps",
                "core",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches its children and only them
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"api-server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"api-server did not answer within {timeout} s:\n{self.log_tail()}")

    def token(self, username: str = USER, password: str = PASSWORD) -> str:
        r = requests.post(f"{self.url}/auth/token", json={"username": username, "password": password}, timeout=10)
        r.raise_for_status()
        return r.json()["access_token"]

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            pgid = os.getpgid(self.proc.pid)
            os.killpg(pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            # A worker process of the group may outlive its parent for a moment: give it one, then end it.
            deadline = time.monotonic() + 5
            while _group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        self._log.close()
        self.proc = None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
