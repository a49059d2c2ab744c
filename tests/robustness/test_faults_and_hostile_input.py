"""Every fault and every class of hostile input, each with the outcome it must have.

Each test records what it tried and what it observed; `make robustness-report` runs this module
and writes those records to docs/robustness.md (so the table is produced by the tests, and
test_report_lists_every_case keeps the committed table in step with them).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from ghl_shift4shop.batches import read_jsonl, write_jsonl
from ghl_shift4shop.extract import extract_contacts
from ghl_shift4shop.ghl.hook import GhlHook
from ghl_shift4shop.load import load_customers
from ghl_shift4shop.mapping import load_mapping
from ghl_shift4shop.shift4shop.hook import Shift4ShopHook
from ghl_shift4shop.transform import transform_records
from ghl_shift4shop.transport import ApiError
from ghl_shift4shop.validate import validate_batch

from sandbox.seed import generate_contacts
from tests.conftest import LOCATION_ID, ROOT

MAPPING = load_mapping(ROOT / "include" / "mappings" / "contacts_to_customers.yaml")
REPORT: list[tuple[str, str, str, str]] = []
REPORT_FILE = ROOT / "docs" / "robustness.md"


def record(kind: str, case: str, tried: str, observed: str) -> None:
    REPORT.append((kind, case, tried, observed))


@pytest.fixture(scope="module", autouse=True)
def _write_report():
    yield
    target = os.environ.get("GHL_S4S_ROBUSTNESS_REPORT")
    if not target or not REPORT:
        return
    lines = [
        "# Faults and hostile input: what was tried, what happened",
        "",
        "Produced by `make robustness-report` from `tests/robustness/test_faults_and_hostile_input.py`;",
        "every row is a test that asserts the outcome shown, under both simulator profiles (the lenient",
        "and the strict reading of each unconfirmed API behaviour, `sandbox/profiles.py`). Crash, OAuth,",
        "daily-budget, 206 and secrets behaviour have their own tests in `tests/robustness/` (listed at",
        "the end).",
        "",
        "| kind | case | what was tried | observed outcome |",
        "|---|---|---|---|",
    ]
    for kind, case, tried, observed in dict.fromkeys(REPORT):  # each case once, whatever the profile
        lines.append(f"| {kind} | {case} | {tried} | {observed} |")
    lines += [
        "",
        "Also tested elsewhere in `tests/robustness/`: SIGKILL of the worker after extract, after validate,",
        "between a create POST and the id map, mid-load and after load, and (CRM tickets on) between a",
        "ticket's create and its id map and mid-stream (rerun: no loss, no duplicate customer, ticket or",
        "message, watermark right); a 206 with retryable items (dead letters, loaded next run); the GHL",
        "daily budget running low (clean stop, resume); OAuth expiry, rotation, a failed run after a",
        "refresh and a re-authorised token; a token lacking a scope (reported, not retried); secrets",
        "scanned in logs, XCom, files and errors.",
        "",
    ]
    Path(target).write_text("\n".join(lines), encoding="utf-8")


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setenv("GHL_S4S_HTTP_TIMEOUT_SECONDS", "1")


CLIENT_TIMEOUT_S = 1.0


def ghl_hook() -> GhlHook:
    return GhlHook(timeout=CLIENT_TIMEOUT_S, max_attempts=5, burst=10_000, rate_per_s=10_000)


def s4s_hook() -> Shift4ShopHook:
    return Shift4ShopHook(timeout=CLIENT_TIMEOUT_S, max_attempts=5, burst=10_000, rate_per_s=10_000)


def by_arrival(entries: list[dict]) -> list[dict]:
    """Request-log entries in the order the requests arrived (``ts``); the log itself appends an
    entry when its answer is sent, so a slow answer is logged after requests that came later."""
    return sorted(entries, key=lambda r: r["ts"])


def gaps(entries: list[dict]) -> list[float]:
    """Seconds between each request's arrival and the next one's."""
    return [b["ts"] - a["ts"] for a, b in zip(entries, entries[1:], strict=False)]


CLOCK_SLACK_S = 0.01  # server-side timestamps of two requests: allow for clock granularity


def extract(tmp_path, **kw) -> tuple[dict, list[str]]:
    summary = extract_contacts(ghl_hook(), data_dir=tmp_path, run_id="r", since="1970-01-01T00:00:00.000Z", **kw)
    return summary, [c["id"] for b in summary["batches"] for c in read_jsonl(b["path"])]


def contacts(n: int, seed: int = 71) -> list[dict]:
    return generate_contacts(n, seed=seed, dirty_share=0.0, location_id=LOCATION_ID)


def load_rows(tmp_path, state, records) -> dict:
    path = tmp_path / "t.jsonl"
    write_jsonl(path, transform_records(records, MAPPING))
    return load_customers([{"batch": 1, "path": str(path)}], hook=s4s_hook(), state=state, mapping=MAPPING, run_id="r")


# -- faults: GHL ---------------------------------------------------------------------------------
def test_429_storm_is_ridden_out(sims, tmp_path):
    sims.ghl_state.load_contacts(contacts(600))
    # Retry-After 2 s: longer than the client's own first backoffs (0.5 s, then 1 s, each plus up
    # to 1 s of jitter) and than its pause after a 429 without the header (1 s), so waits of 2 s
    # after the first two 429s are explained only by the header being honoured.
    sims.ghl_state.faults.set([{"action": "storm", "path": "/contacts/search", "count": 3, "retry_after": 2}])
    _, ids = extract(tmp_path)
    searches = by_arrival(sims.ghl_requests("/contacts/search"))
    assert len(ids) == 600 and [r["status"] for r in searches] == [429, 429, 429, 200, 200]
    waits = gaps(searches)[:3]  # after each 429, until the next request
    assert all(w >= 2 - CLOCK_SLACK_S for w in waits), waits
    record(
        "fault",
        "429 storm (GHL search)",
        "3 × 429 with Retry-After: 2",
        "waited the 2 s Retry-After before each retry (request log); all 600 extracted",
    )


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_on_reads_is_retried(sims, tmp_path, status):
    sims.ghl_state.load_contacts(contacts(50))
    sims.ghl_state.faults.set([{"action": "status", "status": status, "path": "/contacts/search", "count": 2}])
    _, ids = extract(tmp_path)
    assert len(ids) == 50 and [r["status"] for r in sims.ghl_requests("/contacts/search")] == [status, status, 200]
    record(
        "fault", f"{status} on a read", f"2 × {status} on POST /contacts/search", "retried with backoff, then succeeded"
    )


def test_timeout_on_a_read_is_retried(sims, tmp_path):
    sims.ghl_state.load_contacts(contacts(20))
    sims.ghl_state.faults.set([{"action": "timeout", "path": "/contacts/search", "count": 1, "seconds": 2}])
    _, ids = extract(tmp_path)
    assert len(ids) == 20
    # The fault fired once, on the search.
    assert [(f["action"], f["path"]) for f in sims.ghl_state.faults.fired()] == [("timeout", "/contacts/search")]
    # The slow answer is logged when the server finally sends it (2 s on), possibly after the retry.
    deadline = time.time() + 5
    while time.time() < deadline and len(sims.ghl_requests("/contacts/search")) < 2:
        time.sleep(0.05)
    searches = by_arrival(sims.ghl_requests("/contacts/search"))
    # Two searches: the slow one, and a retry. A client that waited the 2 s out would have had its
    # page from the first and never asked again; the retry came no sooner than the client's timeout.
    assert [r.get("fault") for r in searches] == ["timeout", None] and searches[1]["status"] == 200
    assert gaps(searches)[0] >= CLIENT_TIMEOUT_S - CLOCK_SLACK_S, searches
    record(
        "fault", "timeout on a read", "search answers after 2 s (client timeout 1 s)", "timed out, retried, succeeded"
    )


def test_latency_is_tolerated(sims, tmp_path):
    sims.ghl_state.load_contacts(contacts(20))
    sims.ghl_state.faults.set([{"action": "latency", "seconds": 0.5}])
    _, ids = extract(tmp_path)
    assert len(ids) == 20
    record("fault", "latency", "0.5 s added to every answer", "slower, nothing lost")


@pytest.mark.parametrize("action", ["malformed", "truncated"])
def test_non_json_or_cut_off_answers_are_retried(sims, tmp_path, action):
    sims.ghl_state.load_contacts(contacts(30))
    sims.ghl_state.faults.set([{"action": action, "path": "/contacts/search", "count": 1}])
    _, ids = extract(tmp_path)
    assert len(ids) == 30 and len(sims.ghl_requests("/contacts/search")) == 2
    what = "an HTML page with 200" if action == "malformed" else "the first half of the JSON body"
    record("fault", f"{action} response", what, "treated as a broken answer: retried, succeeded")


def test_empty_page_that_still_has_results_fails_the_extract(sims, tmp_path):
    sims.ghl_state.load_contacts(contacts(700))
    sims.ghl_state.faults.set([{"action": "empty_page", "path": "/contacts/search", "after": 1, "count": 10}])
    with pytest.raises(ApiError, match="extract incomplete"):
        extract(tmp_path)
    record(
        "fault",
        "empty page with a cursor",
        "page 2 empty although `total` says 700",
        'extract fails ("search reported 700, walk gave 500"); nothing loaded, watermark unmoved, task retried',
    )


def test_repeated_cursor_is_caught(sims, tmp_path):
    sims.ghl_state.load_contacts(contacts(1200))
    sims.ghl_state.faults.set([{"action": "repeat_page", "path": "/contacts/search", "after": 1, "count": 10}])
    with pytest.raises(ApiError, match="cursor it already returned"):
        extract(tmp_path)
    assert len(sims.ghl_requests("/contacts/search")) == 2  # caught on the first repeat, no endless loop
    record(
        "fault",
        "repeated cursor",
        "page 2 repeats page 1 (the server ignores searchAfter)",
        "walk stops with a clear error; no endless loop, no duplicates",
    )


# -- faults: Shift4Shop writes -------------------------------------------------------------------
def test_commit_then_timeout_on_create_never_duplicates(sims, state, tmp_path):
    started = time.time()
    sims.s4s_state.faults.set(
        [{"action": "commit_then_timeout", "method": "POST", "path": "/Customers", "count": 1, "seconds": 2}]
    )
    first = load_rows(tmp_path, state, contacts(5))
    # What the store committed before the answer was lost is found by e-mail; what it did not (a
    # store that refuses arrays) waits for the next run, looked up again before it is sent.
    second = load_rows(tmp_path, state, [])
    emails = [c["Email"].lower() for c in sims.customers()]
    assert len(emails) == len(set(emails)) == 5 and first["created"] + second["created"] == 5
    deadline = time.time() + 5  # the faulted answer is logged when the server finally sends it
    while time.time() < deadline and not [r for r in sims.s4s_requests("POST") if r["ts"] >= started]:
        time.sleep(0.1)
    posts = [r for r in sims.s4s_requests("POST") if r["ts"] >= started]
    if sims.profile == "lenient":  # the array committed: found by e-mail, never re-sent
        assert len(posts) == 1 and first["settled_by_lookup"] == 5
    else:  # the array was refused (nothing committed): one create each on the next run
        assert len(posts) == 1 + 5 and first["dead_lettered"] == 5
    record(
        "fault",
        "commit-then-timeout (create)",
        "array POST commits (or is refused), answer never arrives",
        "looked up by email: found → mapped; not found → looked up again next run, then created once",
    )


def test_gateway_timeout_on_create_is_checked_before_resending(sims, state, tmp_path):
    sims.s4s_state.faults.set([{"action": "drop", "method": "POST", "path": "/Customers", "count": 1, "seconds": 0.2}])
    first = load_rows(tmp_path, state, contacts(5))
    # A 504 may come from a gateway while the store still works on the request: nothing is sent
    # again this run; the next run looks each up (absent) and creates it once.
    assert first["created"] == 0 and first["dead_lettered"] == 5 and sims.customers() == []
    second = load_rows(tmp_path, state, [])
    assert second["created"] == 5 and len(sims.customers()) == 5
    assert state.pending("contacts") == {}
    record(
        "fault",
        "504 on create (not committed)",
        "array POST answered 504 without writing",
        "not re-sent that run; next run looked up by email (absent), then created once each",
    )


def test_429_storm_on_the_store(sims, state, tmp_path):
    started = time.time()
    # One plan with both rules (a second faults.set() would replace the first).
    sims.s4s_state.faults.set(
        [
            {"action": "storm", "method": "POST", "count": 1, "retry_after": 1},
            {"action": "storm", "method": "PUT", "count": 3, "retry_after": 1},
        ]
    )
    recs = contacts(8)
    created = load_rows(tmp_path, state, recs)
    for c in recs:
        c["city"] = "Riga"
    out = load_rows(tmp_path, state, recs)
    assert created["created"] == 8 and len(sims.customers()) == 8  # the refused create was sent again, once
    assert out["updated"] == 8 and {c["BillingCity"] for c in sims.customers()} == {"Riga"}
    # Each rule fired as many times as it says: 1 × 429 on the create, 3 × 429 on the bulk update.
    fired = [(f["rule"], f["method"]) for f in sims.s4s_state.faults.fired()]
    assert fired == [(0, "POST"), (1, "PUT"), (1, "PUT"), (1, "PUT")]
    posts = by_arrival([r for r in sims.s4s_requests("POST") if r["ts"] >= started])
    puts = by_arrival([r for r in sims.s4s_requests("PUT") if r["ts"] >= started])
    # The array POST: 429, then sent again (lenient: created; strict: refused, then one at a time).
    expected = [429, 201] if sims.profile == "lenient" else [429, 400] + [201] * 8
    assert [r["status"] for r in posts] == expected
    assert [r["status"] for r in puts] == [429, 429, 429, 200]
    waits = gaps(posts)[:1] + gaps(puts)[:3]
    assert all(w >= 1 - CLOCK_SLACK_S for w in waits), waits
    record(
        "fault",
        "429 storm (store)",
        "1 × 429 on the create POST, 3 × 429 on the bulk PUT, Retry-After: 1",
        "retried after Retry-After; all 8 created once and updated once",
    )


def test_steady_state_spends_the_budget_without_tripping_it(sims, state, tmp_path, monkeypatch):
    sims.s4s_state.configure(rate_limit=True, bucket_size=50, leak_per_s=20.0)
    hook = Shift4ShopHook(timeout=5, max_attempts=3, burst=40, rate_per_s=20.0)
    path = tmp_path / "t.jsonl"
    write_jsonl(path, transform_records(contacts(60), MAPPING))
    monkeypatch.setenv("GHL_S4S_SHIFT4SHOP_BULK_CREATE", "off")
    load_customers(
        [{"batch": 1, "path": str(path)}], hook=hook, state=state, mapping=MAPPING, run_id="r", bulk_create="off"
    )
    statuses = [r["status"] for r in sims.s4s_requests()]
    assert statuses.count(429) == 0 and len(sims.customers()) == 60
    record(
        "fault",
        "leaky bucket in steady state",
        "60 single creates against a 50-deep bucket",
        "0 × 429: the client's bucket (40, same rate) stays under the server's",
    )


# -- hostile input -------------------------------------------------------------------------------
def _validate(tmp_path, state, records) -> dict[str, str]:
    path = tmp_path / "in.jsonl"
    write_jsonl(path, records)
    validate_batch(
        {"batch": 1, "path": str(path)},
        state=state,
        data_dir=tmp_path,
        expectations_dir=ROOT / "include" / "expectations",
        run_id="r",
    )
    return {q["source_id"]: q["reason"].split(":")[0] for q in state.open_quarantine("contacts")}


@pytest.mark.parametrize(
    ("case", "change", "reason"),
    [
        ("missing email", {"email": None}, "missing_email"),
        ("invalid email", {"email": "john at example"}, "invalid_email"),
        ("email longer than the store accepts", {"email": "x" * 95 + "@example.com"}, "email_too_long"),
        ("invalid date", {"dateUpdated": "31/02/2026"}, "invalid_date_updated"),
        ("missing id", {"id": None}, "missing_id"),
    ],
)
def test_hostile_records_are_quarantined_with_a_reason(tmp_path, state, case, change, reason):
    rec = {**contacts(1)[0], **change}
    reasons = _validate(tmp_path, state, [contacts(2, seed=72)[1], rec])
    assert list(reasons.values()) == [reason]
    shown = str(change) if len(str(change)) < 50 else str(change)[:45] + "…"
    record("input", case, f"`{shown}`", f"quarantined: `{reason}`; the other record loads")


def test_same_email_twice_in_other_case(state, sims, tmp_path):
    a, b = contacts(2)
    b["email"] = a["email"].upper()
    out = load_rows(tmp_path, state, [a, b])
    assert out["created"] == 1 and out["load_quarantined"] == 1 and len(sims.customers()) == 1
    record(
        "input",
        "one email on two contacts, other case",
        "`B.email = A.email.upper()`",
        "first becomes the customer; second quarantined `duplicate_email` naming the first",
    )


def test_unicode_emoji_rtl_and_control_characters(state, sims, tmp_path):
    recs = contacts(3)
    recs[0].update(firstName="Zoë 🚀", lastName="Ørsted-Łukasz")
    recs[1].update(firstName="محمد", lastName="כהן")
    recs[2].update(firstName="Ja\x00ne\x07", lastName="Do\u200be\x1f")
    load_rows(tmp_path, state, recs)
    by_email = {c["Email"].lower(): c for c in sims.customers()}
    got = [by_email[r["email"].lower()] for r in recs]
    assert (got[0]["BillingFirstName"], got[0]["BillingLastName"]) == ("Zoë 🚀", "Ørsted-Łukasz")
    assert (got[1]["BillingFirstName"], got[1]["BillingLastName"]) == ("محمد", "כהן")
    assert got[2]["BillingFirstName"] == "Jane" and "\x1f" not in got[2]["BillingLastName"]
    record(
        "input",
        "unicode, emoji, right-to-left, NUL and control characters",
        "names in Arabic, Hebrew, with emoji, NUL, BEL",
        "stored exactly (NFC); NUL and control characters removed",
    )


def test_fields_longer_than_the_store_accepts(state, sims, tmp_path):
    rec = contacts(1)[0]
    rec.update(firstName="🚀" * 40, address1="x" * 400, city="c" * 150, postalCode="9" * 40)
    load_rows(tmp_path, state, [rec])
    [c] = sims.customers()
    # 40 emoji are 80 UTF-16 units: 25 whole emoji fill the 50 (a bound alone would pass 1 emoji, or none).
    assert c["BillingFirstName"] == "🚀" * 25 and len(c["BillingAddress1"]) == 255
    assert len(c["BillingCity"]) == 100 and len(c["BillingZipCode"]) == 20
    record(
        "input",
        "fields longer than the store accepts",
        "40 emoji as a first name, 400-char address",
        "cut to the store's limits counted in UTF-16 units (an emoji is 2), never split",
    )


def test_odd_phone_formats(state, sims, tmp_path):
    recs = contacts(3)
    recs[0].update(phone="(415) 555-0123", country="US")
    recs[1].update(phone="020 7946 0958", country="GB")
    recs[2].update(phone="call me maybe", country="US")
    load_rows(tmp_path, state, recs)
    phones = {c["Email"].lower(): c["BillingPhoneNumber"] for c in sims.customers()}
    assert [phones[r["email"].lower()] for r in recs] == ["+14155550123", "+442079460958", "call me maybe"]
    record(
        "input",
        "odd phone formats",
        "`(415) 555-0123`, `020 7946 0958` (GB), `call me maybe`",
        "E.164 where it parses with the contact's country; otherwise kept, cleaned",
    )


def test_future_dates_do_not_push_the_watermark_past_now(sims, state, tmp_path, monkeypatch):
    """A real extract and load of a contact stamped 2099, then the run's watermark commit."""
    from datetime import UTC, datetime, timedelta

    from ghl_shift4shop.sync import commit_watermark
    from ghl_shift4shop.timeutil import format_ts, parse_ts

    monkeypatch.setenv("GHL_S4S_WATERMARK_LAG_SECONDS", "300")
    recs = contacts(5)
    recs[2]["dateUpdated"] = "2099-01-01T00:00:00.000Z"
    sims.ghl_state.load_contacts(recs)
    summary, ids = extract(tmp_path)
    loaded = load_rows(tmp_path, state, [c for b in summary["batches"] for c in read_jsonl(b["path"])])
    assert sorted(ids) == sorted(c["id"] for c in recs) and loaded["created"] == 5  # the 2099 one too
    assert loaded["newest_date_updated"] == "2099-01-01T00:00:00.000Z"

    window = {"mode": "incremental", "stream": "contacts", "since": "1970-01-01T00:00:00.000Z", "run_id": "r"}
    commit_watermark(window, summary, loaded)
    mark = state.get_watermark("contacts")
    assert mark == format_ts(parse_ts(summary["started_at"]) - timedelta(seconds=300))
    assert parse_ts(mark) < datetime.now(UTC)
    record(
        "input",
        "future dateUpdated",
        "a contact stamped 2099",
        "loaded; the watermark stays at extract start − lag, so later changes are not skipped",
    )


