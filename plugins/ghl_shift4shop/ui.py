"""The "GHL → Shift4Shop" page: a FastAPI app the Airflow API server mounts (see plugins/ghl_shift4shop_ui.py).

It owns the HTTP side only: routes, Airflow authentication, the HTML template and serving the runs'
GX Data Docs. What it shows comes from :mod:`ghl_shift4shop.monitor` (read-only over the state database).

Every route, the JSON API, the HTML page and the Data Docs files alike, requires what reading the sync
DAG in Airflow requires (``requires_access_dag("GET")`` for ``ghl_shift4shop_sync``, or for tenant
``T``, asked for with ``?tenant=T``, ``ghl_shift4shop_sync__T``), resolved by
Airflow's own auth manager from a bearer JWT (``POST /auth/token``) or the UI's ``_token`` session
cookie, which is what the browser sends when the Airflow UI shows this page in its frame.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from urllib.parse import quote

from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from ghl_shift4shop import monitor
from ghl_shift4shop.settings import Settings, load_settings
from ghl_shift4shop.sync import state_store
from ghl_shift4shop.tenants import NAME, Tenant

# Every route takes ``?tenant=T`` (tenants.py); without it, the default tenant.
TenantParam = Query(None, pattern=r"^[a-z][a-z0-9_]{0,30}$", description="tenant name; default: the default tenant")
KNOWN_STREAMS = ("contacts", "tasks", "notes", "appointments")

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
_templates.filters["urlquote"] = lambda value: quote(str(value), safe="")


def _may_read_the_tenants_sync(request: Request, user: GetUserDep) -> None:
    """Whoever may read a tenant's sync DAG may read its monitor; nobody else, and nobody anonymous."""
    tenant = request.path_params.get("tenant") or request.query_params.get("tenant") or "default"
    if not NAME.fullmatch(tenant):
        raise HTTPException(status_code=404, detail="not found")
    requires_access_dag("GET", param_dag_id=Tenant.make(tenant).sync_dag_id)(request, user)


