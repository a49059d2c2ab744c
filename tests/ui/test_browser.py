"""The Airflow UI in a real headless Chromium, after a real sync: what an operator sees is what ran.

One module-scoped set-up: both simulators seeded with a few hundred contacts (some of them
invalid, so the run quarantines), `airflow dags test ghl_shift4shop_sync` in a throw-away Airflow
home (the run lands in the metadata DB the UI reads), and `scripts/ui.sh` serving that home on
127.0.0.1 with SimpleAuthManager's login. One logged-in ``page`` is shared by the test functions,
so a check of another page is one more function.

Screenshots go to ``test-artifacts/screenshots/`` (gitignored); with ``GHL_S4S_SCREENSHOTS=docs/img``
they are also written there for the README.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import expect

from sandbox.profiles import DEFAULT_PROFILE, apply_profile
from sandbox.seed import generate_contacts, generate_crm
from tests.conftest import LOCATION_ID, SECRETS
from tests.ui.conftest import ROOT, script_env, start_ui

CHROMIUM = Path("/usr/bin/chromium")
DAG_ID = "ghl_shift4shop_sync"
RECONCILE_ID = "ghl_shift4shop_reconcile"
CONTACTS = 300
DIRTY_SHARE = 0.05  # about 15 dirty contacts: some are cleaned, the rest quarantined with a reason
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"

pytestmark = [
    # One worker runs the whole module, and builds its set-up (a sync, a reconciliation, the UI) once:
    # session-scoped, so a test of another module run in between on that worker does not tear it down.
    pytest.mark.xdist_group("browser"),
    # Skipped on a developer's machine without the browser; in CI (CI set) a missing browser is a
    # failure, so a broken install can never turn the UI tests into a green skip.
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason=f"no {CHROMIUM}: `make test` installs Debian's chromium with apt-get when it can (scripts/browser.sh)",
    ),
]


def screenshot(page, name: str) -> None:
    """Keep what the browser showed: always as a test artifact, and for the README when asked."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    docs_dir = os.environ.get("GHL_S4S_SCREENSHOTS")
    if docs_dir:
        target = ROOT / docs_dir
        target.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target / f"{name}.png"))