def test_unknown_extra_fields_are_ignored(state, sims, tmp_path):
    rec = {**contacts(1)[0], "brandNewField": {"nested": [1, 2]}, "x-internal": "?"}
    out = load_rows(tmp_path, state, [rec])
    assert out["created"] == 1
    record(
        "input",
        "unknown extra fields",
        "`brandNewField`, `x-internal` on a contact",
        "ignored by the mapping; the contact loads",
    )


@pytest.mark.usefixtures("airflow_db")
def test_html_script_and_a_70000_character_note(sims, sync_dag, tmp_path, monkeypatch):
    """Through a whole run with notes tickets on: what the store holds for hostile and oversized
    notes (as sent, or as a store that normalises whitespace keeps them), and the counter."""
    from tests.builders import include_with_crm
    from tests.conftest import SECURE_URL
    from tests.e2e.test_sync_dag import by_ghl_id, run, summary_of

    include_with_crm(tmp_path, monkeypatch, tickets=("notes",))
    recs = contacts(3)
    sims.ghl_state.load_contacts(recs)
    hostile = '<p onclick="steal()">Hi <script>alert(1)</script><b>there</b><img src=x onerror=y></p>'
    long_plain = "n" * 70_000
    # 40,000 characters, 80,000 UTF-16 units: over the store's limit only when counted as it counts.
    long_astral = "🚀" * 40_000
    bodies = [(recs[0], long_plain), (recs[0], hostile), (recs[1], long_astral)]
    sims.ghl_state.load_notes(
        {"id": f"note{i:016d}", "contactId": c["id"], "body": body, "dateAdded": f"2026-11-0{i + 1}T10:00:00.000Z"}
        for i, (c, body) in enumerate(bodies)
    )
    dr = run(sync_dag)
    assert dr.state == "success"

    owner = {cust["CustomerID"]: cid for cid, cust in by_ghl_id(sims.customers()).items()}
    stored: dict[str, list[str]] = {}
    for ticket in sims.s4s_state.all_tickets(SECURE_URL):
        stored.setdefault(owner[ticket["CustomerID"]], []).extend(m["Message"] for m in ticket["CrmMessageList"])
    assert {cid: len(msgs) for cid, msgs in stored.items()} == {recs[0]["id"]: 2, recs[1]["id"]: 1}
    [plain] = [m for m in stored[recs[0]["id"]] if m.startswith("n")]
    [html] = [m for m in stored[recs[0]["id"]] if m.startswith("<p")]
    [astral] = stored[recs[1]["id"]]

    assert "script" not in html and "onclick" not in html and "onerror" not in html and "<b>there</b>" in html

    def units(text: str) -> int:  # the store counts UTF-16 code units (an emoji is 2)
        return len(text.encode("utf-16-le")) // 2

    cut_messages = []
    for message, body in ((plain, long_plain), (astral, long_astral)):
        # Within the store's limit as the store counts, and saying it was cut.
        assert units(message) <= 65_535, units(message)
        kept, _, marker = message.rpartition("[")
        kept = kept.rstrip()  # a line break before the marker (or the space a normalising store made of it)
        assert marker.startswith("…cut to fit") and marker.endswith("the full note is in HighLevel]"), marker
        # The note's beginning, as much of it as fits beside the marker.
        assert body.startswith(kept) and units(kept) > 65_000, units(kept)
        cut_messages.append(message)
    assert summary_of(dr).get("messages_cut", 0) == len(cut_messages) == 2  # the run summary omits zeros
    record("input", "HTML and script in notes", "`<script>`, `onclick`, `onerror`", "removed (nh3); safe markup kept")
    record(
        "input",
        "a 70,000-character note",
        "note bodies of 70,000 characters and of 40,000 emoji (80,000 UTF-16 units)",
        "stored cut to 65,535 UTF-16 units with a line saying so; counted as `messages_cut`",
    )


