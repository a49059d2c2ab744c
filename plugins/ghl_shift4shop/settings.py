"""Every tunable of the sync in one place: read from the environment, with sensible defaults.

Connections (credentials, hosts) are Airflow connections (see docs/connections.md); everything else is an
environment variable prefixed ``GHL_S4S_`` so it can be set per deployment without code changes.

Settings are per tenant (``tenants.py``): ``load_settings()`` / ``load_settings("default")`` is the
single-tenant setup exactly; tenant ``T`` gets its connections, pools and mapping overrides from its
entry in the tenants file, its own state (SQLite ``state__T.db`` beside the default file, or the
Postgres schema ``ghl_s4s__T`` of the same database) and ``<data_dir>/tenants/T/`` for its files.
Rate budgets stay shared: they belong to a GHL location or a store, not to a tenant.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from sqlalchemy.engine import make_url

GHL_CONN_ID = "ghl_default"
SHIFT4SHOP_CONN_ID = "shift4shop_default"

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _env(name: str, default: str) -> str:
    return os.environ.get(f"GHL_S4S_{name}", default)


def _default_data_dir() -> Path:
    airflow_home = os.environ.get("AIRFLOW_HOME")
    base = Path(airflow_home) if airflow_home else PROJECT_ROOT / ".local"
    return base / "ghl_shift4shop"


@dataclass(frozen=True)
class Settings:
    """A snapshot of the configuration; build one with :func:`load_settings`.

    Each default is written once, here. Every field below ``include_dir`` can be set from the
    environment as ``GHL_S4S_<FIELD NAME IN CAPITALS>`` (e.g. ``GHL_S4S_BATCH_SIZE``), except
    those in ``NOT_FROM_ENV``.
    """

    data_dir: Path
    state_url: str
    include_dir: Path
    tenant: str = "default"
    ghl_conn_id: str = GHL_CONN_ID
    shift4shop_conn_id: str = SHIFT4SHOP_CONN_ID
    # The Postgres schema holding this tenant's state tables (None: the URL's own, as today).
    state_schema: str | None = None
    # A folder whose YAML files replace the same-named ones of include/mappings for this tenant.
    mapping_overrides: Path | None = None
    batch_size: int = 5000
    watermark_lag_seconds: int = 300
    max_bad_share: float = 0.10
    initial_watermark: str = "1970-01-01T00:00:00.000Z"
    ghl_page_limit: int = 500
    shift4shop_put_chunk: int = 100
    shift4shop_page_limit: int = 500
    # "auto": POST an array of new customers and fall back to one at a time if the store refuses.
    shift4shop_bulk_create: str = "auto"
    http_timeout_seconds: float = 30.0
    http_max_attempts: int = 6
    keep_run_days: float = 7.0
    ghl_workers: int = 8
    ghl_daily_reserve: int = 2000
    # Client-side request budgets (see each hook's BEHAVIOR.md for why these defaults).
    ghl_burst: float = 10.0
    # 98 of the documented 100 per 10 s (ghl/hook.py says why 2 are kept back).
    ghl_rate_per_s: float = 9.8
    # GHL's documented window (100 per 10 s): no span this long gets more than rate × window.
    ghl_window_seconds: float = 10.0
    shift4shop_burst: float = 40.0
    shift4shop_rate_per_s: float = 2.0
    # Where those budgets are kept, shared by every process (and host) of one account: a SQLite
    # file (one host; default ``$GHL_S4S_DATA_DIR/rate_budget.db``), or a redis:// or
    # postgresql:// URL for workers on several hosts.
    rate_backend: str = ""
    # Where failure notices and missed deadlines go (observability.build_notifier): "log",
    # "smtp:<to-address>" or "slack:<conn_id>".
    notify: str = "log"
    # A sync run still not finished this long after it was queued raises a deadline alert.
    sync_deadline_hours: float = 6.0
    # The nightly reconciliation must have finished by this time of day (HH:MM, UTC).
    reconcile_finish_by: str = "06:00"
    # The reconciliation's safety brake: a run that would disable or delete more than this share
    # of the store's customers does none of it and fails (a truncated GHL answer must never switch
    # off a store). A deployment setting, not a data-team policy, so it lives here and not in
    # include/mappings/reconcile.yaml, where an edit to the policy could lift it by accident.
    reconcile_max_delete_share: float = 0.02
    # Write GX Data Docs for every validated batch (shown on the GHL → Shift4Shop page); about
    # 0.7 s per batch and stream.
    data_docs: bool = True

    @property
    def mappings_dir(self) -> Path:
        return self.include_dir / "mappings"

    @property
    def expectations_dir(self) -> Path:
        return self.include_dir / "expectations"

    def mapping_file(self, name: str) -> Path:
        """``include/mappings/<name>``, or the tenant's override of it."""
        return mapping_file(self.mappings_dir, self.mapping_overrides, name)


