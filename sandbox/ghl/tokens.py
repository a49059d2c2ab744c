"""Bearer tokens and OAuth 2.0 (ghl-api.md §1.2, §1.3, §9.3) for the GHL simulator's state.

Owns the token store (PITs and expiring OAuth access tokens, each with its location, scopes and
rate-limit identity), the Marketplace apps (``OAuthClient``) with their installs (grants: refresh
tokens and single-use authorization codes), and ``POST /oauth/token``'s rules: refresh-token
rotation and the reuse window in which identical refreshes get the same pair. ``reset()`` keeps all
of it (credentials are not data).
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from sandbox.ghl.base import new_id
from sandbox.ghl.errors import ApiError, unprocessable

__all__ = ["ALL_SCOPES", "OAuthClient", "Token", "TokensMixin", "oauth_error"]

ALL_SCOPES: frozenset[str] = frozenset(
    {
        "contacts.readonly",
        "contacts.write",
        "locations.readonly",
        "locations/tasks.readonly",
        "calendars.readonly",
        "calendars.write",
        "calendars/events.readonly",
        "calendars/events.write",
    }
)


def oauth_error(status: int, error: str, description: str) -> ApiError:
    """A ``/oauth/token`` failure: the spec's envelope (``statusCode``, ``message``) carrying the
    RFC 6749 §5.2 fields (``error``, ``error_description``) too, so either kind of client can read it."""
    return ApiError(status, description, error=error, extra={"error_description": description})


def _secret_token() -> str:
    """An unguessable token value (32 hex, the form of the spec's ``access_token`` example)."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class Token:
    """One bearer token. PITs have ``expires_at=None``; OAuth access tokens get a wall-clock expiry.

    ``subject`` is the rate-limit client identity (a Marketplace app's client id for OAuth tokens);
    it defaults to the token itself, so every PIT is its own client.
    """

    token: str
    location_id: str
    scopes: frozenset[str] = ALL_SCOPES
    expires_at: float | None = None
    subject: str = ""

    @property
    def client(self) -> str:
        return self.subject or self.token

    def expired(self, at: float | None = None) -> bool:
        return self.expires_at is not None and (at if at is not None else time.time()) >= self.expires_at


@dataclass
class OAuthClient:
    """A Marketplace app: its credentials and the scopes it asks for. Installs (grants) are per location."""

    client_id: str
    client_secret: str
    scopes: frozenset[str]
    company_id: str
    user_id: str


@dataclass
class _Grant:
    """What a refresh token or authorization code stands for: one app installed in one location."""

    client_id: str
    location_id: str
    scopes: frozenset[str]
    redirect_uri: str | None = None


class TokensMixin:
    """Tokens, OAuth clients, grants and refresh rotation (part of ``GhlState``)."""

    lock: threading.RLock
    location_id: str
    access_token_ttl_s: float
    refresh_reuse_window_s: float

    def _init_tokens(self, tokens: dict[str, dict] | None) -> None:
        self.tokens: dict[str, Token] = {}
        self.oauth_clients: dict[str, OAuthClient] = {}
        self._refresh_tokens: dict[str, _Grant] = {}  # live refresh tokens
        self._auth_codes: dict[str, _Grant] = {}  # unused authorization codes
        # (client_id, client_secret, old refresh token) -> (monotonic time of the refresh, its answer)
        self._recent_refreshes: dict[tuple[str, str, str], tuple[float, dict]] = {}
        for tok, info in (tokens or {}).items():
            self.add_token(tok, **info)

    def add_token(
        self,
        token: str,
        location_id: str | None = None,
        scopes: Iterable[str] | str | None = None,
        expires_at: float | None = None,
        subject: str = "",
    ) -> Token:
        """Register a bearer token (a PIT when ``expires_at`` is None, else an expiring OAuth token)."""
        if isinstance(scopes, str):
            scopes = scopes.split()
        tok = Token(
            token=token,
            location_id=location_id or self.location_id,
            scopes=frozenset(scopes) if scopes is not None else ALL_SCOPES,
            expires_at=expires_at,
            subject=subject,
        )
        with self.lock:
            self.tokens[token] = tok
        return tok

    def resolve_token(self, token: str | None) -> Token | None:
        if not token:
            return None
        with self.lock:
            tok = self.tokens.get(token)
        if tok is None or tok.expired():
            return None
        return tok

    # ---- OAuth 2.0 (§1.2, §9.3) -----------------------------------------------------------------

    def add_oauth_client(
        self,
        client_id: str,
        client_secret: str,
        *,
        location_id: str | None = None,
        scopes: Iterable[str] | str | None = None,
        company_id: str | None = None,
        user_id: str | None = None,
    ) -> str:
        """Register (or update) a Marketplace app, install it in ``location_id`` (default: the state's)
        and return that install's first refresh token, as the authorization-code exchange would.

        Calling it again for the same client installs it in another (or the same) location; the new
        secret and scopes replace the old ones, and earlier refresh tokens stay valid.
        """
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret are required")
        if isinstance(scopes, str):
            scopes = scopes.split()
        with self.lock:
            old = self.oauth_clients.get(client_id)
            client = OAuthClient(
                client_id=client_id,
                client_secret=client_secret,
                scopes=frozenset(scopes) if scopes is not None else ALL_SCOPES,
                company_id=company_id or (old.company_id if old else new_id()),
                user_id=user_id or (old.user_id if old else new_id()),
            )
            self.oauth_clients[client_id] = client
            refresh = _secret_token()
            self._refresh_tokens[refresh] = _Grant(client_id, location_id or self.location_id, client.scopes)
            return refresh

    def issue_auth_code(
        self,
        client_id: str,
        *,
        location_id: str | None = None,
        scopes: Iterable[str] | str | None = None,
        redirect_uri: str | None = None,
    ) -> str:
        """A single-use ``code`` for ``grant_type=authorization_code`` (what the callback would receive).

        ``scopes`` default to the client's; a ``redirect_uri`` given here must be sent again with the code.
        """
        if isinstance(scopes, str):
            scopes = scopes.split()
        with self.lock:
            client = self.oauth_clients.get(client_id)
            if client is None:
                raise KeyError(f"unknown OAuth client {client_id}")
            code = _secret_token()
            granted = frozenset(scopes) if scopes is not None else client.scopes
            self._auth_codes[code] = _Grant(client_id, location_id or self.location_id, granted, redirect_uri)
            return code

    def revoke_refresh_tokens(self, client_id: str) -> int:
        """Invalidate every live refresh token of a client (an uninstall, or revoked access)."""
        with self.lock:
            gone = [r for r, g in self._refresh_tokens.items() if g.client_id == client_id]
            for refresh in gone:
                del self._refresh_tokens[refresh]
            self._recent_refreshes = {k: v for k, v in self._recent_refreshes.items() if k[0] != client_id}
            return len(gone)

    def expire_access_tokens(self) -> int:
        """Expire every token that has an expiry (OAuth access tokens) now; PITs are untouched."""
        now = time.time()
        with self.lock:
            expiring = [t for t in self.tokens.values() if t.expires_at is not None and t.expires_at > now]
            for tok in expiring:
                self.tokens[tok.token] = replace(tok, expires_at=now)
            return len(expiring)

    def oauth_token(self, form: dict[str, str]) -> dict[str, Any]:
        """``POST /oauth/token``: the token response, or an ``ApiError`` (422 / 401 / 400)."""
        errors = [f"{name} should not be empty" for name in ("client_id", "client_secret") if not form.get(name)]
        grant_type = form.get("grant_type") or ""
        if grant_type not in ("authorization_code", "refresh_token", "client_credentials"):
            errors.append(
                "grant_type must be one of the following values: authorization_code, refresh_token, client_credentials"
            )
        if form.get("user_type") not in (None, "", "Company", "Location"):
            errors.append("user_type must be one of the following values: Company, Location")
        if grant_type == "refresh_token" and not form.get("refresh_token"):
            errors.append("refresh_token should not be empty")
        if grant_type == "authorization_code" and not form.get("code"):
            errors.append("code should not be empty")
        if errors:
            raise unprocessable(*errors)
        client_id, secret = form["client_id"], form["client_secret"]
        with self.lock:
            client = self.oauth_clients.get(client_id)
            if client is None or not secrets.compare_digest(client.client_secret, secret):
                raise oauth_error(401, "invalid_client", "Invalid client credentials")
            if grant_type == "client_credentials":
                raise oauth_error(400, "unsupported_grant_type", "grant_type client_credentials is not supported")
            if form.get("user_type") == "Company":
                raise oauth_error(400, "invalid_request", "Company tokens are not simulated; use user_type=Location")
            if grant_type == "authorization_code":
                grant = self._auth_codes.get(form["code"])
                if grant is None or grant.client_id != client_id:
                    raise oauth_error(400, "invalid_grant", "Invalid authorization code")
                if grant.redirect_uri is not None and form.get("redirect_uri") != grant.redirect_uri:
                    raise oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization request")
                del self._auth_codes[form["code"]]
                return self._issue(client, grant)
            return self._refresh(client, secret, form["refresh_token"])

    def _refresh(self, client: OAuthClient, secret: str, refresh: str) -> dict[str, Any]:
        now = time.monotonic()
        window = self.refresh_reuse_window_s
        for key, (at, _) in list(self._recent_refreshes.items()):
            if now - at >= window:
                del self._recent_refreshes[key]
        key = (client.client_id, secret, refresh)
        recent = self._recent_refreshes.get(key)
        if recent is not None:  # an identical refresh within the window: the same pair again (§1.2)
            body = dict(recent[1])
            tok = self.tokens.get(body["access_token"])
            if tok is not None and tok.expires_at is not None:
                body["expires_in"] = max(0, math.ceil(tok.expires_at - time.time()))
            return body
        grant = self._refresh_tokens.get(refresh)
        if grant is None or grant.client_id != client.client_id:
            raise oauth_error(400, "invalid_grant", "Invalid refresh token")
        del self._refresh_tokens[refresh]  # rotation: the old refresh token is spent
        body = self._issue(client, grant)
        self._recent_refreshes[key] = (now, body)
        return dict(body)

    def _issue(self, client: OAuthClient, grant: _Grant) -> dict[str, Any]:
        """A new access token (expiring) and refresh token for ``grant``."""
        ttl = float(self.access_token_ttl_s)
        access = _secret_token()
        self.add_token(
            access,
            location_id=grant.location_id,
            scopes=grant.scopes,
            expires_at=time.time() + ttl,
            subject=client.client_id,
        )
        refresh = _secret_token()
        self._refresh_tokens[refresh] = _Grant(client.client_id, grant.location_id, grant.scopes)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": math.ceil(ttl),
            "refresh_token": refresh,
            "scope": " ".join(sorted(grant.scopes)),
            "userType": "Location",
            "locationId": grant.location_id,
            "companyId": client.company_id,
            "userId": client.user_id,
        }
