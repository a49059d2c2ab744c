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
