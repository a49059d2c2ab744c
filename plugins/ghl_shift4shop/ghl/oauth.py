"""GHL OAuth tokens: refresh on "Invalid JWT", and keep the rotated refresh token safe.

Each refresh invalidates the previous refresh token (HighLevel rotates them), so the new one is
written to the state database before the new access token is used: a crash right after a
refresh cannot lock the pipeline out. Tokens are stored encrypted (Fernet, keyed by the app's
client secret, which lives only in the Airflow connection), never in plain text.

Connection (docs/connections.md): ``password`` = an access token (optional), ``extra`` has
``client_id``, ``client_secret`` and the initial ``refresh_token``. A stored (rotated) refresh token
wins over the connection's, which goes stale after the first refresh, but only while the connection
still holds the token that chain started from: after an operator re-authorises the app and puts
the new refresh token in the connection, the connection's wins and the stored chain is dropped.
``python -m ghl_shift4shop oauth forget`` clears the stored tokens by hand.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from airflow.sdk.log import mask_secret
from cryptography.fernet import Fernet, InvalidToken

from ghl_shift4shop.state import StateStore, metadata, utcnow
from ghl_shift4shop.transport import AuthError

log = logging.getLogger(__name__)

oauth_tokens = sa.Table(
    "oauth_tokens",
    metadata,
    sa.Column("account", sa.String(255), primary_key=True),
    sa.Column("access_token", sa.Text),  # encrypted
    sa.Column("refresh_token", sa.Text, nullable=False),  # encrypted
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # Keyed digest of the connection's refresh token this chain of rotations started from: when the
    # connection holds another one, the operator re-authorised and the connection's token wins.
    sa.Column("origin", sa.String(64)),
)


def _ensure_origin_column(state: StateStore) -> None:
    """State databases made before ``origin`` existed get the column (a stored chain then has none).

    Looked up and altered in the tenant's own schema: ``sa.inspect`` and a text ALTER do not go
    through the engine's schema_translate_map, so unqualified they would read (and change) the
    URL's default schema, another tenant's tables or none at all.
    """
    columns = {c["name"] for c in sa.inspect(state.engine).get_columns("oauth_tokens", schema=state.schema)}
    if "origin" not in columns:
        preparer = state.engine.dialect.identifier_preparer
        table = f"{preparer.quote_schema(state.schema)}.oauth_tokens" if state.schema else "oauth_tokens"
        try:
            with state.engine.begin() as conn:
                conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN origin VARCHAR(64)"))
        except sa.exc.DBAPIError:
            # Two first tasks may both have seen it missing: the other one added it.
            columns = {c["name"] for c in sa.inspect(state.engine).get_columns("oauth_tokens", schema=state.schema)}
            if "origin" not in columns:
                raise


def forget_tokens(state: StateStore, client_id: str | None = None) -> int:
    """Delete stored token pairs (all, or one client's); the connection's tokens are used next."""
    state.create_tables([oauth_tokens])
    q = sa.delete(oauth_tokens)
    if client_id:
        q = q.where(oauth_tokens.c.account.startswith(f"{client_id}:", autoescape=True))
    with state.begin() as conn:
        return conn.execute(q).rowcount


def is_oauth(extra: dict) -> bool:
    return bool(extra.get("client_id") and extra.get("client_secret") and extra.get("refresh_token"))


class TokenStore:
    """The current token pair of one (client, location), encrypted in the state database."""

    _lock = threading.Lock()  # one refresh at a time per process

    def __init__(self, state: StateStore, extra: dict):
        self.state = state
        self.client_id = extra["client_id"]
        self.client_secret = extra["client_secret"]
        self.initial_refresh_token = extra["refresh_token"]
        self.account = f"{self.client_id}:{extra.get('location_id', '')}"
        key = base64.urlsafe_b64encode(hashlib.sha256(b"ghl-s4s-tokens:" + self.client_secret.encode()).digest())
        self._fernet = Fernet(key)
        for secret in (self.client_secret, self.initial_refresh_token):
            mask_secret(secret)
        state.create_tables([oauth_tokens])
        _ensure_origin_column(state)
        self.origin = hmac.new(key, self.initial_refresh_token.encode(), hashlib.sha256).hexdigest()

    def _enc(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def _dec(self, value: str | None) -> str | None:
        if not value:
            return None
        try:
            token = self._fernet.decrypt(value.encode()).decode()
        except InvalidToken:
            return None  # the client secret changed: fall back to the connection's tokens
        mask_secret(token)
        return token

    def _row(self):
        """The stored pair, unless the connection now holds a refresh token the chain did not start from."""
        with self.state.begin() as conn:
            row = conn.execute(sa.select(oauth_tokens).where(oauth_tokens.c.account == self.account)).first()
        if row is not None and row.origin is not None and row.origin != self.origin:
            log.info("the connection holds a new refresh token (re-authorised): it wins over the stored one")
            return None
        return row

    def access_token(self) -> str | None:
        row = self._row()
        if row is None or (row.expires_at and row.expires_at.replace(tzinfo=UTC) <= datetime.now(UTC)):
            return None
        return self._dec(row.access_token)

    def refresh_token(self) -> str:
        row = self._row()
        return (self._dec(row.refresh_token) if row else None) or self.initial_refresh_token

    def save(self, access_token: str, refresh_token: str, expires_in: int | None) -> None:
        mask_secret(access_token)
        mask_secret(refresh_token)
        expires = utcnow() + timedelta(seconds=max(int(expires_in or 0) - 60, 0)) if expires_in else None
        values = {
            "account": self.account,
            "access_token": self._enc(access_token),
            "refresh_token": self._enc(refresh_token),
            "expires_at": expires,
            "updated_at": utcnow(),
            "origin": self.origin,
        }
        with self.state.begin() as conn:
            self.state._upsert(conn, oauth_tokens, values, ["account"])

    def refresh(self, hook, failed_token: str | None = None) -> str:
        """Trade the refresh token for a new pair; store it first, then return the access token."""
        with self._lock:
            current = self.access_token()
            if current and current != failed_token:
                return current  # another thread refreshed while this one waited
            used = self.refresh_token()
            body = {
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "grant_type": "refresh_token",
                "refresh_token": used,
                "user_type": "Location",
            }
            resp = hook.token_request(body)
            if resp.status_code != 200:
                raise AuthError(
                    "ghl",
                    resp.status_code,
                    f"the OAuth refresh for client {self.client_id!r} was refused; re-authorize the app and put "
                    "the new refresh token in the ghl_default connection (extra.refresh_token)",
                )
            data = resp.json()
            self.save(data["access_token"], data["refresh_token"], data.get("expires_in"))
            log.info("GHL access token refreshed for client %s (refresh token rotated and stored)", self.client_id)
            return data["access_token"]
