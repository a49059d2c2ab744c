"""Test bed: a throw-away Airflow home, both simulators on free ports, and a fresh state database.

Airflow reads its configuration at import, so the environment is set here, before any test
module imports airflow.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_HOME = Path(tempfile.mkdtemp(prefix="ghl-s4s-test-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "GHL_S4S_DATA_DIR": str(_HOME / "data"),
        # GX Data Docs cost about 0.7 s per validated batch and stream: built only by the tests that
        # look at them (they set GHL_S4S_DATA_DOCS=1; the browser test's runs keep the default, on).
        "GHL_S4S_DATA_DOCS": "0",
    }
)
for _name in ("AIRFLOW_CONN_GHL_DEFAULT", "AIRFLOW_CONN_SHIFT4SHOP_DEFAULT"):
    os.environ.pop(_name, None)

import pytest  # noqa: E402

from sandbox.common import ServerThread  # noqa: E402
from sandbox.ghl import GhlState  # noqa: E402
from sandbox.ghl import create_app as create_ghl_app  # noqa: E402
from sandbox.profiles import DEFAULT_PROFILE, PROFILES, apply_profile  # noqa: E402
from sandbox.shift4shop import Shift4ShopState  # noqa: E402
from sandbox.shift4shop import create_app as create_s4s_app  # noqa: E402

LOCATION_ID = "ve9EPM428h8vShlRW1KT"
GHL_TOKEN = "pit-test-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
SECURE_URL = "https://test-store.3dcartstores.com"
PRIVATE_KEY = "pk-test-8c6d4e2f0a1b3c5d7e9f"
S4S_TOKEN = "tk-test-1a2b3c4d5e6f7a8b9c0d"
SECRETS = (GHL_TOKEN, PRIVATE_KEY, S4S_TOKEN)

ALL_SCOPES = None  # the GHL simulator's default: every scope


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata database (SQLite), created once per session."""
    from airflow.models.pool import Pool
    from airflow.utils import db

    db.resetdb()
    Pool.create_or_update_pool("ghl_api", slots=2, description="HighLevel API budget", include_deferred=False)
    Pool.create_or_update_pool("shift4shop_api", slots=1, description="Shift4Shop API budget", include_deferred=False)
    return True


class Sims:
    """Both simulators, running in threads; tests reach their state objects directly."""

    def __init__(self):
        self.ghl_state = GhlState(location_id=LOCATION_ID, tokens={GHL_TOKEN: {"location_id": LOCATION_ID}})
        self.s4s_state = Shift4ShopState(stores={SECURE_URL: {"private_key": PRIVATE_KEY, "token": S4S_TOKEN}})
        self.ghl = ServerThread(create_ghl_app(self.ghl_state)).start()
        self.s4s = ServerThread(create_s4s_app(self.s4s_state)).start()

    def stop(self):
        self.ghl.stop()
        self.s4s.stop()

    def connections_env(self) -> dict[str, str]:
        return {
            "AIRFLOW_CONN_GHL_DEFAULT": json.dumps(
                {
                    "conn_type": "http",
                    "host": self.ghl.url,
                    "password": GHL_TOKEN,
                    "extra": {"location_id": LOCATION_ID, "version": "2021-07-28"},
                }
            ),
            "AIRFLOW_CONN_SHIFT4SHOP_DEFAULT": json.dumps(
                {
                    "conn_type": "http",
                    "host": self.s4s.url,
                    "extra": {"secure_url": SECURE_URL, "private_key": PRIVATE_KEY, "token": S4S_TOKEN},
                }
            ),
        }

    def ghl_requests(self, path_prefix: str = "") -> list[dict]:
        return [r for r in self.ghl_state.request_log.snapshot() if r["path"].startswith(path_prefix)]

    def s4s_requests(self, method: str | None = None) -> list[dict]:
        return [r for r in self.s4s_state.request_log.snapshot() if method is None or r["method"] == method]

    def clear_logs(self):
        self.ghl_state.request_log.clear()
        self.s4s_state.request_log.clear()

    def customers(self) -> list[dict]:
        return self.s4s_state.all_customers(SECURE_URL)


@pytest.fixture(scope="session")
def _sims():
    sims = Sims()
    yield sims
    sims.stop()


