"""reconcile.yaml: the shipped file is the documented defaults; mistakes are refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from ghl_shift4shop.reconcile_policy import (
    ACTIONS,
    ReconcilePolicy,
    ReconcilePolicyError,
    load_policy,
    parse_policy,
)

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_policy_is_the_documented_defaults():
    policy = load_policy(ROOT / "include" / "mappings")
    assert policy.actions == {
        "missing_in_store": "repair",
        "drift": "repair",
        "tasks_changed": "repair",
        "deleted_in_ghl": "disable",
        "reappeared": "enable",
        "duplicate_email": "report",
        "dangling_id_map": "report",
    }
    assert policy == ReconcilePolicy.defaults()


def test_a_kind_left_out_keeps_its_default():
    assert parse_policy({"deleted_in_ghl": "delete"}).actions == {
        **ReconcilePolicy.defaults().actions,
        "deleted_in_ghl": "delete",
    }
    assert parse_policy(None) == ReconcilePolicy.defaults()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"deleted_in_gh": "disable"}, "unknown finding kind(s) deleted_in_gh"),
        ({"duplicate_email": "delete"}, "duplicate_email: action 'delete' is not one of report"),
        ({"drift": "disable"}, "drift: action 'disable' is not one of report, repair"),
        (["drift"], "expected a mapping"),
    ],
)
def test_mistakes_are_refused_with_what_is_allowed(doc, message):
    with pytest.raises(ReconcilePolicyError, match=None) as err:
        parse_policy(doc)
    assert message in str(err.value)


def test_unreadable_file_is_a_clear_error(tmp_path):
    (tmp_path / "reconcile.yaml").write_text("drift: [repair\n", encoding="utf-8")
    with pytest.raises(ReconcilePolicyError, match="reconcile.yaml"):
        load_policy(tmp_path)
    assert set(ACTIONS) >= {"deleted_in_ghl", "duplicate_email"}
