"""``include/mappings/crm_to_store.yaml``: which CRM streams run and where they land in the store.

Shift4Shop e-mails the customer when a CRM message is created, so no ticket or message stream is
on unless the file says so twice: the stream's ``tickets`` switch and the top-level
``store_may_email_customers: true``. A file that asks for tickets without the second is refused.
"""

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
    store_may_email_customers: bool = False

    @property
    def ticket_streams(self) -> list[str]:
        """Streams that write CRM tickets or messages (each may e-mail a customer)."""
        return [s for s in self.enabled_children if self.streams[s].tickets]

    def enabled(self, stream: str) -> bool:
        return stream in self.streams and self.streams[stream].enabled

    @property
    def enabled_children(self) -> list[str]:
        return [s for s in CHILD_STREAMS if self.enabled(s)]


def load_crm_config(mappings_dir: Path, overrides: Path | None = None) -> CrmConfig:
    """``<mappings_dir>/crm_to_store.yaml`` and its tag rules; a same-named file in ``overrides`` wins."""
    from ghl_shift4shop.settings import mapping_file

    path = mapping_file(mappings_dir, overrides, "crm_to_store.yaml")
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
    may_email = doc.get("store_may_email_customers", False)
    if not isinstance(may_email, bool):
        raise CrmConfigError(f"{path}: store_may_email_customers must be true or false")
    ticketed = [name for name, sc in streams.items() if sc.enabled and sc.tickets]
    if ticketed and not may_email:
        raise CrmConfigError(
            f"{path}: CRM tickets are switched on for {', '.join(ticketed)}, but Shift4Shop e-mails the customer "
            "for every CRM message it creates. Set `store_may_email_customers: true` at the top of the file to "
            "accept that (try it on a staging store first), or switch the tickets off."
        )
    rules_file = mapping_file(mappings_dir, overrides, str(tags.get("rules_file", "tag_groups.yaml")))
    return CrmConfig(
        tags_enabled=bool(tags.get("enabled", True)),
        tag_rules=load_tag_rules(rules_file) if tags.get("enabled", True) else TagRules(()),
        comments_enabled=bool((doc.get("comments") or {}).get("enabled", True)),
        streams=streams,
        store_may_email_customers=may_email,
    )