# Tests in these folders, and tests marked ``both_profiles``, run under every simulator profile: the
# client must keep its promises whichever reading of the APIs' unconfirmed behaviours the real
# services take.
PROFILED_FOLDERS = ("e2e", "robustness")


def pytest_configure(config):
    config.addinivalue_line("markers", "both_profiles: run under the lenient and the strict simulator profile")
    config.addinivalue_line("markers", "profiles(*names): run only under these simulator profiles")


def pytest_generate_tests(metafunc):
    folder = Path(str(metafunc.definition.fspath)).parent.name
    marked = metafunc.definition.get_closest_marker("both_profiles") is not None
    only = metafunc.definition.get_closest_marker("profiles")
    if "profile" in metafunc.fixturenames and (folder in PROFILED_FOLDERS or marked or only):
        metafunc.parametrize("profile", list(only.args) if only else list(PROFILES), indirect=True)


# Folders whose tests take tens of seconds to minutes each (real Airflow runs, processes, a browser):
# collected first, so that with `pytest -n 2` the two workers start on them and end on the many
# short tests, instead of one worker finishing a two-minute test alone while the other waits.
LONG_FIRST = ("tests/ui/", "tests/e2e/", "tests/robustness/test_crash_safety.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        path = Path(str(item.fspath)).relative_to(ROOT).as_posix()
        return next((i for i, prefix in enumerate(LONG_FIRST) if path.startswith(prefix)), len(LONG_FIRST))

    items.sort(key=rank)  # stable: within a rank, the usual order


def pytest_runtest_setup(item):
    """Fail a grouped test, before its fixtures are built, when ``xdist_group`` is being ignored.

    pytest-xdist's ``--dist loadgroup`` keeps a group on one worker by adding ``@group`` to node ids;
    pytest 9.2 derives node ids elsewhere, so the suffix was silently lost and the browser module
    built its UI on both workers at once (twice the set-up, and both timed out on a busy machine).
    """
    grouped = getattr(item.config.option, "loadgroup", False) and item.get_closest_marker("xdist_group")
    if grouped and "@" not in item.nodeid:
        pytest.fail("xdist_group is ignored by this pytest/pytest-xdist pair: pin them as requirements-dev.txt says")


@pytest.fixture
def profile(request) -> str:
    """Which reading of the APIs' unconfirmed behaviours the simulators take (sandbox/profiles.py)."""
    return getattr(request, "param", DEFAULT_PROFILE)


@pytest.fixture
def sims(_sims, profile, monkeypatch, tmp_path):
    """Empty simulators under ``profile`` with limits off, connections to them, a fresh state database."""
    for sim_state in (_sims.ghl_state, _sims.s4s_state):
        # A request an earlier test left held by a fault (the client gave up, the server sleeps)
        # would otherwise write into this test's store and its request log: seen as a second POST.
        assert sim_state.request_log.wait_idle(), "a simulator request is still held after 15 s"
    _sims.ghl_state.reset()
    _sims.s4s_state.reset()
    apply_profile(profile, ghl=_sims.ghl_state, shift4shop=_sims.s4s_state)
    _sims.profile = profile
    # Every knob a test may have changed goes back, so a test that failed midway leaks nothing.
    _sims.ghl_state.configure(
        rate_limit=False,
        index_lag_s=0.0,
        latency_s=0.0,
        burst_max=100,
        burst_window_ms=10_000,
        daily_limit=200_000,
        search_hide_share=0.0,
        search_hide_keeps_total=False,
    )
    _sims.s4s_state.configure(rate_limit=False, latency_s=0.0, bucket_size=50, leak_per_s=2.0)
    _sims.clear_logs()
    for key, value in _sims.connections_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GHL_S4S_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("GHL_S4S_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GHL_S4S_WATERMARK_LAG_SECONDS", "0")
    # The simulators' limits are off here, so the client's budgets are too (tests that exercise
    # the limits switch both on).
    for name in ("GHL_BURST", "GHL_RATE_PER_S", "SHIFT4SHOP_BURST", "SHIFT4SHOP_RATE_PER_S"):
        monkeypatch.setenv(f"GHL_S4S_{name}", "10000")
    return _sims


@pytest.fixture
def state(sims):
    from ghl_shift4shop.sync import state_store

    return state_store()


@pytest.fixture(scope="session")
def sync_dag():
    """The ghl_shift4shop_sync DAG as Airflow parses it from dags/."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["ghl_shift4shop_sync"]
