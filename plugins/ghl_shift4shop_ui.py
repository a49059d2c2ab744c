"""Registers the "GHL → Shift4Shop" monitoring page with Airflow (kept thin: the app is ghl_shift4shop.ui).

``fastapi_apps`` mounts the app on the API server under ``/ghl-shift4shop``; ``external_views`` adds a
nav entry that shows it inside the Airflow UI (same origin, so the UI's session cookie authenticates it).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/ghl-shift4shop"


class MonitorApp:
    """The ASGI app, imported on its first request.

    Every Airflow process loads plugins, each task process included; importing the app there would
    cost each task seconds (FastAPI, Airflow's API security module) for a page only the API server serves.
    """

    _app = None

    async def __call__(self, scope, receive, send) -> None:
        if MonitorApp._app is None:
            from ghl_shift4shop.ui import app

            MonitorApp._app = app
        await MonitorApp._app(scope, receive, send)


class GhlShift4ShopUiPlugin(AirflowPlugin):
    name = "ghl_shift4shop_ui"
    fastapi_apps = [{"name": "ghl_shift4shop_monitor", "app": MonitorApp(), "url_prefix": URL_PREFIX}]
    external_views = [
        {
            "name": "GHL → Shift4Shop",
            "href": f"{URL_PREFIX}/",
            "url_route": "ghl-shift4shop",
            "destination": "nav",
            "category": "browse",
        }
    ]