app = FastAPI(
    title="GHL → Shift4Shop monitor",
    description="Read-only view of the ghl_shift4shop_sync state: watermarks, runs, quarantine, reconciliation.",
    dependencies=[Depends(_may_read_the_tenants_sync)],
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


@app.exception_handler(StarletteHTTPException)
async def _login_for_the_page(request: Request, exc: StarletteHTTPException):
    """A browser opening the page without a session goes to Airflow's login (and back); the JSON API and
    the Data Docs files answer 401 as the rest of Airflow's API does."""
    page = request.scope["path"].removeprefix(request.scope.get("root_path", "")) in ("", "/")
    if exc.status_code == 401 and request.method == "GET" and page:
        from airflow.api_fastapi.app import get_auth_manager

        return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
    return await http_exception_handler(request, exc)


def _gx_static_dir() -> Path | None:
    """GX's own Data Docs assets (CSS, fonts, images), found without importing GX (seconds, 240 MB)."""
    spec = importlib.util.find_spec("great_expectations")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "render" / "view" / "static"


def _within(root: Path, relative: str) -> Path:
    """``root / relative`` if it stays inside ``root`` and is a file; 404 otherwise (no ``..`` escapes)."""
    root = root.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise HTTPException(status_code=404, detail="not found")
    return path


def _settings(tenant: str | None) -> Settings:
    try:
        return load_settings(tenant)
    except KeyError:
        raise HTTPException(status_code=404, detail=f"no tenant {tenant!r}") from None


@app.get("/api/overview")
def api_overview(tenant: str | None = TenantParam) -> dict:
    settings = _settings(tenant)
    return monitor.overview(state_store(settings), settings.data_dir)


@app.get("/api/runs")
def api_runs(limit: int = Query(30, ge=1, le=500), tenant: str | None = TenantParam) -> list[dict]:
    settings = _settings(tenant)
    return monitor.runs(state_store(settings), settings.data_dir, limit=limit)


@app.get("/api/runs/chart.svg")
def api_runs_chart(limit: int = Query(30, ge=1, le=500), tenant: str | None = TenantParam) -> Response:
    settings = _settings(tenant)
    svg = monitor.runs_chart_svg(monitor.runs(state_store(settings), settings.data_dir, limit=limit))
    return Response(svg, media_type="image/svg+xml")


@app.get("/api/quarantine")
def api_quarantine(
    stream: str | None = None,
    q: str | None = None,
    limit: int = Query(500, ge=0, le=5000),
    tenant: str | None = TenantParam,
) -> dict:
    return monitor.quarantine(state_store(_settings(tenant)), stream=stream, q=q, limit=limit)


@app.get("/api/dead-letters")
def api_dead_letters(
    stream: str | None = None,
    q: str | None = None,
    limit: int = Query(500, ge=0, le=5000),
    tenant: str | None = TenantParam,
) -> dict:
    return monitor.dead_letters(state_store(_settings(tenant)), stream=stream, q=q, limit=limit)


@app.get("/api/held")
def api_held(
    stream: str | None = None,
    q: str | None = None,
    limit: int = Query(500, ge=0, le=5000),
    tenant: str | None = TenantParam,
) -> dict:
    return monitor.held(state_store(_settings(tenant)), stream=stream, q=q, limit=limit)


@app.get("/api/reconcile/latest")
def api_reconcile_latest(
    kind: str | None = None, limit: int = Query(500, ge=0, le=5000), tenant: str | None = TenantParam
) -> dict | None:
    return monitor.latest_reconcile(state_store(_settings(tenant)), kind=kind, limit=limit)


def _docs_base(base: str, tenant: str | None) -> str:
    """Where a tenant's Data Docs are served: in the path, so the sites' own relative links keep it."""
    return f"{base}/tenants/{tenant}" if tenant and tenant != "default" else base


@app.get("/api/runs/{run_id}/data-docs")
def api_data_docs(run_id: str, request: Request, tenant: str | None = TenantParam) -> list[dict]:
    base = _docs_base(request.scope.get("root_path", ""), tenant)
    return [
        {**site, "url": f"{base}/data-docs/{quote(run_id, safe='')}/{site['index']}"}
        for site in monitor.data_docs(_settings(tenant).data_dir, run_id)
    ]


@app.get("/data-docs/{run_id}/{path:path}")
@app.get("/tenants/{tenant}/data-docs/{run_id}/{path:path}")
def data_docs_file(run_id: str, path: str, tenant: str | None = None) -> FileResponse:
    """A file of one of the run's Data Docs sites; ``<stream>/<batch>/static/...`` comes from GX itself."""
    parts = Path(path).parts
    if len(parts) > 3 and parts[2] == "static":
        static = _gx_static_dir()
        if static is None:
            raise HTTPException(status_code=404, detail="not found")
        return FileResponse(_within(static, str(Path(*parts[3:]))))
    return FileResponse(_within(monitor.data_docs_root(_settings(tenant).data_dir, run_id), path))


@app.get("/", response_class=HTMLResponse)
def page(
    request: Request,
    stream: str | None = None,
    q: str | None = None,
    kind: str | None = None,
    tenant: str | None = TenantParam,
) -> HTMLResponse:
    settings = _settings(tenant)
    state = state_store(settings)
    stream, q, kind = stream or None, (q or "").strip() or None, kind or None
    run_rows = monitor.runs(state, settings.data_dir, limit=30)
    marks = monitor.watermarks(state)
    streams = sorted({*KNOWN_STREAMS, *(m["stream"] for m in marks)})
    html = _templates.get_template("monitor.html").render(
        base=request.scope.get("root_path", ""),
        docs_base=_docs_base(request.scope.get("root_path", ""), tenant),
        tenant=settings.tenant,
        tq="" if settings.tenant == "default" else f"?tenant={settings.tenant}",
        marks=marks,
        runs=run_rows,
        docs={r["run_id"]: monitor.data_docs(settings.data_dir, r["run_id"]) for r in run_rows[:10]},
        chart=monitor.runs_chart_svg(run_rows) if run_rows else None,
        quarantine=monitor.quarantine(state, stream=stream, q=q),
        dead_letters=monitor.dead_letters(state, stream=stream, q=q),
        held=monitor.held(state, stream=stream, q=q),
        reconcile=monitor.latest_reconcile(state, kind=kind),
        counts=monitor.RUN_COUNTS,
        streams=streams,
        stream=stream,
        q=q,
        kind=kind,
    )
    return HTMLResponse(html)