def mapping_file(mappings_dir: Path, overrides: Path | None, name: str) -> Path:
    if overrides is not None and (Path(overrides) / name).is_file():
        return Path(overrides) / name
    return Path(mappings_dir) / name


NOT_FROM_ENV = {"initial_watermark", "shift4shop_page_limit"}
PER_TENANT = {"tenant", "ghl_conn_id", "shift4shop_conn_id", "state_schema", "mapping_overrides"}


def load_settings(tenant: str | None = None) -> Settings:
    """The settings of ``tenant`` (None or "default": the single-tenant setup, unchanged)."""
    data_dir = Path(_env("DATA_DIR", str(_default_data_dir())))
    state_url = _base_state_url(data_dir)
    values: dict = {
        "data_dir": data_dir,
        "state_url": state_url,
        "include_dir": Path(_env("INCLUDE_DIR", str(PROJECT_ROOT / "include"))),
        # Budgets are per GHL location / store, shared by every tenant that talks to it: the
        # default file stays where it is whatever the tenant.
        "rate_backend": _env("RATE_BACKEND", f"sqlite:///{data_dir / 'rate_budget.db'}"),
    }
    from ghl_shift4shop.tenants import get_tenant

    t = get_tenant(tenant)
    values.update(
        tenant=t.name,
        ghl_conn_id=t.ghl_conn_id,
        shift4shop_conn_id=t.shift4shop_conn_id,
        mapping_overrides=t.mappings_dir,
    )
    url, schema, own_dir = _tenant_paths(t, state_url, data_dir)
    values.update(data_dir=own_dir, state_url=url, state_schema=schema)
    for f in fields(Settings):
        if f.name in values or f.name in NOT_FROM_ENV or f.name in PER_TENANT:
            continue
        raw = os.environ.get(f"GHL_S4S_{f.name.upper()}")
        if raw is not None:
            try:
                values[f.name] = _flag(raw) if isinstance(f.default, bool) else type(f.default)(raw)
            except ValueError:
                raise ValueError(
                    f"GHL_S4S_{f.name.upper()}={raw!r} is not a valid {type(f.default).__name__}"
                ) from None
    return Settings(**values)


def _base_state_url(data_dir: Path) -> str:
    return _env("STATE_URL", f"sqlite:///{data_dir / 'state.db'}")


def _tenant_paths(t, state_url: str, data_dir: Path) -> tuple[str, str | None, Path]:
    """(state URL, Postgres schema, data folder) of tenant ``t`` (a ``tenants.Tenant``)."""
    if t.is_default:
        return t.state_url or state_url, None, data_dir
    url, schema = tenant_state(state_url, t.name, t.state_url)
    return url, schema, data_dir / "tenants" / t.name


def tenant_places(t) -> tuple[tuple, Path]:
    """Where tenant ``t``'s state and files are, comparable between tenants.

    The state as (backend, host, port, database, schema): a SQLite file by its resolved path,
    a server database by its address and name (user and password do not make another database).
    """
    data_dir = Path(_env("DATA_DIR", str(_default_data_dir())))
    url, schema, own_dir = _tenant_paths(t, _base_state_url(data_dir), data_dir)
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = str(Path(parsed.database or "").resolve()) if parsed.database not in (None, "", ":memory:") else url
        return (backend, None, None, database, None), own_dir.resolve()
    options = parsed.query.get("options")  # e.g. -csearch_path=x: the URL's own schema
    return (backend, parsed.host, parsed.port, parsed.database, schema or str(options or "")), own_dir.resolve()


def tenant_state(default_url: str, tenant: str, own_url: str | None = None) -> tuple[str, str | None]:
    """(state URL, Postgres schema) of a tenant other than ``default``.

    Its own ``state_url`` if the tenants file gives one; else SQLite: ``state__<tenant>.db`` beside
    the default file; a server database: the same database. On a server database the tenant's
    tables are always in schema ``ghl_s4s__<tenant>``, its own URL too: a URL cannot be compared
    with another spelling of the same database (``localhost`` / ``127.0.0.1``, a port left out),
    and two tenants in one schema would share watermarks and id maps.
    """
    if own_url:
        if make_url(own_url).get_backend_name() == "sqlite":
            return own_url, None
        return own_url, f"ghl_s4s__{tenant}"
    url = make_url(default_url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "state.db")
        return str(url.set(database=str(path.with_name(f"{path.stem}__{tenant}{path.suffix or '.db'}")))), None
    return default_url, f"ghl_s4s__{tenant}"


def _flag(raw: str) -> bool:
    """A yes/no setting: ``bool("0")`` would be True, so the words are spelled out."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)
