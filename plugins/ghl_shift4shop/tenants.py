"""Tenants: one HighLevel location feeding one Shift4Shop store, each with its own DAGs and state.

The file is ``include/tenants.yaml`` (``GHL_S4S_TENANTS_FILE`` names another one); a missing file
means one tenant, ``default``, which keeps the CONTRACT's DAG ids, connections and pools. Another
tenant ``T`` gets ``ghl_shift4shop_sync__T`` / ``ghl_shift4shop_reconcile__T``, the connections
``ghl_T`` / ``shift4shop_T`` and the pools ``ghl_api__T`` / ``shift4shop_api__T`` unless its entry
names others. Where each tenant's state and files live is :func:`ghl_shift4shop.settings.load_settings`.

Parsing must stay light (the DAG files call :func:`load_tenants`): PyYAML and the standard library only.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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
    "reconcile_finish_by",
    "mappings_dir",
    "state_url",
    "ghl_pool",
    "shift4shop_pool",
}
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger(__name__)


class TenantsFileError(ValueError):
    """The tenants file is wrong; the message names the file and the entry."""


@dataclass(frozen=True)
class Tenant:
    name: str
    ghl_conn_id: str
    shift4shop_conn_id: str
    schedule: str = DEFAULT_SCHEDULE
    reconcile_schedule: str = DEFAULT_RECONCILE_SCHEDULE
    reconcile_finish_by: str | None = None  # HH:MM UTC; None: GHL_S4S_RECONCILE_FINISH_BY
    mappings_dir: Path | None = None  # absolute; its YAML files replace include/mappings' same-named ones
    state_url: str | None = None  # None: the default rule (settings.load_settings)
    ghl_pool: str = "ghl_api"
    shift4shop_pool: str = "shift4shop_api"
    # Why this tenant cannot run (a bad schedule), naming the file and the entry; only
    # ``load_tenants(strict=False)`` returns such a tenant, so the others keep their DAGs.
    problem: str | None = None

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


def load_tenants(path: Path | None = None, *, strict: bool = True) -> list[Tenant]:
    """Every tenant of the file, in its order; ``[default]`` when there is no file.

    A wrong file raises :class:`TenantsFileError`. So does a tenant's own bad schedule, unless
    ``strict`` is False: then that tenant comes back with ``problem`` set (the DAG files and a
    tenant's settings use this, so one tenant's typo does not stop the others).

    Only the default path may be absent: a file named by ``GHL_S4S_TENANTS_FILE`` that is missing
    is an error (a typo there would otherwise run one default tenant in place of the real ones).
    A file is read and checked once per (path, mtime, size): each DAG file of a parse asks again.
    """
    named = path is None and bool(os.environ.get("GHL_S4S_TENANTS_FILE"))
    path = Path(path) if path is not None else tenants_file()
    try:
        stat = path.stat()
    except FileNotFoundError:
        if named:
            raise TenantsFileError(f"{path}: GHL_S4S_TENANTS_FILE names this file, and it does not exist") from None
        return [Tenant.make(DEFAULT)]
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, include_dir())
    if key not in _CACHE:
        _CACHE.clear()  # one file (and one version of it) is current; no growth across edits
        _CACHE[key] = tuple(_parse(path))
    tenants = list(_CACHE[key])
    _check_states(path, tenants)  # depends on the environment (GHL_S4S_STATE_URL), not only the file
    if strict:
        for t in tenants:
            if t.problem:
                raise TenantsFileError(t.problem)
    return tenants


_CACHE: dict[tuple, tuple[Tenant, ...]] = {}


def _parse(path: Path) -> list[Tenant]:
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
    wheres: dict[str, str] = {}  # tenant name -> "tenant 'x' (entry i)"
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
        finish_by = entry.get("reconcile_finish_by")
        if isinstance(finish_by, int) and not isinstance(finish_by, bool) and 0 <= finish_by < 24 * 60:
            # YAML 1.1 reads an unquoted 16:30 as the sexagesimal integer 990: give the time back.
            entry = {**entry, "reconcile_finish_by": f"{finish_by // 60:02d}:{finish_by % 60:02d}"}
        elif finish_by is not None and not isinstance(finish_by, str):
            # Another unquoted value (16.30, 24:00 read as 1440): that tenant's own error, as a bad
            # schedule is (the HH:MM check below names it), not the whole file's.
            entry = {**entry, "reconcile_finish_by": str(finish_by)}
        for key, value in entry.items():
            if value is not None and not isinstance(value, str):
                raise TenantsFileError(f"{where}: {key} must be a string, got {value!r}")
        if any(t.name == name for t in tenants):
            raise TenantsFileError(f"{where}: the name {name!r} is used twice")
        mappings_dir = _mappings_dir(entry.get("mappings_dir"), include, where)
        tenant = Tenant.make(**{**entry, "mappings_dir": mappings_dir})
        try:
            _check_schedules(tenant, where)
        except TenantsFileError as exc:
            tenant = replace(tenant, problem=str(exc))
        for dag_id in (tenant.sync_dag_id, tenant.reconcile_dag_id):
            if dag_id in seen:
                raise TenantsFileError(f"{where}: DAG id {dag_id!r} is already tenant {seen[dag_id]!r}'s")
            seen[dag_id] = name
        for other in tenants:
            if other.shift4shop_conn_id == tenant.shift4shop_conn_id:
                raise TenantsFileError(
                    f"{where}: shift4shop_conn_id {tenant.shift4shop_conn_id!r} is also {wheres[other.name]}'s; "
                    "a store is fed by one tenant only (the load adopts customers by e-mail, so two tenants "
                    "on one store would take over each other's customers)"
                )
        wheres[name] = f"tenant {name!r} (entry {i})"
        tenants.append(tenant)
    return tenants


def _check_schedules(tenant: Tenant, where: str) -> None:
    """The sync's and the reconciliation's crons as the DAGs read them; the reconciliation's once a day."""
    for key in ("schedule", "reconcile_schedule"):
        cron = getattr(tenant, key)
        if not is_valid_cron(cron):
            raise TenantsFileError(
                f"{where}: {key} {cron!r} is not a cron expression (five fields, e.g. '*/30 * * * *') "
                f"nor one of {', '.join(sorted(CRON_PRESETS))}"
            )
    try:
        first_daily_fire(tenant.reconcile_schedule)
    except ValueError as exc:
        raise TenantsFileError(f"{where}: reconcile_schedule: {exc}") from None
    if tenant.reconcile_finish_by is not None:
        try:
            time_of_day(tenant.reconcile_finish_by, "reconcile_finish_by")
        except ValueError as exc:
            raise TenantsFileError(f"{where}: {exc}") from None


