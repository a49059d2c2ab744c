"""Start and stop `scripts/ui.sh` (the local Airflow UI) the way an operator does, for the UI tests.

The tests run the real script in a throw-away directory (``GHL_S4S_LOCAL_DIR``) on a free port;
stopping it is one SIGINT to the script, as one Ctrl-C is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[2]
HEALTH_PATH = "/api/v2/monitor/health"
STOP_BOUND_S = 30.0
READY_LINE = "[ui] Ctrl-C stops everything"  # scripts/airflow_ui.py prints it last, once healthy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def script_env(local_dir: Path, **extra: str) -> dict[str, str]:
    """The test process's environment minus its own Airflow set-up; scripts/env.sh sets the rest."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "GHL_S4S_"))}
    env.pop("AIRFLOW_HOME", None)
    env.update(GHL_S4S_LOCAL_DIR=str(local_dir), GHL_S4S_VENV=sys.prefix, **extra)
    return env


@dataclass
class UiScript:
    """A running scripts/ui.sh: its process, URL and output file."""

    proc: subprocess.Popen
    url: str
    port: int
    out: Path
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def output(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def note_descendants(self) -> None:
        """Remember every process the script has started so far (the check after stop() needs them)."""
        try:
            script = psutil.Process(self.proc.pid)
            self.seen.setdefault(script.pid, script)
            for child in script.children(recursive=True):
                self.seen[child.pid] = child
        except psutil.NoSuchProcess:
            pass

    def wait_healthy(self, timeout_s: float = 150.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"ui.sh exited ({self.proc.returncode}) before the UI was up:\n{self.output()}")
            try:
                # Healthy means both: the API server answers, and the script has noticed and said so
                # (it polls on its own, so its "ready" lines can come a moment after our first 200).
                if READY_LINE in self.output() and requests.get(self.url + HEALTH_PATH, timeout=2).status_code == 200:
                    self.note_descendants()
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError(f"no healthy API server at {self.url} after {timeout_s} s:\n{self.output()}")

    def stop(self) -> tuple[float, list[str]]:
        """One SIGINT to the script; returns how long it took to exit and which of its processes outlived it."""
        self.note_descendants()
        started = time.monotonic()
        os.kill(self.proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=STOP_BOUND_S)
        took = time.monotonic() - started
        left = []
        for proc in self.seen.values():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    left.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
            except psutil.NoSuchProcess:
                pass
        return took, left

    def kill_all(self) -> None:
        """Last resort after a failed test: leave no stray process whatever happened."""
        self.note_descendants()
        for proc in self.seen.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_ui(local_dir: Path, **env: str) -> UiScript:
    """Run scripts/ui.sh with ``env`` knobs (UI_PORT is chosen here) and its output in ``local_dir``."""
    local_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    out = local_dir / "ui.out"
    with out.open("wb") as f:
        proc = subprocess.Popen(
            [str(ROOT / "scripts" / "ui.sh")],
            env=script_env(local_dir, UI_PORT=str(port), **env),
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
    return UiScript(proc=proc, url=f"http://127.0.0.1:{port}", port=port, out=out)
