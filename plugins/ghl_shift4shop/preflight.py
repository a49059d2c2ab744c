"""Checks the first task of a tenant's run makes before anything is written.

A store is fed by one tenant only: the load adopts a store customer by e-mail, so two tenants (two
GHL locations) writing one store would take over each other's customers, and each tenant's
reconciliation would find the other's customers. The tenants file already refuses two tenants
naming one store connection (tenants.py); two connections that point at one store are only seen
at run time, through the connections themselves, here.
"""

from __future__ import annotations

import logging

from ghl_shift4shop.errors import PermanentError
from ghl_shift4shop.tenants import get_tenant, load_tenants

log = logging.getLogger(__name__)


class SharedStoreError(PermanentError):
    """Two tenants' store connections point at one store (a retry would find the same)."""


def store_account(secure_url: str) -> str:
    """A store's SecureURL however it is spelled (the key of its rate budget too)."""
    url = str(secure_url or "").strip().lower()
    return url.removeprefix("https://").removeprefix("http://").rstrip("/")


def _secure_url(conn_id: str) -> str | None:
    """The connection's store, or None when the connection does not exist (that tenant is not set up)."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    return store_account(connection.extra_dejson.get("secure_url") or "") or None


def check_own_store(tenant: str | None) -> None:
    """Fail unless no other tenant's store connection names this tenant's store (SecureURL)."""
    me = get_tenant(tenant)  # this tenant's own bad entry fails here, with its message
    mine = _secure_url(me.shift4shop_conn_id)
    if mine is None:
        return  # the run fails on its own connection, with that error
    # Leniently: another tenant's bad schedule stops that tenant only, not this one's runs.
    for other in load_tenants(strict=False):
        if other.name == me.name:
            continue
        if _secure_url(other.shift4shop_conn_id) == mine:
            raise SharedStoreError(
                f"tenants {me.name!r} (connection {me.shift4shop_conn_id!r}) and {other.name!r} (connection "
                f"{other.shift4shop_conn_id!r}) feed the same store {mine!r}; a store is fed by one tenant only "
                "(the load adopts customers by e-mail, so they would take over each other's customers). "
                "Nothing was written."
            )