def time_of_day(value: str, what: str) -> tuple[int, int]:
    """``(hour, minute)`` of an ``HH:MM`` (UTC); ValueError naming ``what`` otherwise."""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
    if not match:
        raise ValueError(f"{what}={value!r}: expected HH:MM (UTC)")
    return int(match[1]), int(match[2])


# What Airflow's cron timetables accept besides a cron line (airflow.utils.dates.cron_presets).
CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}


def is_valid_cron(cron: str) -> bool:
    from croniter import croniter

    return croniter.is_valid(CRON_PRESETS.get(cron, cron))


def first_daily_fire(cron: str):
    """The first time ``cron`` fires on or after 2026-01-01 (UTC); ValueError unless it fires once a day."""
    from datetime import UTC, datetime, timedelta

    from croniter import croniter

    midnight = datetime(2026, 1, 1, tzinfo=UTC)
    fires = croniter(CRON_PRESETS.get(cron, cron), midnight - timedelta(microseconds=1))
    first, second, third = (fires.get_next(datetime) for _ in range(3))
    if not (second - first == third - second == timedelta(days=1)):
        raise ValueError(f"{cron!r} is not a once-a-day schedule (the reconciliation's deadline is a time of day)")
    return first


def _check_states(path: Path, tenants: list[Tenant]) -> None:
    """No two tenants on one state (database + schema) or one data folder."""
    from ghl_shift4shop.settings import tenant_places

    owners: dict[tuple, str] = {}
    for t in tenants:
        state, data_dir = tenant_places(t)
        for kind, place in (("state", state), ("data folder", data_dir)):
            if (kind, place) in owners:
                raise TenantsFileError(
                    f"{path}: tenants {owners[kind, place]!r} and {t.name!r} resolve to the same {kind} "
                    f"({_shown(place)}); each tenant needs its own"
                )
            owners[kind, place] = t.name


def _shown(place) -> str:
    """A place of ``settings.tenant_places`` as a reader writes it: ``backend://host:port/db schema s``."""
    if not isinstance(place, tuple):
        return str(place)
    backend, host, port, database, schema = place
    where = f"{backend}://{host or ''}{f':{port}' if port else ''}/{database}" if host else f"{backend}:{database}"
    return f"{where} schema {schema}" if schema else where


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
    """The tenant called ``name`` (None: ``default``); the default tenant exists even if the file omits it.

    Another tenant's bad schedule does not stop this one; this one's own does (its message).
    """
    name = name or DEFAULT
    for tenant in load_tenants(strict=False):
        if tenant.name == name:
            if tenant.problem:
                raise TenantsFileError(tenant.problem)
            return tenant
    if name == DEFAULT:
        return Tenant.make(DEFAULT)
    raise KeyError(f"no tenant {name!r} in {tenants_file()}")


class TenantDagError(TenantsFileError):
    """A tenant's DAG could not be built; raised by its stand-in's ``validate`` (an import error)."""


def build_dags(build: Callable[[Tenant], Any], dag_id: Callable[[Tenant], str]) -> dict[str, Any]:
    """``{dag id: DAG}`` of every tenant, for a DAG file's globals.

    A tenant whose DAG cannot be built (its schedule is wrong, ``build`` raises) does not take the
    other tenants' DAGs down: its error is logged, and it gets a stand-in DAG of its id whose
    validation fails with that error, so Airflow shows it as an import error of the file and bags
    every other DAG of the file as usual. A wrong file as a whole still fails the whole file.
    """
    out: dict[str, Any] = {}
    for tenant in load_tenants(strict=False):
        try:
            if tenant.problem:
                raise TenantsFileError(tenant.problem)
            out[dag_id(tenant)] = build(tenant)
        except Exception as exc:
            message = f"tenant {tenant.name!r}: DAG {dag_id(tenant)!r} not built: {type(exc).__name__}: {exc}"
            log.error("%s", message)
            out[dag_id(tenant)] = _unbuildable(dag_id(tenant), message)
    return out


def _unbuildable(dag_id: str, message: str):
    from airflow.sdk import DAG

    class UnbuildableTenantDag(DAG):
        def validate(self):
            raise TenantDagError(message)

    return UnbuildableTenantDag(dag_id=dag_id, schedule=None, doc_md=message)