def test_report_lists_every_case():
    """docs/robustness.md is generated from this module; it must not fall behind it."""
    text = REPORT_FILE.read_text(encoding="utf-8")
    for marker in (
        "429 storm (GHL search)",
        "commit-then-timeout (create)",
        "repeated cursor",
        "empty page with a cursor",
        "missing email",
        "a 70,000-character note",
        "future dateUpdated",
    ):
        assert marker in text, f"{marker!r} missing from docs/robustness.md: run `make robustness-report`"


def test_ghl_budget_is_spent_but_never_tripped_by_concurrent_calls(sims):
    """8 threads share one budget. Scaled 10x down in time: the server allows 10 requests per 1 s
    window; the client's bucket (1 + 9/s) never puts more than 10 into any second."""
    from ghl_shift4shop.children import fetch_notes

    recs = contacts(60)
    sims.ghl_state.load_contacts(recs)
    sims.ghl_state.configure(rate_limit=True, burst_max=10, burst_window_ms=1000)
    hook = GhlHook(timeout=5, max_attempts=3, burst=1, rate_per_s=9)
    started = time.monotonic()
    fetch_notes(hook, [c["id"] for c in recs], None, workers=8)
    elapsed = time.monotonic() - started
    statuses = [r["status"] for r in sims.ghl_requests("/contacts/")]
    assert len(statuses) == 60 and statuses.count(429) == 0
    record(
        "fault",
        "GHL burst limit, 8 concurrent workers",
        "60 calls from 8 threads against 10 per window (scaled to 1 s)",
        f"0 × 429; {60 / elapsed:.1f} calls/s of the 10/s allowed",
    )


