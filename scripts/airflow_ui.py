"""Run the Airflow UI's parts for `make ui` (and the UI tests) and stop every one of them on one Ctrl-C.

This module owns the local Airflow UI's processes: which parts run, where the API server listens,
whether a login is required, and the shutdown sequence. `scripts/ui.sh` prepares the Airflow home
and the simulators and then runs this; `tests/ui/` start `scripts/ui.sh` the same way.

Why not `airflow standalone`: it binds where `[api] host` says (0.0.0.0 by default), and after a
SIGINT it was seen (Airflow 3.3.2, here) sitting for more than 25 s with defunct children until a
SIGTERM. Here each part (`api-server`, `scheduler`, `dag-processor`, `triggerer`) is a child
of this process in its own session, so a terminal's Ctrl-C reaches only this supervisor, which then
stops the parts in order: SIGINT to each part's process group, a bounded wait, SIGTERM, a bounded
wait, SIGKILL, and it returns only when none of them, nor anything they started, is left.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import requests

ALL_PARTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# Bounded waits of the shutdown: SIGINT first (every Airflow part shuts down cleanly on it), then
# SIGTERM, then SIGKILL. Their sum stays well under the 30 s the tests allow.
INT_WAIT_S = 10.0
TERM_WAIT_S = 8.0
KILL_WAIT_S = 3.0
HEALTH_PATH = "/api/v2/monitor/health"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything, so treat it as reachable from outside


def login_required(host: str, force_login: bool) -> bool:
    """Everyone is an admin only on a loopback address, and only when no login was asked for."""
    return force_login or not is_loopback(host)


def local_url(host: str, port: int) -> str:
    """A URL this machine can reach the API server at (a wildcard bind is reachable on loopback)."""
    if host in ("0.0.0.0", "", "::", "[::]"):
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def password_file(env: dict[str, str]) -> Path:
    """Where SimpleAuthManager writes the generated passwords (``[core] simple_auth_manager_passwords_file``)."""
    configured = env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    return (
        Path(configured) if configured else Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    )


def ensure_passwords(env: dict[str, str]) -> Path:
    """Write the login passwords SimpleAuthManager will use, unless they are there already.

    Left to itself, the API server generates them and prints them to its output, i.e. into the
    log file here; written beforehand, no password reaches a log. Only the owner may read the file.
    """
    path = password_file(env)
    users = [u.split(":", 1)[0] for u in env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin").split(",")]
    passwords = json.loads(path.read_text(encoding="utf-8") or "{}") if path.exists() else {}
    missing = [u for u in users if u and u not in passwords]
    if missing:
        passwords.update({u: secrets.token_urlsafe(12) for u in missing})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(passwords) + "\n")
    os.chmod(path, 0o600)
    return path


def parts_env(host: str, port: int, login: bool) -> dict[str, str]:
    """The environment every part runs with: one auth setting and one execution API URL for all."""
    env = dict(os.environ)
    env["AIRFLOW__CORE__AUTH_MANAGER"] = SIMPLE_AUTH_MANAGER
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "False" if login else "True"
    # The API server's own settings, so `airflow config` and the parts agree with the command line.
    env["AIRFLOW__API__HOST"] = host
    env["AIRFLOW__API__PORT"] = str(port)
    # Task workers of the scheduler's LocalExecutor reach the API server here (default :8080).
    env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"{local_url(host, port)}/execution/"
    # A test process's unit-test mode gives each process its own random JWT secret: the scheduler's
    # task tokens would then not validate in the API server.
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    return env


class Supervisor:
    """The parts as child processes, each in its own session; ``stop()`` leaves none of them behind.

    A part is named by its ``airflow`` subcommand; ``commands`` may give a part its own argument
    list (after ``airflow``) and ``part_env`` its own extra environment, e.g. two
    ``celery worker`` parts with different hostnames (tests/e2e/test_scaleout_celery.py).
    """

    def __init__(
        self,
        parts: list[str],
        host: str,
        port: int,
        env: dict[str, str],
        log_dir: Path,
        commands: dict[str, list[str]] | None = None,
        part_env: dict[str, dict[str, str]] | None = None,
    ):
        self.parts = parts
        self.host = host
        self.port = port
        self.env = env
        self.log_dir = log_dir
        self.commands = commands or {}
        self.part_env = part_env or {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.stopping = threading.Event()

    def command(self, name: str) -> list[str]:
        if name in self.commands:
            return [sys.executable, "-m", "airflow", *self.commands[name]]
        cmd = [sys.executable, "-m", "airflow", name]
        if name == "api-server":
            cmd += ["--host", self.host, "--port", str(self.port)]
        return cmd

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in self.parts:
            log = (self.log_dir / f"{name}.log").open("ab")
            # start_new_session: a terminal's Ctrl-C goes to this supervisor only; the parts get
            # exactly the signals stop() sends, in order.
            self.procs[name] = subprocess.Popen(
                self.command(name),
                env={**self.env, **self.part_env.get(name, {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log.close()

    def wait_healthy(self, timeout_s: float) -> bool:
        """True once the API server answers its health endpoint; False if it (or any part) died first."""
        url = local_url(self.host, self.port) + HEALTH_PATH
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.stopping.is_set():
            if self.dead_part():
                return False
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.5)
        return False

    def dead_part(self) -> str | None:
        return next((name for name, p in self.procs.items() if p.poll() is not None), None)

    def _everything(self) -> list[psutil.Process]:
        """Every live process started here: the parts, their descendants, and anyone left in their groups."""
        found: dict[int, psutil.Process] = {}
        groups = {p.pid for p in self.procs.values()}  # each part leads its own session and group
        for p in self.procs.values():
            try:
                proc = psutil.Process(p.pid)
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    found[child.pid] = child
            except psutil.NoSuchProcess:
                pass
        for proc in psutil.process_iter():
            try:
                if os.getpgid(proc.pid) in groups:
                    found[proc.pid] = proc
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        alive = []
        for proc in found.values():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.NoSuchProcess:
                pass
        return alive

    def _reap(self) -> None:
        for p in self.procs.values():
            p.poll()

    def _signal_all(self, sig: int) -> None:
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)
        for proc in self._everything():  # descendants that left their part's group
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(sig)

    def _wait_gone(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._reap()
            if not self._everything():
                return True
            time.sleep(0.2)
        self._reap()
        return not self._everything()

    def stop(self) -> list[int]:
        """SIGINT, then SIGTERM, then SIGKILL, each after a bounded wait; returns the pids still left (none)."""
        self.stopping.set()
        for sig, wait_s in ((signal.SIGINT, INT_WAIT_S), (signal.SIGTERM, TERM_WAIT_S), (signal.SIGKILL, KILL_WAIT_S)):
            if not self._everything():
                break
            print(f"[ui] sending {signal.Signals(sig).name} to the Airflow parts", flush=True)
            self._signal_all(sig)
            if self._wait_gone(wait_s):
                break
        for p in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=1)
        return [proc.pid for proc in self._everything()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address the API server binds (default loopback)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--login", action="store_true", help="require SimpleAuthManager's login even on loopback")
    parser.add_argument("--parts", default=",".join(ALL_PARTS), help=f"comma-separated subset of {ALL_PARTS}")
    parser.add_argument("--health-timeout", type=float, default=120.0)
    parser.add_argument("--stop-sandbox", metavar="DIR", help="stop the simulators in DIR after the Airflow parts")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.replace(" ", ",").split(",") if p]
    unknown = sorted(set(parts) - set(ALL_PARTS))
    if unknown or "api-server" not in parts:
        parser.error(f"--parts must name api-server and only {ALL_PARTS}; got {parts}")

    login = login_required(args.host, args.login)
    env = parts_env(args.host, args.port, login)
    log_dir = Path(env["AIRFLOW_HOME"]) / "ui-logs"
    passwords = ensure_passwords(env) if login else None
    sup = Supervisor(parts, args.host, args.port, env, log_dir)

    def on_signal(signum, _frame):
        # The first INT/TERM starts the shutdown; repeats (Ctrl-C pressed again, or make passing
        # it on) change nothing: the bounded sequence in stop() finishes anyway.
        sup.stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    sup.start()
    print(f"[ui] started {', '.join(parts)}; their logs: {log_dir}", flush=True)
    rc = 0
    if sup.wait_healthy(args.health_timeout):
        print(f"[ui] Airflow UI: {local_url(args.host, args.port)}  (listening on {args.host}:{args.port})", flush=True)
        if login:
            print(
                f"[ui] login required: user `admin`, password in {passwords}",
                flush=True,
            )
        else:
            print("[ui] loopback only, so every visitor is an admin (UI_LOGIN=1 asks for a login)", flush=True)
        print("[ui] Ctrl-C stops everything", flush=True)
        while not sup.stopping.wait(0.5):
            dead = sup.dead_part()
            if dead:
                print(f"[ui] {dead} exited (see {log_dir / (dead + '.log')}); stopping the rest", flush=True)
                rc = 1
                break
    elif not sup.stopping.is_set():
        dead = sup.dead_part()
        print(
            f"[ui] the API server did not become healthy{f' ({dead} exited)' if dead else ''}; see {log_dir}; stopping",
            file=sys.stderr,
            flush=True,
        )
        rc = 1
    left = sup.stop()
    if args.stop_sandbox:
        # The simulators were started for this UI (scripts/ui.sh); their own CLI stops them.
        subprocess.run([sys.executable, "-m", "sandbox", "--dir", args.stop_sandbox, "stop"], check=False)
    if left:
        print(f"[ui] processes still alive after SIGKILL: {left}", file=sys.stderr, flush=True)
        return 1
    print("[ui] stopped; no Airflow process left", flush=True)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
