"""The one HTTP layer both API clients stand on: HttpHook sessions, request budgets and retries.

* Requests go through the http provider's ``HttpHook`` (``get_conn`` + ``run_and_check``), so
  connections, proxies and TLS settings behave as every Airflow user expects.
* A :class:`~ghl_shift4shop.budget.RateBudget` per service and account is shared by every thread
  and process of that account (a SQLite file, Redis or Postgres: ``GHL_S4S_RATE_BACKEND``) and
  corrected by what the server reports, so concurrent requests spend the budget without tripping it.
* Retries (tenacity): exponential backoff with jitter on 429, 5xx, timeouts and connection errors,
  honouring ``Retry-After``. Other 4xx come back to the caller untouched: they are answers.
* A request that is not idempotent (a create) is never blindly re-sent after a timeout: the caller
  gets :class:`AmbiguousWriteError` and must look the record up first.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from typing import Any

import requests
from airflow.providers.http.hooks.http import HttpHook
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from ghl_shift4shop.budget import RateBudget, shared_budget
from ghl_shift4shop.errors import PermanentError

log = logging.getLogger(__name__)

# The "@" may be percent-encoded in a URL (%40), or encoded twice (%2540); "+" in the local part
# arrives as %2B, which the local part's "%" covers.
_EMAIL_RE = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*(@|%(?:25)*40)([A-Za-z0-9.\-]+)", re.IGNORECASE)


def mask_email(text: str) -> str:
    """``jane.doe@example.com`` → ``j***@example.com``, also inside URLs (for log lines).

    ``?email=jane.doe%40example.com`` → ``?email=j***%40example.com``.
    """
    return _EMAIL_RE.sub(r"\1***\2\3", str(text))


def _masked(exc: requests.RequestException) -> requests.RequestException:
    """The same requests exception with e-mails masked in its message (it often quotes the URL)."""
    message = mask_email(str(exc))
    if message == str(exc):
        return exc
    return type(exc)(message, request=exc.request, response=exc.response)


class _MaskedLog:
    """A logger whose lines have e-mails masked: HttpHook's own warnings quote failing URLs."""

    _LEVELS = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal"})

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name: str):
        method = getattr(self._inner, name)
        if name not in self._LEVELS:
            return method

        def masked(msg, *args, **kwargs):
            try:
                text = str(msg) % args if args else str(msg)
            except (TypeError, ValueError):
                text = " ".join(map(str, (msg, *args)))
            return method(mask_email(text), **kwargs)

        return masked


class ApiError(Exception):
    """A non-success answer. The message never contains credentials (only the server's words)."""

    def __init__(self, service: str, status: int | None, message: str, *, retry_after: float | None = None):
        self.service = service
        self.status = status
        self.message = message
        self.retry_after = retry_after
        super().__init__(f"{service} answered {status}: {mask_email(message)[:500]}")


class RetryableError(ApiError):
    """429 and 5xx: worth trying again after a pause."""


class AuthError(ApiError, PermanentError):
    """401/403: credentials or permissions are wrong; retrying will not help."""


class DailyBudgetLow(ApiError):
    """The day's request budget is nearly spent: stop cleanly and resume on the next run."""


class AmbiguousWriteError(ApiError):
    """A write whose outcome is unknown (timed out or connection lost after sending)."""


def _retry_after_seconds(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, AmbiguousWriteError):
        return False
    return isinstance(exc, (RetryableError, requests.ConnectionError, requests.Timeout))


