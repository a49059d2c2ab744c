"""Tenants: one HighLevel location feeding one Shift4Shop store, each with its own DAGs and state.

The file is ``include/tenants.yaml`` (``GHL_S4S_TENANTS_FILE`` names another one); a missing file
means one tenant, ``default``, which keeps the CONTRACT's DAG ids, connections and pools. Another
tenant ``T`` gets ``ghl_shift4shop_sync__T`` / ``ghl_shift4shop_reconcile__T``, the connections
``ghl_T`` / ``shift4shop_T`` and the pools ``ghl_api__T`` / ``shift4shop_api__T`` unless its entry
names others. Where each tenant's state and files live is :func:`ghl_shift4shop.settings.load_settings`.

Parsing must stay light (the DAG files call :func:`load_tenants`): PyYAML and the standard library only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT = "default"
SYNC_DAG_ID = "ghl_shift4shop_sync"
RECONCILE_DAG_ID = "ghl_shift4shop_reconcile"
DEFAULT_SCHEDULE = "*/30 * * * *"
DEFAULT_RECONCILE_SCHEDULE = "0 2 * * *"
NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")
KEYS = {
    "name",
    "ghl_conn_id",
    "shift4shop_conn_id",
    "schedule",
    "reconcile_schedule",
    "mappings_dir",
    "state_url",
    "ghl_pool",
    "shift4shop_pool",
}
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


class TenantsFileError(ValueError):
    """The tenants file is wrong; the message names the file and the entry."""


@dataclass(frozen=True)
class Tenant:
    name: str
    ghl_conn_id: str
    shift4shop_conn_id: str
    schedule: str = DEFAULT_SCHEDULE
    reconcile_schedule: str = DEFAULT_RECONCILE_SCHEDULE
    mappings_dir: Path | None = None  # absolute; its YAML files replace include/mappings' same-named ones
    state_url: str | None = None  # None: the default rule (settings.load_settings)
    ghl_pool: str = "ghl_api"
    shift4shop_pool: str = "shift4shop_api"

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT

    def _suffixed(self, base: str) -> str:
        return base if self.is_default else f"{base}__{self.name}"

    @property
    def sync_dag_id(self) -> str:
        return self._suffixed(SYNC_DAG_ID)

    @property
    def reconcile_dag_id(self) -> str:
        return self._suffixed(RECONCILE_DAG_ID)

    @classmethod
    def make(cls, name: str, **given) -> Tenant:
        """A tenant with the defaults of the interface filled in for whatever ``given`` leaves out."""
        default = name == DEFAULT
        values = {
            "ghl_conn_id": "ghl_default" if default else f"ghl_{name}",
            "shift4shop_conn_id": "shift4shop_default" if default else f"shift4shop_{name}",
            "ghl_pool": "ghl_api" if default else f"ghl_api__{name}",
            "shift4shop_pool": "shift4shop_api" if default else f"shift4shop_api__{name}",
        }
        values.update({k: v for k, v in given.items() if v is not None})
        return cls(name=name, **values)


def include_dir() -> Path:
    return Path(os.environ.get("GHL_S4S_INCLUDE_DIR", str(_PROJECT_ROOT / "include")))


def tenants_file() -> Path:
    named = os.environ.get("GHL_S4S_TENANTS_FILE")
    return Path(named) if named else include_dir() / "tenants.yaml"


def load_tenants(path: Path | None = None) -> list[Tenant]:
    """Every tenant of the file, in its order; ``[default]`` when there is no file."""
    path = Path(path) if path is not None else tenants_file()
    if not path.exists():
        return [Tenant.make(DEFAULT)]
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TenantsFileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or set(doc) - {"tenants"}:
        raise TenantsFileError(f"{path}: the file holds one key, `tenants:` (a list of entries)")
    entries = doc.get("tenants") or []
    if not isinstance(entries, list) or not entries:
        raise TenantsFileError(f"{path}: `tenants:` must be a non-empty list of entries")
    include = include_dir()
    tenants: list[Tenant] = []
    seen: dict[str, str] = {}  # every DAG id, conn-less: id -> tenant that owns it
    for i, entry in enumerate(entries, start=1):
        where = f"{path}: tenant entry {i}"
        if not isinstance(entry, dict):
            raise TenantsFileError(f"{where}: expected a mapping with at least `name:`, got {entry!r}")
        name = entry.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise TenantsFileError(f"{where}: name {name!r} must match [a-z][a-z0-9_]{{0,30}}")
        where = f"{path}: tenant {name!r} (entry {i})"
        unknown = sorted(set(entry) - KEYS)
        if unknown:
            raise TenantsFileError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}")
        for key, value in entry.items():
            if value is not None and not isinstance(value, str):
                raise TenantsFileError(f"{where}: {key} must be a string, got {value!r}")
        if any(t.name == name for t in tenants):
            raise TenantsFileError(f"{where}: the name {name!r} is used twice")
        mappings_dir = _mappings_dir(entry.get("mappings_dir"), include, where)
        tenant = Tenant.make(**{**entry, "mappings_dir": mappings_dir})
        for dag_id in (tenant.sync_dag_id, tenant.reconcile_dag_id):
            if dag_id in seen:
                raise TenantsFileError(f"{where}: DAG id {dag_id!r} is already tenant {seen[dag_id]!r}'s")
            seen[dag_id] = name
        tenants.append(tenant)
    return tenants


def _mappings_dir(raw: str | None, include: Path, where: str) -> Path | None:
    """The override folder, which must exist and hold only files that replace one of include/mappings."""
    if raw is None:
        return None
    folder = (include / raw).resolve()
    if not folder.is_dir():
        raise TenantsFileError(f"{where}: mappings_dir {raw!r} is not a folder ({folder} is missing)")
    base = include / "mappings"
    for file in sorted(folder.glob("*.y*ml")):
        if not (base / file.name).is_file():
            raise TenantsFileError(
                f"{where}: mappings_dir file {file.name!r} replaces no file of {base} "
                "(an override must have the name of the file it replaces)"
            )
    return folder


def get_tenant(name: str | None = None) -> Tenant:
    """The tenant called ``name`` (None: ``default``); the default tenant exists even if the file omits it."""
    name = name or DEFAULT
    for tenant in load_tenants():
        if tenant.name == name:
            return tenant
    if name == DEFAULT:
        return Tenant.make(DEFAULT)
    raise KeyError(f"no tenant {name!r} in {tenants_file()}")