@pytest.fixture(scope="session")
def synced_ui(_sims, tmp_path_factory):
    """A finished sync run in a throw-away Airflow home, and the UI serving that home behind a login."""
    sims = _sims
    sims.ghl_state.reset()
    sims.s4s_state.reset()
    apply_profile(DEFAULT_PROFILE, ghl=sims.ghl_state, shift4shop=sims.s4s_state)
    sims.ghl_state.configure(rate_limit=False, index_lag_s=0.0, latency_s=0.0)
    sims.s4s_state.configure(rate_limit=False, latency_s=0.0)
    contacts = generate_contacts(CONTACTS, seed=5, dirty_share=DIRTY_SHARE, location_id=LOCATION_ID)
    sims.ghl_state.load_contacts(contacts)
    crm = generate_crm(contacts, seed=5, location_id=LOCATION_ID)
    sims.ghl_state.load_tasks(crm["tasks"])
    sims.ghl_state.load_notes(crm["notes"])
    sims.ghl_state.load_calendars(crm["calendars"])
    sims.ghl_state.load_events(crm["events"])

    local = tmp_path_factory.mktemp("ui-browser")
    # scripts/env.sh's default state database: the one the UI's API server reads too.
    state_url = f"sqlite:///{local / 'data' / 'state.db'}"
    # Only the API server: the run is made by `airflow dags test`, and the UI reads the metadata DB.
    ui = start_ui(local, UI_SANDBOX="0", UI_LOGIN="1", UI_PARTS="api-server")
    try:
        ui.wait_healthy()
        # The demo's way (scripts/demo.sh): the scripts' environment, the connections, one dags test.
        env = script_env(
            local,
            **sims.connections_env(),
            GHL_S4S_STATE_URL=state_url,
            GHL_S4S_WATERMARK_LAG_SECONDS="0",
            **{
                f"GHL_S4S_{n}": "10000"
                for n in ("GHL_BURST", "GHL_RATE_PER_S", "SHIFT4SHOP_BURST", "SHIFT4SHOP_RATE_PER_S")
            },
        )
        log = ""
        # The sync, then the nightly reconciliation with its default policy: the dirty contacts the
        # sync quarantined are in GHL but not in the store, so the reconciliation has findings.
        for dag_id in (DAG_ID, RECONCILE_ID):
            run = subprocess.run(
                ["bash", "-c", 'source scripts/env.sh && exec "$AIRFLOW" dags test ' + dag_id],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
            log += run.stdout + run.stderr
            (local / f"dags-test-{dag_id}.log").write_text(run.stdout + run.stderr)
            assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]

        from ghl_shift4shop.state import StateStore

        store = StateStore(state_url)
        summary = store.recent_summaries(1)[0]
        quarantine = store.open_quarantine()
        reconciled = store.recent_reconciles(1)[0]
        findings = [f for f in store.reconcile_findings(reconciled["run_id"]) if f["source_id"]]
        assert findings, reconciled
        password = json.loads((local / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        # The run as Airflow's REST API reports it (a token from the same login), to hold the UI to.
        token = requests.post(
            ui.url + "/auth/token", json={"username": "admin", "password": password}, timeout=30
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        runs = requests.get(ui.url + f"/api/v2/dags/{DAG_ID}/dagRuns", headers=auth, timeout=30).json()["dag_runs"]
        assert [r["state"] for r in runs] == ["success"], runs
        tasks = requests.get(ui.url + f"/api/v2/dags/{DAG_ID}/tasks", headers=auth, timeout=30).json()["tasks"]
        yield SimpleNamespace(
            url=ui.url,
            password=password,
            run_id=runs[0]["dag_run_id"],
            task_ids=sorted(t["task_id"] for t in tasks),
            summary=summary,
            quarantine=quarantine,
            watermarks=store.list_watermarks(),
            reconcile=reconciled,
            findings=findings,
            ui=ui,
            local=local,
            log=log,
        )
    finally:
        took, left = ui.stop()
        ui.kill_all()
    assert left == [], f"scripts/ui.sh left processes behind ({took:.0f} s after SIGINT): {left}"


# The browser and its page last as long as this module, not the session: Playwright's sync API keeps
# an event loop running on the worker's main thread while it is open, and a later test on that
# worker calling asyncio.run() then fails ("cannot be called from a running event loop").
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # --no-sandbox: Chromium's sandbox refuses to run as root, as these test machines do.
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser, synced_ui):
    """One browser page, logged in through the login page; the test functions below share it."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(30_000)
    p = context.new_page()
    p.goto(synced_ui.url + "/dags")
    p.wait_for_url(re.compile(r"/auth/login"))
    p.get_by_label("Username").fill("admin")
    p.get_by_label("Password").fill(synced_ui.password)
    screenshot(p, "login")
    p.get_by_role("button", name="Sign in").click()
    p.wait_for_url(lambda u: "/auth/login" not in u)
    yield p
    context.close()


def test_without_a_login_the_ui_and_its_api_turn_the_visitor_away(browser, synced_ui):
    context = browser.new_context()
    try:
        anonymous = context.new_page()
        anonymous.goto(synced_ui.url + f"/dags/{DAG_ID}")
        anonymous.wait_for_url(re.compile(r"/auth/login"))
        assert anonymous.get_by_role("button", name="Sign in").is_visible()
    finally:
        context.close()
    assert requests.get(synced_ui.url + "/api/v2/dags", timeout=10).status_code == 401
    wrong = requests.post(synced_ui.url + "/auth/token", json={"username": "admin", "password": "nope"}, timeout=10)
    assert wrong.status_code == 401


def test_the_dag_list_shows_the_sync(page, synced_ui):
    page.goto(synced_ui.url + "/dags")
    link = page.get_by_role("link", name=DAG_ID, exact=True).first
    link.wait_for()
    screenshot(page, "dags")
    assert link.is_visible()


def test_the_run_succeeded_and_shows_every_task(page, synced_ui):
    page.goto(synced_ui.url + f"/dags/{DAG_ID}/runs")
    run_link = page.get_by_role("link", name=re.compile(r"^manual__")).first
    run_link.wait_for()
    screenshot(page, "dag-runs")
    assert run_link.inner_text().strip() == synced_ui.run_id
    run_link.click()
    page.wait_for_url(re.compile(r"/runs/manual__"))
    assert {"extract", "load", "report"} <= set(synced_ui.task_ids)
    # The run page lists its task instances: a row for every task of the DAG, each Success.
    states = {}
    for task_id in synced_ui.task_ids:
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=task_id, exact=True)).first
        row.wait_for()
        states[task_id] = "Success" if "Success" in row.inner_text() else row.inner_text()
    screenshot(page, "run")
    assert states == dict.fromkeys(synced_ui.task_ids, "Success")


def test_the_report_task_xcom_shows_the_runs_counts(page, synced_ui):
    page.goto(synced_ui.url + f"/dags/{DAG_ID}/runs/{quote(synced_ui.run_id, safe='')}/tasks/report/xcom")
    summary = synced_ui.summary
    # What the UI shows must be what the run recorded in the state database (not numbers typed here).
    assert summary["extracted"] == CONTACTS
    assert summary["quarantined"] > 0 and summary["quarantined"] == len(synced_ui.quarantine)
    shown = {}
    for key in ("extracted", "valid", "quarantined", "created", "calls_ghl", "calls_shift4shop"):
        row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=key, exact=True)).first
        row.wait_for()
        value = row.get_by_role("cell").nth(2)
        # Each row loads its value on its own: wait until the cell shows one (then a "Copy" button).
        expect(value).to_have_text(re.compile(r"\S"), timeout=30_000)
        shown[key] = value.inner_text().split()[0]
    screenshot(page, "report-xcom")
    assert shown == {k: str(summary[k]) for k in shown}, (shown, summary)


def test_no_secret_reaches_the_ui_or_run_output(synced_ui):
    logs = "".join(p.read_text(errors="replace") for p in (synced_ui.local / "airflow" / "ui-logs").glob("*.log"))
    logs += synced_ui.ui.output() + synced_ui.log
    assert "Password for user" not in logs
    for secret in (*SECRETS, synced_ui.password):
        assert secret not in logs


def test_the_plugin_page_shows_watermarks_runs_quarantine_and_reconcile_findings(page, synced_ui):
    """The "GHL → Shift4Shop" entry of the Browse menu, as an operator opens it (inside Airflow's frame)."""
    page.goto(synced_ui.url + "/dags")
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="GHL → Shift4Shop").click()
    page.wait_for_url(re.compile(r"/plugin/ghl-shift4shop"))
    frame = page.frame_locator("iframe").first
    frame.get_by_role("heading", name="GHL → Shift4Shop").wait_for()
    # Watermarks: each one the state database holds is shown with the run that set it.
    marks = frame.locator("#watermarks + table")
    for mark in synced_ui.watermarks:
        row = marks.get_by_role("row").filter(has_text=mark["stream"]).first
        expect(row).to_contain_text(mark["value"])
    # The last run's counts, as the run recorded them.
    run_row = frame.locator("#runs ~ table").first.get_by_role("row").filter(has_text=synced_ui.run_id).first
    expect(run_row).to_contain_text(str(synced_ui.summary["extracted"]))
    expect(run_row).to_contain_text(str(synced_ui.summary["created"]))
    # One open quarantine entry with its reason (reasons are shown with e-mails masked).
    entry = synced_ui.quarantine[0]
    q_row = frame.locator("#quarantine + table").get_by_role("row").filter(has_text=entry["source_id"]).first
    expect(q_row).to_contain_text(entry["stage"])
    # The reconciliation that ran after the sync, and one of its findings.
    finding = synced_ui.findings[0]
    expect(frame.locator("#reconcile + p")).to_contain_text(synced_ui.reconcile["status"])
    f_row = frame.locator("#reconcile ~ table").first.get_by_role("row").filter(has_text=finding["source_id"]).first
    expect(f_row).to_contain_text(finding["kind"])
    expect(f_row).to_contain_text(finding["action"])
    page.wait_for_timeout(500)
    screenshot(page, "plugin")
    frame.locator("#reconcile").scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    screenshot(page, "plugin-reconcile")
