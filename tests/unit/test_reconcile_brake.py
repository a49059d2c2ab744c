"""The reconcile brake's arithmetic (the e2e tests run it over HTTP; these pin its edges)."""

from __future__ import annotations

from ghl_shift4shop.reconcile import _brake, finding


def scan(truncated=(), count=100) -> dict:
    read = {"store_count": count, "store_customers": count, "ghl_rows": 0, "ghl_total": 0}
    return {"truncated": list(truncated), "read": read}


def removals(n: int, action: str = "disable") -> list[dict]:
    return [finding("deleted_in_ghl", action, source_id=f"c{i}", target_id=str(i)) for i in range(n)]


def test_up_to_the_share_is_allowed_above_it_nothing():
    assert _brake(removals(2), scan(), 0.02) == (set(), None)  # exactly 2%: allowed
    braked, why = _brake(removals(3), scan(), 0.02)
    assert braked == {"deleted_in_ghl"} and "3 of 100" in why
    assert _brake(removals(3, "delete"), scan(), 0.02)[0] == {"deleted_in_ghl"}
    assert _brake(removals(3, "report"), scan(), 0.02) == (set(), None)  # reporting removes nothing


def test_a_short_ghl_answer_stops_removals_and_forgets_and_fails_even_with_nothing_to_remove():
    forget = [finding("dangling_id_map", "forget", source_id="x")]
    braked, why = _brake(removals(1) + forget, scan(["ghl"]), 0.5)
    assert braked == {"deleted_in_ghl", "dangling_id_map", "count_mismatch"} and "short" in why
    assert _brake([], scan(["ghl"]), 0.5)[0] == {"count_mismatch"}


def test_a_short_store_answer_stops_every_repair():
    braked, why = _brake([finding("drift", "repair", source_id="x")], scan(["store"]), 0.5)
    assert braked == {"*"} and "nothing is repaired" in why


def test_a_short_answer_is_counted_in_distinct_contacts_not_rows():
    from ghl_shift4shop.reconcile import count_findings
    from ghl_shift4shop.reconcile_policy import ReconcilePolicy

    # 100 match; the walk delivered 100 items, but one contact twice (changed during the walk).
    read = {"ghl_contacts": 99, "ghl_rows": 100, "ghl_total": 100, "store_customers": 5, "store_count": 5, "tasks": 0}
    found, truncated = count_findings(read, ReconcilePolicy.defaults())
    assert truncated == ["ghl"]
    assert [(f["ghl_value"], f["store_value"]) for f in found] == [(100, 99)]
    read.update(ghl_contacts=100, ghl_rows=101)
    assert count_findings(read, ReconcilePolicy.defaults()) == ([], [])
