"""`make bench`'s counting, on a tiny sync: the bench's call counts are the simulators' logs, and the
sync's own counters (the run summary) agree with them call for call.

The bench itself starts the simulators and the sync in subprocesses (minutes); this runs the same
``child_sync`` (the sync's task functions in the DAG's order) in this process against the test
simulators, then the bench's tally and table.
"""

from __future__ import annotations

from scripts import bench
from tests.builders import seed_ghl
from tests.conftest import LOCATION_ID


def test_bench_counts_are_the_simulators_logs_and_match_the_syncs_counters(sims, capsys):
    _, crm = seed_ghl(sims, 30, location_id=LOCATION_ID)
    sims.clear_logs()

    answer = bench.child_sync("smoke")

    ghl = bench.tally("ghl", sims.ghl_requests())
    s4s = bench.tally("s4s", sims.s4s_requests())
    summary = answer["summary"]
    assert summary["failed_streams"] == "none" and summary["created"] == 30
    # The bench reads the servers' logs; the sync counts its own requests: they agree exactly.
    assert ghl["total"] == summary["calls_ghl"] > 30  # a notes call per contact, and more
    assert s4s["total"] == summary["calls_shift4shop"] > 0
    assert sum(ghl["kinds"].values()) == ghl["total"] and sum(s4s["kinds"].values()) == s4s["total"]
    assert ghl["kinds"]["notes"] == 30 and ghl["kinds"]["search"] == 1
    assert s4s["kinds"]["POST customers"] == 1  # 30 new customers in one array POST

    lb = bench.lower_bounds(30, 30, len(crm["tasks"]), len(crm["calendars"]))
    assert lb["ghl_kinds"]["notes"] == 30 and lb["s4s"] == 1
    assert ghl["total"] >= lb["ghl"] and s4s["total"] >= lb["s4s"]

    phase = {"sync": {"ghl": ghl, "s4s": s4s}, "lb": lb, "wall": 1.0, "rss": 1.0, "stages": {}, "load": "load -"}
    bench.print_report({"calls": [{"n": 30, "first": phase, "delta": {**phase, "changed": 30}}]})
    row = next(line for line in capsys.readouterr().out.splitlines() if " first " in line)
    per_thousand = [f"{1000 * ghl['total'] / 30:,.0f}", f"{1000 * lb['ghl'] / 30:,.0f}"]
    assert row.split()[3:5] == per_thousand, row


def test_bench_phase_use_splits_long_phases_by_kind():
    """Per-phase budget use: a run of one kind of call is a phase; kinds that alternate in one
    period (the store's array POST and its read-back) are one phase; short runs are left out."""

    def calls(kind_path: str, method: str, start: float, n: int, per_s: float) -> list[dict]:
        return [
            {"ts": start + i / per_s, "path": kind_path, "method": method, "status": 200, "query": ""} for i in range(n)
        ]

    log = calls("/contacts/c1/notes", "GET", 0.0, 571, 9.5)  # 60 s of notes at 9.5/s
    log += calls("/contacts/search", "POST", 61.0, 5, 9.5)  # too short to be a phase
    log += calls("/locations/x/tasks/search", "POST", 70.0, 295, 9.8)  # 30 s of task searches
    log[-1]["status"] = 429
    phases = bench.phase_use("ghl", log, rate=10.0, window=10.0, idle_gap=1.0)
    assert [(p["kinds"], p["calls"], p["429"]) for p in phases] == [("notes", 571, 0), ("tasks", 295, 1)]
    assert [round(p["use"], 3) for p in phases] == [0.95, 0.98]
    assert phases[0]["idle_s"] == 0 and round(phases[0]["max_gap_s"], 3) == round(1 / 9.5, 3)

    store = calls("/v1/Customers", "POST", 0.0, 40, 2.0) + calls("/v1/Customers/count", "GET", 0.25, 40, 2.0)
    phases = bench.phase_use("s4s", store, rate=4.0, window=5.0, idle_gap=10.0)
    assert [p["kinds"] for p in phases] == ["POST customers+GET customers"]


def test_bench_notes_off_is_a_tenant_mappings_override_and_drops_only_the_notes_calls(sims, tmp_path, monkeypatch):
    """``--notes-off``: the default tenant reads crm_to_store.yaml from an override folder that
    differs from include/mappings' only in ``notes: enabled: false``; the sync then makes no notes
    call and everything else as before, and the bench's bound counts no notes calls."""
    import yaml

    from scripts.bench import ROOT

    _, crm = seed_ghl(sims, 30, location_id=LOCATION_ID)
    sims.clear_logs()
    tenants = bench.notes_off_tenants(tmp_path / "work")
    folder = tmp_path / "work" / "mappings-notes-off"
    assert [p.name for p in folder.iterdir()] == ["crm_to_store.yaml"]
    base = yaml.safe_load((ROOT / "include" / "mappings" / "crm_to_store.yaml").read_text())
    override = yaml.safe_load((folder / "crm_to_store.yaml").read_text())
    assert base["notes"]["enabled"] is True and override["notes"]["enabled"] is False
    assert {**override, "notes": {**override["notes"], "enabled": True}} == base
    monkeypatch.setenv("GHL_S4S_TENANTS_FILE", str(tenants))

    summary = bench.child_sync("smoke-notes-off")["summary"]

    ghl = bench.tally("ghl", sims.ghl_requests())
    assert summary["failed_streams"] == "none" and summary["created"] == 30
    assert ghl["total"] == summary["calls_ghl"] and "notes" not in ghl["kinds"]
    assert ghl["kinds"]["search"] == 1 and ghl["kinds"]["tasks"] >= 1 and ghl["kinds"]["calendars"] >= 1
    lb = bench.lower_bounds(30, 30, len(crm["tasks"]), len(crm["calendars"]), notes=False)
    assert lb["ghl_kinds"]["notes"] == 0 and ghl["total"] >= lb["ghl"]
    bench.check_logs_complete({"ghl": ghl, "s4s": bench.tally("s4s", sims.s4s_requests())}, summary)
    assert "mismatch" not in ghl