class ApiHook(HttpHook):
    """Base for the two service hooks: one session per hook, budgeted and retried requests."""

    service = "api"
    base_path = ""
    # A server's documented request window(s), in seconds, that the budget caps at the sustained
    # rate (see budget.budget_rates); the service hooks set theirs.
    budget_windows_s: tuple[float, ...] = ()

    def __init__(
        self,
        conn_id: str,
        *,
        timeout: float | None = None,
        max_attempts: int | None = None,
        backoff_max: float = 60.0,
        rate_backend: str | None = None,
        settings=None,
    ):
        """Tunables left out (None) come from the settings (``GHL_S4S_*``, defaults in settings.py)."""
        from ghl_shift4shop.settings import load_settings

        super().__init__(method="GET", http_conn_id=conn_id)
        self.settings = settings or load_settings()
        self.timeout = self.settings.http_timeout_seconds if timeout is None else timeout
        self.max_attempts = self.settings.http_max_attempts if max_attempts is None else max_attempts
        self.backoff_max = backoff_max
        self.rate_backend = rate_backend or self.settings.rate_backend
        self.burst: float = 1.0
        self.rate_per_s: float = 1.0
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        self._session: requests.Session | None = None
        self._budget: RateBudget | None = None
        self.connection = None

    @property
    def log(self):
        return _MaskedLog(super().log)

    # -- set-up ------------------------------------------------------------------------------
    def _configure_session_from_extra(self, session, connection, extra_options):
        """HttpHook's own handling of the extra, less the copying of every other key into headers.

        The provider sets ``proxies``/``proxy``, ``verify``/``verify_ssl``, ``cert``, ``stream``,
        ``max_redirects`` and ``trust_env`` on the session and keeps ``timeout``,
        ``allow_redirects`` and ``check_response`` in ``merged_extra``; all of that stands. But it
        also sends each remaining key as a request header, and our extras hold credentials
        (private keys, OAuth refresh tokens, client secrets, the location id): those headers are
        taken off again, so only the auth headers this hook sets itself go out.
        """
        headers = session.headers.copy()
        session = super()._configure_session_from_extra(session, connection, extra_options)
        session.headers = headers
        return session

    def send_options(self) -> dict[str, Any]:
        """What ``run_and_check`` gets: the extra's ``timeout``/``allow_redirects`` as HttpHook
        would use them (the hook's own timeout when the connection sets none); status codes are
        always ours to judge."""
        return {
            "check_response": False,
            "timeout": self.merged_extra.get("timeout", self.timeout),
            "allow_redirects": self.merged_extra.get("allow_redirects", True),
        }

    def auth_headers(self, connection) -> dict[str, str]:
        raise NotImplementedError

    def budget_account(self, connection) -> str:
        """Whose allowance the server counts requests against (a location, a store)."""
        raise NotImplementedError

    def make_budget(self, connection) -> RateBudget:
        backend = self.rate_backend
        return shared_budget(
            self.service,
            self.budget_account(connection),
            burst=self.burst,
            rate_per_s=self.rate_per_s,
            backend=backend,
            windows_s=self.budget_windows_s,
        )

    def observe(self, resp: requests.Response) -> None:
        """Read what the server says about the budget (override per service)."""

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self.connection = self.get_connection(self.http_conn_id)
            session = self.get_conn()
            session.headers.update(self.auth_headers(self.connection))
            self._budget = self.make_budget(self.connection)
            self._session = session
        return self._session

    @property
    def budget(self) -> RateBudget:
        _ = self.session
        assert self._budget is not None
        return self._budget

    # -- requests ----------------------------------------------------------------------------
    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff = wait_exponential_jitter(initial=0.5, max=self.backoff_max, jitter=1.0)(state)
        retry_after = getattr(exc, "retry_after", None)
        return max(backoff, retry_after) if retry_after else backoff

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s: attempt %d failed (%s); retrying in %.1fs",
            self.service,
            state.attempt_number,
            mask_email(str(exc)),
            state.next_action.sleep if state.next_action else 0,
        )

    def request(
        self,
        method: str,
        endpoint: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        idempotent: bool = True,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send one request with budget and retries; returns any non-retryable response."""
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(_is_retryable),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        return retrying(self._send_once, method, endpoint, params, json, idempotent, headers)

    def _send_once(self, method: str, endpoint: str, params, json, idempotent: bool, headers=None) -> requests.Response:
        session = self.session
        self.budget.acquire()
        url = self.url_from_endpoint(self.base_path + endpoint)
        prepped = session.prepare_request(requests.Request(method, url, params=params, json=json, headers=headers))
        with self._calls_lock:  # thread pools share one hook
            self.calls[self.service] += 1
        try:
            resp = self.run_and_check(session, prepped, self.send_options())
        except (requests.Timeout, requests.ConnectionError) as exc:
            if not idempotent and not isinstance(exc, requests.ConnectTimeout):
                # The server may have committed the write; re-sending could duplicate it.
                raise AmbiguousWriteError(self.service, None, f"{method} {endpoint}: {type(exc).__name__}") from None
            # Its message quotes the URL, which may carry an e-mail (GET /Customers?email=...).
            masked = _masked(exc)
            if masked is exc:
                raise
            raise masked from None
        self.observe(resp)
        if resp.status_code == 429:
            retry_after = _retry_after_seconds(resp)
            self.budget.pause(retry_after if retry_after is not None else 1.0)
            raise RetryableError(self.service, 429, resp.text[:300], retry_after=retry_after)
        if resp.status_code >= 500:
            if not idempotent:
                raise AmbiguousWriteError(self.service, resp.status_code, resp.text[:300])
            raise RetryableError(self.service, resp.status_code, resp.text[:300])
        if 200 <= resp.status_code < 300 and resp.content:
            try:
                resp.json()
            except ValueError:
                # A 2xx that is not JSON (a proxy's HTML page, a cut-off body) is a broken answer,
                # not data: retried for reads; for a write the outcome is unknown.
                cls = RetryableError if idempotent else AmbiguousWriteError
                raise cls(self.service, resp.status_code, "the answer is not valid JSON") from None
        return resp
