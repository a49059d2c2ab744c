"""Checks the first task of a tenant's run makes before anything is written.

A store is fed by one tenant only: the load adopts a store customer by e-mail, so two tenants (two
GHL locations) writing one store would take over each other's customers, and each tenant's
reconciliation would find the other's customers. The tenants file already refuses two tenants
naming one store connection (tenants.py); two connections that point at one store are only seen
at run time, through the connections themselves, here.

A GHL OAuth chain has one holder too: HighLevel's refresh tokens are single use, and each tenant
keeps its own stored pair, so two tenants on one (app, location) would spend each other's refresh
token and the second one's next refresh would lock it out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ghl_shift4shop.errors import PermanentError
from ghl_shift4shop.tenants import Tenant, get_tenant, load_tenants

log = logging.getLogger(__name__)


class SharedStoreError(PermanentError):
    """Two tenants' store connections point at one store (a retry would find the same)."""


class SharedOAuthError(PermanentError):
    """Two tenants' GHL connections use one OAuth app on one location (one refresh-token chain)."""


def check_tenant_alone(tenant: str | None) -> None:
    """What the first task of a run checks: no other tenant shares this one's store or OAuth chain."""
    check_own_store(tenant)
    check_own_oauth(tenant)


def store_account(secure_url: str) -> str:
    """A store's SecureURL however it is spelled (the key of its rate budget too)."""
    url = str(secure_url or "").strip().lower()
    return url.removeprefix("https://").removeprefix("http://").rstrip("/")


def _extra(conn_id: str) -> dict | None:
    """The connection's extra, or None when the connection does not exist (that tenant is not set up)."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id).extra_dejson
    except AirflowNotFoundException:
        return None


def _secure_url(conn_id: str) -> str | None:
    extra = _extra(conn_id)
    return None if extra is None else store_account(extra.get("secure_url") or "") or None


def _oauth_chain(conn_id: str) -> tuple[str, str] | None:
    """(client id, location id) of a GHL connection that uses OAuth; None for a token or no connection."""
    from ghl_shift4shop.ghl.oauth import is_oauth

    extra = _extra(conn_id)
    if extra is None or not is_oauth(extra):
        return None
    return str(extra["client_id"]).strip(), str(extra.get("location_id") or "").strip()


def _sharer(me: Tenant, conn_of: Callable[[Tenant], str], key_of: Callable[[str], object]):
    """(another tenant whose connection has this tenant's key, the key), or (None, key).

    No key (no such connection, or nothing to share) means nothing to check: the run fails on its
    own connection if it is missing. The tenants file is read leniently: another tenant's bad
    schedule stops that tenant only, not this one's runs.
    """
    mine = key_of(conn_of(me))
    if mine is None:
        return None, None
    for other in load_tenants(strict=False):
        if other.name != me.name and key_of(conn_of(other)) == mine:
            return other, mine
    return None, mine


def check_own_oauth(tenant: str | None) -> None:
    """Fail if another tenant's GHL connection uses this tenant's OAuth app on the same location."""
    me = get_tenant(tenant)
    other, chain = _sharer(me, lambda t: t.ghl_conn_id, _oauth_chain)
    if other is not None:
        raise SharedOAuthError(
            f"tenants {me.name!r} (connection {me.ghl_conn_id!r}) and {other.name!r} (connection "
            f"{other.ghl_conn_id!r}) use one GHL OAuth app on location {chain[1]!r}; its refresh tokens are "
            "single use and each tenant keeps its own, so they would lock each other out. Give each tenant "
            "a Private Integration token (or its own app). Nothing was written."
        )


def check_own_store(tenant: str | None) -> None:
    """Fail unless no other tenant's store connection names this tenant's store (SecureURL)."""
    me = get_tenant(tenant)  # this tenant's own bad entry fails here, with its message
    other, store = _sharer(me, lambda t: t.shift4shop_conn_id, _secure_url)
    if other is not None:
        raise SharedStoreError(
            f"tenants {me.name!r} (connection {me.shift4shop_conn_id!r}) and {other.name!r} (connection "
            f"{other.shift4shop_conn_id!r}) feed the same store {store!r}; a store is fed by one tenant only "
            "(the load adopts customers by e-mail, so they would take over each other's customers). "
            "Nothing was written."
        )