@pytest.mark.parametrize("window", ["fixed", "sliding"])
def test_ghl_default_budget_is_not_tripped_by_either_window_kind(sims, window):
    """The default GHL budget (10 in any 1.02 s, 98 per 10 s) against both readings of GHL's
    undocumented window kind, time-scaled x5 (the server's 100 per 2 s; the client's rate x5, its
    window /5): 8 threads fetching notes as the sync does, from the budget alone (the
    X-RateLimit-Remaining brake is off here: it would hide a budget that is too fast).

    At most one 429 in the 300 calls (0.3%; the issue's bound is 1%), allowing for one thread held
    up between taking its slot and sending. Seen: 0 at 9.8/s (48.5 calls/s of the 49 allowed).
    Every 429 holds all threads for a second, so even a budget that is too fast stays near 1%:
    at 11/s (110 per window) 3 in 303, at 13/s 2–3; both fail here."""
    import dataclasses

    from ghl_shift4shop.children import fetch_notes
    from ghl_shift4shop.settings import Settings

    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    scale = 5
    recs = contacts(300, seed=73)
    sims.ghl_state.load_contacts(recs)
    sims.ghl_state.configure(rate_limit=True, burst_max=100, burst_window_ms=10_000 // scale, rate_window=window)
    hook = GhlHook(
        timeout=5,
        max_attempts=6,
        burst=defaults["ghl_burst"],
        rate_per_s=defaults["ghl_rate_per_s"] * scale,
        window_s=defaults["ghl_window_seconds"] / scale,
    )
    hook.budget.observe_remaining = lambda *a, **k: None  # the budget alone
    fetch_notes(hook, [c["id"] for c in recs], None, workers=8)
    log = sims.ghl_requests("/contacts/")
    statuses = [r["status"] for r in log]
    ts = sorted(r["ts"] for r in log)
    print(f"{window}: {len(log)} calls, {statuses.count(429)} × 429, {len(log) / (ts[-1] - ts[0]):.1f}/s")
    assert statuses.count(200) == 300
    assert statuses.count(429) <= 1, f"{statuses.count(429)} × 429 in {len(statuses)} calls"


def test_ghl_slows_down_only_when_the_server_has_less_left_than_our_headroom(sims):
    """X-RateLimit-Remaining is read against the room the budget leaves: with 98 of 100 per 10 s
    ours, 2 left is still only us; 1 left means someone else spends the location's allowance too,
    and every process holds off for the shortfall at the sustained rate (1/9.8 s)."""
    import requests

    hook = GhlHook(timeout=5, burst=10, rate_per_s=9.8, window_s=10)

    def answer(remaining: int, interval_ms: int | None = 10_000) -> requests.Response:
        resp = requests.Response()
        resp.status_code = 200
        resp.headers.update({"X-RateLimit-Max": "100", "X-RateLimit-Remaining": str(remaining)})
        if interval_ms:
            resp.headers["X-RateLimit-Interval-Milliseconds"] = str(interval_ms)
        return resp

    assert hook.low_water(answer(50)) == 2
    for left in (50, 3, 2):
        hook.observe(answer(left))
        assert hook.budget._hold.remaining() == 0, left
    hook.observe(answer(1))
    assert 0 < hook.budget._hold.remaining() <= 1 / 9.8
    # Without the window's length: a tenth of the maximum, at most the burst (as before).
    assert hook.low_water(answer(50, interval_ms=None)) == 10
    # A slower budget leaves more room: 9/s keeps 10 of 100 (the old default's low-water mark).
    assert GhlHook(timeout=5, burst=10, rate_per_s=9, window_s=10).low_water(answer(50)) == 10


@pytest.mark.parametrize(
    ("status", "message", "gone"),
    [
        (None, None, True),  # the simulator's own answer for a deleted contact
        (404, "Contact with id {id} not found", True),  # the v3 reading of "not found"
        (400, "Bad Request", False),  # a refusal that says nothing about the contact
        (404, "Cannot GET /contacts/{id}", False),  # an unknown route, not an unknown contact
        (404, "Not Found", False),  # a gateway's answer: says nothing of the contact
        (404, "404 page not found", False),
        (404, "Route GET:/contacts/{id} not found", False),  # a route answer quoting the path
        (404, "The requested URL /contacts/{id} was not found on this server.", False),
        (400, "Location not found for this contact", False),  # not found, but not the contact
    ],
)
def test_only_a_not_found_answer_counts_as_a_deleted_contact(sims, status, message, gone):
    from ghl_shift4shop.extract import full_contacts

    contact = generate_contacts(2, seed=31, dirty_share=0.0, location_id=LOCATION_ID)
    sims.ghl_state.load_contacts(contact)
    target, kept = contact[0]["id"], contact[1]["id"]
    if status is None:
        sims.ghl_state.delete_contact(target)
    else:
        path = f"/contacts/{target}$"
        sims.ghl_state.faults.set(
            [{"action": "status", "status": status, "message": message.format(id=target), "path": path}]
        )
    items = [{"id": target}, {"id": kept}]  # search items without names: each is read in full
    if gone:
        out, fetched, vanished = full_contacts(ghl_hook(), items, 2)
        assert [c["id"] for c in out] == [kept] and (fetched, vanished) == (2, 1)
        observed = "counted as deleted since the search: skipped, the rest read"
    else:
        with pytest.raises(ApiError) as caught:
            full_contacts(ghl_hook(), items, 2)
        assert caught.value.status == status
        observed = "an error (the task fails and retries): the contact is never taken for deleted"
    tried = f"GET /contacts/{{id}} answers {status or 400} {message or 'Contact with id … not found'}"
    record("hostile", "full-contact read refused", tried, observed)
