"""``include/mappings/reconcile.yaml``: what the nightly reconciliation does with each kind of finding.

This module owns the finding kinds, the actions each one allows, the defaults, and the check of the
file (an unknown kind or an action the kind does not allow is refused with a clear error, never
ignored: a typo must not silently turn a repair into a report, or a report into a deletion).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from ghl_shift4shop.errors import PermanentError

POLICY_FILE = "reconcile.yaml"

# kind → (allowed actions, default). "report" lists the finding and changes nothing.
ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "missing_in_store": (("report", "repair"), "repair"),
    "drift": (("report", "repair"), "repair"),
    "tasks_changed": (("report", "repair"), "repair"),
    "deleted_in_ghl": (("report", "disable", "delete"), "disable"),
    "reappeared": (("report", "enable"), "enable"),
    "duplicate_email": (("report",), "report"),
    "dangling_id_map": (("report", "forget"), "report"),
}
# Findings that are always only reported (not a policy choice): the counts did not add up.
REPORT_ONLY_KINDS = ("count_mismatch",)
KINDS = (*ACTIONS, *REPORT_ONLY_KINDS)


class ReconcilePolicyError(PermanentError, ValueError):
    """reconcile.yaml is malformed: fix the file."""


@dataclass(frozen=True)
class ReconcilePolicy:
    actions: dict[str, str]

    def action(self, kind: str) -> str:
        return self.actions.get(kind, "report")

    @classmethod
    def defaults(cls) -> ReconcilePolicy:
        return cls({kind: default for kind, (_, default) in ACTIONS.items()})


def parse_policy(doc: object, where: str = POLICY_FILE) -> ReconcilePolicy:
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ReconcilePolicyError(f"{where}: expected a mapping of finding kind → action")
    unknown = sorted(str(k) for k in doc if k not in ACTIONS)
    if unknown:
        raise ReconcilePolicyError(
            f"{where}: unknown finding kind(s) {', '.join(unknown)}; the kinds are {', '.join(ACTIONS)}"
        )
    actions = ReconcilePolicy.defaults().actions
    for kind, action in doc.items():
        allowed = ACTIONS[kind][0]
        if action not in allowed:
            raise ReconcilePolicyError(f"{where}: {kind}: action {action!r} is not one of {', '.join(allowed)}")
        actions[kind] = action
    return ReconcilePolicy(actions)


def load_policy(mappings_dir: Path, overrides: Path | None = None) -> ReconcilePolicy:
    """The policy in ``<mappings_dir>/reconcile.yaml`` (or ``overrides``' one); kinds the file leaves out
    keep their default."""
    from ghl_shift4shop.settings import mapping_file

    path = mapping_file(mappings_dir, overrides, POLICY_FILE)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ReconcilePolicyError(f"{path}: {exc}") from exc
    return parse_policy(doc, str(path))
