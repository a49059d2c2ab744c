"""``include/mappings/crm_to_store.yaml``: which CRM streams run and where they land in the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ghl_shift4shop.errors import PermanentError
from ghl_shift4shop.tags import TagRules, load_tag_rules

CHILD_STREAMS = ("tasks", "notes", "appointments")


class CrmConfigError(PermanentError, ValueError):
    """crm_to_store.yaml is malformed."""


@dataclass(frozen=True)
class StreamConfig:
    enabled: bool = True
    tickets: bool = False
    open_status: str = "Open"
    closed_status: str = "Closed"
    department: str = "General"
    ticket_subject: str = "HighLevel notes"
    horizon_days: int = 90


@dataclass(frozen=True)
class CrmConfig:
    tags_enabled: bool
    tag_rules: TagRules
    comments_enabled: bool
    streams: dict[str, StreamConfig] = field(default_factory=dict)

    def enabled(self, stream: str) -> bool:
        return stream in self.streams and self.streams[stream].enabled

    @property
    def enabled_children(self) -> list[str]:
        return [s for s in CHILD_STREAMS if self.enabled(s)]


def load_crm_config(mappings_dir: Path) -> CrmConfig:
    path = Path(mappings_dir) / "crm_to_store.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CrmConfigError(f"{path}: {exc}") from exc
    tags = doc.get("tags") or {}
    streams = {}
    for name in CHILD_STREAMS:
        raw = doc.get(name) or {}
        if not isinstance(raw, dict):
            raise CrmConfigError(f"{path}: `{name}` must be a mapping")
        unknown = set(raw) - {
            "enabled",
            "tickets",
            "ticket",
            "open_status",
            "closed_status",
            "status",
            "department",
            "ticket_subject",
            "horizon_days",
        }
        if unknown:
            raise CrmConfigError(f"{path}: `{name}` has unknown keys {sorted(unknown)}")
        streams[name] = StreamConfig(
            enabled=bool(raw.get("enabled", True)),
            tickets=bool(raw.get("tickets", raw.get("ticket", False))),
            open_status=str(raw.get("open_status", raw.get("status", "Open"))),
            closed_status=str(raw.get("closed_status", "Closed")),
            department=str(raw.get("department", "General")),
            ticket_subject=str(raw.get("ticket_subject", "HighLevel notes"))[:50],
            horizon_days=int(raw.get("horizon_days", 90)),
        )
    rules_file = Path(mappings_dir) / str(tags.get("rules_file", "tag_groups.yaml"))
    return CrmConfig(
        tags_enabled=bool(tags.get("enabled", True)),
        tag_rules=load_tag_rules(rules_file) if tags.get("enabled", True) else TagRules(()),
        comments_enabled=bool((doc.get("comments") or {}).get("enabled", True)),
        streams=streams,
    )
