"""Tag rules: which Shift4Shop customer group a contact's GHL tags put it in (tag_groups.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from ghl_shift4shop.errors import PermanentError


class TagRulesError(PermanentError, ValueError):
    """tag_groups.yaml is malformed."""


@dataclass(frozen=True)
class TagRules:
    rules: tuple[tuple[str, str], ...]  # (lower-cased tag, group name), in priority order
    no_match: str = "keep"

    def group_for(self, tags) -> str | None:
        """The winning group name; "" means "no group" (clear); None means leave the group alone."""
        present = {str(t).strip().lower() for t in (tags or []) if str(t).strip()}
        for tag, group in self.rules:
            if tag in present:
                return group
        return "" if self.no_match == "clear" else None

    @property
    def group_names(self) -> list[str]:
        return list(dict.fromkeys(group for _, group in self.rules))


def load_tag_rules(path: Path) -> TagRules:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TagRulesError(f"{path}: {exc}") from exc
    rules = []
    for i, rule in enumerate(doc.get("rules") or [], start=1):
        if not isinstance(rule, dict) or not rule.get("tag") or not rule.get("group"):
            raise TagRulesError(f"{path}: rule {i} needs `tag` and `group`")
        if len(str(rule["group"])) > 150:
            raise TagRulesError(f"{path}: rule {i}: group names are at most 150 characters in the store")
        rules.append((str(rule["tag"]).strip().lower(), str(rule["group"]).strip()))
    no_match = doc.get("no_match", "keep")
    if no_match not in ("keep", "clear"):
        raise TagRulesError(f"{path}: no_match must be `keep` or `clear`")
    return TagRules(tuple(rules), no_match)
