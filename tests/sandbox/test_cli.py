"""``python -m sandbox start --profile strict`` serves both simulators under that profile."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from sandbox.common import free_port
from sandbox.profiles import PROFILES
from tests.conftest import ROOT


@pytest.mark.parametrize("profile", ["strict", "lenient"])
def test_start_serves_both_simulators_under_the_profile(tmp_path, profile):
    ghl_port, s4s_port = free_port(), free_port()
    cli = [sys.executable, "-m", "sandbox", "--dir", str(tmp_path)]
    started = subprocess.run(
        [*cli, "start", "--profile", profile, "--contacts", "20", "--ghl-port", str(ghl_port), "--s4s-port",
         str(s4s_port)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        ghl = requests.get(f"http://127.0.0.1:{ghl_port}/_sim/config", timeout=10).json()
        s4s = requests.get(f"http://127.0.0.1:{s4s_port}/_sim/config", timeout=10).json()
        for key, value in PROFILES[profile].ghl.items():
            assert ghl[key] == value, key
        for key, value in PROFILES[profile].shift4shop.items():
            assert s4s[key] == value, key
        status = subprocess.run([*cli, "status"], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert f"profile    {profile}" in status.stdout
    finally:
        subprocess.run([*cli, "stop"], cwd=ROOT, capture_output=True, text=True, timeout=60)
