"""The "GHL → Shift4Shop" page: a real sync leaves GX Data Docs, and a real ``airflow api-server`` (no
scheduler running) serves the plugin's JSON, HTML and Data Docs to authenticated callers only.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
import requests

from sandbox.seed import generate_contacts, generate_crm
from tests.apiserver import ApiServer
from tests.conftest import LOCATION_ID

pytestmark = pytest.mark.usefixtures("airflow_db")

BAD_EMAIL = "jane.doe@example"  # no top-level domain: quarantined as invalid_email


def test_sync_leaves_data_docs_and_the_api_server_serves_the_page_without_a_scheduler(
    sims, sync_dag, tmp_path, monkeypatch
):
    monkeypatch.setenv("GHL_S4S_DATA_DOCS", "1")  # the tests default is off (tests/conftest.py)
    from ghl_shift4shop.monitor import data_docs_root
    from ghl_shift4shop.settings import load_settings
    from ghl_shift4shop.sync import state_store

    contacts = generate_contacts(60, seed=31, dirty_share=0.0, location_id=LOCATION_ID)
    bad = contacts[5]
    bad["email"] = BAD_EMAIL
    sims.ghl_state.load_contacts(contacts)
    crm = generate_crm(contacts, seed=31, location_id=LOCATION_ID)  # tasks, notes, appointments: validated too
    sims.ghl_state.load_tasks(crm["tasks"])
    sims.ghl_state.load_notes(crm["notes"])
    sims.ghl_state.load_calendars(crm["calendars"])
    sims.ghl_state.load_events(crm["events"])
    dr = sync_dag.test()
    assert dr.state == "success"
    run_id = dr.run_id
    state = state_store()
    [summary] = state.recent_summaries(1)
    assert summary["quarantined"] == 1 and summary["created"] == 59

    # -- GX Data Docs of the run's contacts batch, on disk ---------------------------------------
    [site] = data_docs_root(load_settings().data_dir, run_id).glob("contacts/*")  # one batch of 60
    assert (site / "index.html").is_file()
    pages = list((site / "validations").rglob("*.html"))
    assert len(pages) == 1
    page_html = pages[0].read_text(encoding="utf-8")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page_html))
    assert "Expectation Suite: contacts" in text
    assert "Status: Failed" in text and "Unsuccessful Expectations 1" in text
    assert "values must match this regular expression" in text
    assert "j***@example" in text and BAD_EMAIL not in page_html  # the failing address, masked
    assert not (site / "static").exists()  # served from the GX package instead (4 MB less per batch)

    # -- state the reconcile DAG and a failing store would leave ---------------------------------
    state.save_reconcile(
        "reconcile__monitor_test",
        started_at=datetime.now(UTC),
        dry_run=True,
        status="ok",
        summary={"drift": 1},
        findings=[
            {
                "kind": "drift",
                "source_id": contacts[0]["id"],
                "target_id": "4242",
                "field": "BillingCity",
                "ghl_value": "Oslo",
                "store_value": "Bergen",
                "action": "reported",
            }
        ],
    )
    state.dead_letter("contacts", "dl-contact-1", 503, "Service Unavailable for dl@example.com", {"id": "dl-contact-1"})

    # A second tenant, with its own state and Data Docs: the page shows it when asked with ?tenant=acme.
    tenants_file = tmp_path / "tenants.yaml"
    tenants_file.write_text("tenants:\n  - name: default\n  - name: acme\n")
    monkeypatch.setenv("GHL_S4S_TENANTS_FILE", str(tenants_file))
    acme = load_settings("acme")
    state_store(acme).set_watermark("contacts", "2026-03-03T03:03:03.000Z", "acme_run")
    acme_docs = data_docs_root(acme.data_dir, "acme_run") / "contacts" / "00001"
    acme_docs.mkdir(parents=True)
    (acme_docs / "index.html").write_text("<p>acme's Data Docs</p>")

    server = ApiServer(tmp_path).start()
    try:
        base = f"{server.url}/ghl-shift4shop"
        # Unauthenticated: refused on the JSON API and the Data Docs; the page sends a browser to Airflow's login.
        site_index = f"/data-docs/{quote(run_id, safe='')}/contacts/{site.name}/index.html"
        for path in ("/api/overview", "/api/quarantine", site_index):
            r = requests.get(base + path, timeout=10, allow_redirects=False)
            assert r.status_code in (401, 403), (path, r.status_code, r.text[:200])
        r = requests.get(f"{base}/", timeout=10, allow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/auth/login?next="), r.headers
        assert "invalid_email" not in r.text
        r = requests.get(f"{base}/api/overview", headers={"Authorization": "Bearer not-a-jwt"}, timeout=10)
        assert r.status_code in (401, 403)

        token = server.token()
        auth = {"Authorization": f"Bearer {token}"}
        # Airflow knows the plugin: the app under its prefix, and the nav entry the UI shows in a frame.
        [plugin] = [
            p
            for p in requests.get(f"{server.url}/api/v2/plugins", headers=auth).json()["plugins"]
            if p["name"] == "ghl_shift4shop_ui"
        ]
        assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/ghl-shift4shop"]
        assert [(v["href"], v["url_route"], v["destination"]) for v in plugin["external_views"]] == [
            ("/ghl-shift4shop/", "ghl-shift4shop", "nav")
        ]
        overview = requests.get(f"{base}/api/overview", headers=auth, timeout=30)
        assert overview.status_code == 200, overview.text
        body = overview.json()
        marks = {m["stream"]: m for m in body["watermarks"]}
        assert marks["contacts"]["watermark"] == state.get_watermark("contacts")
        assert marks["contacts"]["run_id"] == run_id and marks["contacts"]["lag_seconds"] > 0
        [run] = [r for r in body["runs"] if r["run_id"] == run_id]
        assert run["counts"]["extracted"] == 60 and run["counts"]["created"] == 59
        assert run["counts"]["quarantined"] == 1 and run["data_docs"] >= 1
        assert body["open_quarantine"] == 1 and body["dead_letters"] == 1
        assert body["reconcile"]["run_id"] == "reconcile__monitor_test"

        q = requests.get(f"{base}/api/quarantine", params={"stream": "contacts", "q": "invalid_email"}, headers=auth)
        [entry] = q.json()["items"]
        assert entry["source_id"] == bad["id"] and entry["stage"] == "validate"
        assert entry["reason"].startswith("invalid_email")
        assert "j***@example" in entry["record"] and BAD_EMAIL not in q.text
        assert requests.get(f"{base}/api/quarantine", params={"q": "no such reason"}, headers=auth).json() == {
            "total": 0,
            "items": [],
        }
        assert requests.get(f"{base}/api/quarantine", params={"stream": "tasks"}, headers=auth).json()["total"] == 0

        dl = requests.get(f"{base}/api/dead-letters", headers=auth).json()["items"]
        assert [(d["source_id"], d["status"]) for d in dl] == [("dl-contact-1", 503)]
        assert "d***@example.com" in dl[0]["reason"]

        rec = requests.get(f"{base}/api/reconcile/latest", headers=auth).json()
        [finding] = rec["findings"]
        assert (finding["kind"], finding["field"], finding["ghl_value"], finding["store_value"]) == (
            "drift",
            "BillingCity",
            "Oslo",
            "Bergen",
        )

        # The page, with the UI's session cookie (what the browser sends inside the Airflow UI's frame).
        page = requests.get(f"{base}/", cookies={"_token": token}, timeout=30)
        assert page.status_code == 200, page.text[:500]
        assert "GHL → Shift4Shop" in page.text and "<svg" in page.text  # the runs chart, inline
        assert bad["id"] in page.text and "invalid_email" in page.text and BAD_EMAIL not in page.text
        assert "Bergen" in page.text and "dl-contact-1" in page.text
        filtered = requests.get(f"{base}/", params={"q": "duplicate_id"}, cookies={"_token": token}, timeout=30)
        assert bad["id"] not in filtered.text and "Open quarantine (0)" in filtered.text

        # Each run links its Data Docs; the plugin serves them, GX's static assets included.
        docs = requests.get(f"{base}/api/runs/{quote(run_id, safe='')}/data-docs", headers=auth).json()
        # One site per validated stream of the batch: the contacts and each CRM child stream.
        assert {d["stream"] for d in docs} == {"contacts", "tasks", "notes", "appointments"}
        contacts_site = next(d for d in docs if d["stream"] == "contacts")
        assert contacts_site["success"] is False and contacts_site["unsuccessful"] == 1
        link = f"{base}/data-docs/{quote(run_id, safe='')}/{contacts_site['validations'][0]}"
        assert f'href="/ghl-shift4shop/data-docs/{quote(run_id, safe="")}/{contacts_site["validations"][0]}"' in (
            page.text
        )
        served = requests.get(link, cookies={"_token": token}, timeout=10)
        assert served.status_code == 200 and "Unsuccessful Expectations" in served.text
        assert "j***@example" in served.text
        static = "static/styles/data_docs_custom_styles_template.css"
        css = requests.get(f"{base}/data-docs/{quote(run_id, safe='')}/contacts/{site.name}/{static}", headers=auth)
        assert css.status_code == 200
        # The state DB sits four folders above the run's docs: not reachable through them.
        escape = requests.get(f"{base}/data-docs/{quote(run_id, safe='')}/..%2F..%2F..%2F..%2Fstate.db", headers=auth)
        assert escape.status_code == 404

        # Tenant acme: its own watermark, page and Data Docs; an unknown tenant is not found; no access without a token.
        acme_view = requests.get(f"{base}/api/overview", params={"tenant": "acme"}, headers=auth, timeout=30).json()
        assert [(m["stream"], m["watermark"]) for m in acme_view["watermarks"]] == [
            ("contacts", "2026-03-03T03:03:03.000Z")
        ]
        assert acme_view["open_quarantine"] == 0 and acme_view["runs"] == []
        assert requests.get(f"{base}/api/overview", params={"tenant": "nobody"}, headers=auth).status_code == 404
        assert requests.get(f"{base}/api/overview", params={"tenant": "acme"}).status_code in (401, 403)
        acme_page = requests.get(f"{base}/", params={"tenant": "acme"}, cookies={"_token": token}, timeout=30)
        assert "tenant <code>acme</code>" in acme_page.text and bad["id"] not in acme_page.text
        acme_doc = requests.get(f"{base}/tenants/acme/data-docs/acme_run/contacts/00001/index.html", headers=auth)
        assert acme_doc.status_code == 200 and "acme's Data Docs" in acme_doc.text
        assert requests.get(f"{base}/tenants/acme/data-docs/acme_run/contacts/00001/index.html").status_code in (
            401,
            403,
        )
    finally:
        server.stop()
