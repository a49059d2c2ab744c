"""`make ui` (scripts/ui.sh): loopback by default, login off loopback, and one SIGINT stops everything."""

from __future__ import annotations

import json
import socket

import psutil

from scripts.airflow_ui import ensure_passwords, is_loopback, login_required
from tests.ui.conftest import STOP_BOUND_S, start_ui


def other_local_addresses() -> list[str]:
    """This machine's IPv4 addresses that are not loopback (where a 0.0.0.0 bind would also answer)."""
    return [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]


def test_login_is_required_off_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("my-host")
    assert login_required("127.0.0.1", force_login=False) is False
    assert login_required("127.0.0.1", force_login=True) is True
    assert login_required("0.0.0.0", force_login=False) is True
    assert login_required("10.0.0.7", force_login=False) is True


def test_make_ui_listens_on_loopback_only_and_one_sigint_stops_every_process(tmp_path):
    ui = start_ui(tmp_path, UI_SANDBOX="0")  # every part (api-server, scheduler, dag-processor, triggerer)
    try:
        ui.wait_healthy()
        listening = [
            c.laddr
            for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == ui.port
        ]
        assert listening and {a.ip for a in listening} == {"127.0.0.1"}, listening
        for address in other_local_addresses():
            with socket.socket() as s:
                s.settimeout(2)
                assert s.connect_ex((address, ui.port)) != 0, f"the UI answers on {address}"
        assert "every visitor is an admin" in ui.output()
        ui.note_descendants()
        names = " ".join(" ".join(p.cmdline()) for p in ui.seen.values() if p.is_running())
        for part in ("api-server", "scheduler", "dag-processor", "triggerer"):
            assert part in names or part.replace("-", "_") in names, (part, names)

        took, left = ui.stop()
        assert left == [], f"still running {took:.0f} s after one SIGINT: {left}"
        assert took < STOP_BOUND_S
        assert ui.proc.returncode == 0, ui.output()
        assert "no Airflow process left" in ui.output()
    finally:
        ui.kill_all()


def test_the_login_password_is_written_beforehand_so_the_api_server_never_prints_it(tmp_path):
    # Left to itself, SimpleAuthManager generates the password and prints it into the API
    # server's log; ensure_passwords() writes it first, readable by the owner only, and keeps it.
    env = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer1:viewer"}
    path = ensure_passwords(env)
    assert path == tmp_path / "simple_auth_manager_passwords.json.generated"
    assert path.stat().st_mode & 0o777 == 0o600
    passwords = json.loads(path.read_text())
    assert sorted(passwords) == ["admin", "viewer1"] and all(len(p) >= 16 for p in passwords.values())
    assert json.loads(ensure_passwords(env).read_text()) == passwords  # a second start keeps them
