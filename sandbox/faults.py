"""Fault injection shared by both simulators: a ``FaultPlan`` of rules and the ASGI layer that applies it.

A plan is an ordered list of rules. Every API request (never ``/_sim/*``) is tried against the
rules in order; the first rule that matches it *and fires* decides what goes wrong. Rule fields:

- match: ``method`` (exact, upper-cased), ``path`` (regex, ``re.search`` on the URL path as the
  client sent it, query excluded);
- firing: ``after`` (skip the first N requests that reach this rule), ``count`` (fire at most N
  times), ``rate`` (probability, drawn from the plan's ``random.Random(seed)``, so a given request
  sequence always fires the same way);
- ``action``: ``status`` | ``storm`` | ``timeout`` | ``drop`` | ``commit_then_timeout`` |
  ``latency`` | ``malformed`` | ``truncated`` | ``empty_page`` | ``repeat_page``, with
  ``status``/``retry_after``/``message`` (status, storm, drop) or ``seconds`` (the sleeping actions).

``install_faults`` puts the layer inside the request log (so faulted requests are logged with the
status actually sent and a ``fault`` field) and outside everything else, so a ``status`` fault answers
before authentication and rate limiting. Sleeps are ``asyncio.sleep``: other requests keep being
served meanwhile. A faulted request's body is read before any sleep and replayed to the app, so a
request whose client gave up still reaches the app intact (``timeout`` writes late; uvicorn would
otherwise hand a disconnected request no body).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.common import FAULT_SCOPE_KEY

__all__ = ["ACTIONS", "FaultMiddleware", "FaultPlan", "attach_fault_plan", "install_faults", "status_phrase"]

ACTIONS: tuple[str, ...] = (
    "status",
    "storm",
    "timeout",
    "drop",
    "commit_then_timeout",
    "latency",
    "malformed",
    "truncated",
    "empty_page",
    "repeat_page",
)
_SLEEPING = {"timeout": 5.0, "drop": 5.0, "commit_then_timeout": 5.0, "latency": 1.0}  # default seconds
_KEYS = {"method", "path", "rate", "after", "count", "action", "status", "retry_after", "seconds", "message"}
_ONLY_FOR = {
    "status": {"status"},
    "retry_after": {"status", "storm"},
    "message": {"status", "storm", "drop"},
    "seconds": set(_SLEEPING),
}
MALFORMED_BODY = b"<html>Bad gateway</html>"
FIRED_MAX = 10_000  # the fired log keeps this many latest entries

# (status, the rule's message or None) -> the service's own error response.
ErrorResponse = Callable[[int, "str | None"], Response]


def status_phrase(status: int) -> str:
    """The standard reason phrase (``Service Unavailable``), the default message of a fault answer."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _number(value: Any, name: str, *, lo: float = 0.0, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be between {lo} and {hi}" if hi is not None else f"{name} must be >= {lo}")
    return float(value)


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


@dataclass
class Rule:
    """One validated rule plus its counters (``matched``: requests that reached it and matched)."""

    action: str
    method: str | None = None
    path: str | None = None
    rate: float = 1.0
    after: int = 0
    count: int | None = None
    status: int | None = None
    retry_after: int | None = None
    seconds: float | None = None
    message: str | None = None
    matched: int = 0
    fires: int = 0
    regex: re.Pattern | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, raw: Any, i: int) -> Rule:
        where = f"rules[{i}]"
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be an object")
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
        action = raw.get("action")
        if action not in ACTIONS:
            raise ValueError(f"{where}.action must be one of {', '.join(ACTIONS)}")
        for key, allowed in _ONLY_FOR.items():
            if raw.get(key) is not None and action not in allowed:
                raise ValueError(f"{where}.{key} does not apply to action {action}")
        rule = cls(action="status" if action == "storm" else action)
        if raw.get("method") is not None:
            if not isinstance(raw["method"], str) or not raw["method"]:
                raise ValueError(f"{where}.method must be a non-empty string")
            rule.method = raw["method"].upper()
        if raw.get("path") is not None:
            if not isinstance(raw["path"], str):
                raise ValueError(f"{where}.path must be a string (a regular expression)")
            try:
                rule.regex = re.compile(raw["path"])
            except re.error as exc:
                raise ValueError(f"{where}.path is not a valid regular expression: {exc}") from None
            rule.path = raw["path"]
        if raw.get("rate") is not None:
            rule.rate = _number(raw["rate"], f"{where}.rate", hi=1.0)
        if raw.get("after") is not None:
            rule.after = _count(raw["after"], f"{where}.after")
        if raw.get("count") is not None:
            rule.count = _count(raw["count"], f"{where}.count")
        if action == "storm":
            rule.status = 429
        elif action == "status":
            status = raw.get("status", 503)
            if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
                raise ValueError(f"{where}.status must be an HTTP status code (100-599)")
            rule.status = status
        if raw.get("retry_after") is not None:
            rule.retry_after = _count(raw["retry_after"], f"{where}.retry_after")
        if action in _SLEEPING:
            seconds = raw.get("seconds")
            rule.seconds = _SLEEPING[action] if seconds is None else _number(seconds, f"{where}.seconds")
        if raw.get("message") is not None:
            if not isinstance(raw["message"], str):
                raise ValueError(f"{where}.message must be a string")
            rule.message = raw["message"]
        return rule

    def as_dict(self) -> dict[str, Any]:
        keys = ("action", "method", "path", "rate", "after", "count", "status", "retry_after", "seconds", "message")
        out = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        out.update(matched=self.matched, fires=self.fires)
        return out

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.regex is None or bool(self.regex.search(path)))


class FaultPlan:
    """The active rules of one simulator, their counters, the seeded RNG and the log of firings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._seed = 0
        self._rng = random.Random(0)
        self._fired: deque[dict[str, Any]] = deque(maxlen=FIRED_MAX)

    def set(self, rules: Iterable[dict], seed: int = 0) -> list[dict[str, Any]]:
        """Replace the plan (counters, RNG and fired log start over); ``ValueError`` on a bad rule."""
        if isinstance(rules, dict | str | bytes) or not isinstance(rules, Iterable):
            raise ValueError("rules must be a list of rule objects")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError("seed must be an integer")
        parsed = [Rule.parse(raw, i) for i, raw in enumerate(rules)]
        with self._lock:
            self._rules, self._seed, self._rng = parsed, seed, random.Random(seed)
            self._fired = deque(maxlen=FIRED_MAX)
            return [r.as_dict() for r in parsed]

    def clear(self) -> None:
        self.set([], 0)

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.as_dict() for r in self._rules]

    def fired(self) -> list[dict[str, Any]]:
        """``[{rule, action, method, path, ts}]``: the firings, oldest first (the last ``FIRED_MAX``)."""
        with self._lock:
            return [dict(f) for f in self._fired]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rules": [r.as_dict() for r in self._rules],
                "seed": self._seed,
                "fired": [dict(f) for f in self._fired],
            }

    def decide(self, method: str, path: str) -> Rule | None:
        """The rule that fires for this request, if any (and count it)."""
        with self._lock:
            for i, rule in enumerate(self._rules):
                if not rule.matches(method, path):
                    continue
                rule.matched += 1
                if rule.matched <= rule.after or (rule.count is not None and rule.fires >= rule.count):
                    continue
                # rate 1 and 0 draw nothing, so adding a certain rule never shifts another's sequence.
                if rule.rate < 1.0 and (rule.rate <= 0.0 or self._rng.random() >= rule.rate):
                    continue
                rule.fires += 1
                fired = {"rule": i, "action": rule.action, "method": method, "path": path, "ts": time.time()}
                self._fired.append(fired)
                return rule
        return None


def attach_fault_plan(state: Any) -> FaultPlan:
    """``state.faults``, created when the state class does not make one itself.

    A created plan is also cleared by the instance's ``reset()`` (wrapped here), so ``reset()`` clears
    the plan on every simulator state.
    """
    plan = getattr(state, "faults", None)
    if isinstance(plan, FaultPlan):
        return plan
    plan = FaultPlan()
    state.faults = plan
    original_reset = state.reset

    def reset(*args: Any, **kwargs: Any) -> Any:
        result = original_reset(*args, **kwargs)
        plan.clear()
        return result

    state.reset = reset
    return plan


# --------------------------------------------------------------------------------------------------
# the ASGI layer


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the app the already-read body once, then the real channel (disconnect notices)."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _capture(app: ASGIApp, scope: Scope, receive: Receive) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run the app to completion (its writes are committed) and keep its answer instead of sending it."""
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return start.get("status", 500), list(start.get("headers", [])), b"".join(chunks)


async def _send(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, content_type: bytes | None = None
) -> None:
    drop = {b"content-length"} | ({b"content-type"} if content_type else set())
    out = [(k, v) for k, v in headers if k.lower() not in drop]
    if content_type:
        out.append((b"content-type", content_type))
    out.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _empty_lists(payload: Any) -> Any:
    """A list page with its items removed: a bare array becomes ``[]``; an object keeps every key
    (``total``, ``count``, ``meta``) but each top-level array value becomes ``[]``."""
    if isinstance(payload, list):
        return []
    if isinstance(payload, dict):
        return {k: [] if isinstance(v, list) else v for k, v in payload.items()}
    return payload


def _strip_cursor(
    scope: Scope, body: bytes, query_names: frozenset[str], body_names: frozenset[str]
) -> tuple[Scope, bytes]:
    """The request without its paging cursor (so the app answers the first page again)."""
    query = scope.get("query_string", b"").decode("latin-1")
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if k.lower() not in query_names]
    if len(kept) != len(pairs):
        scope = {**scope, "query_string": urlencode(kept).encode("latin-1")}
    try:
        doc = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict) and any(k in body_names for k in doc):
        body = json.dumps({k: v for k, v in doc.items() if k not in body_names}).encode()
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
        scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
    return scope, body


def _json_dumps(payload: Any) -> bytes:
    # Byte-compatible with Starlette's JSONResponse rendering.
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


class FaultMiddleware:
    """Applies ``plan`` to every non-admin HTTP request (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        plan: FaultPlan,
        error_response: ErrorResponse,
        cursor_query: Iterable[str] = (),
        cursor_body: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.plan = plan
        self.error_response = error_response
        self.cursor_query = frozenset(n.lower() for n in cursor_query)
        self.cursor_body = frozenset(cursor_body)

    def _error(self, status: int, message: str | None) -> Response:
        return self.error_response(status, message)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        rule = self.plan.decide(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        scope[FAULT_SCOPE_KEY] = rule.action  # read by the request log, which sits outside this layer
        body = await _read_body(receive)
        replay = _replay(body, receive)
        action = rule.action

        if action == "status":
            response = self._error(rule.status or 503, rule.message)
            if rule.retry_after is not None:
                response.headers["Retry-After"] = str(rule.retry_after)
            await response(scope, replay, send)
        elif action == "drop":
            await asyncio.sleep(rule.seconds or 0)
            await self._error(504, rule.message)(scope, replay, send)
        elif action in ("timeout", "latency"):
            await asyncio.sleep(rule.seconds or 0)
            await self.app(scope, replay, send)
        elif action == "repeat_page":
            scope2, body2 = _strip_cursor(scope, body, self.cursor_query, self.cursor_body)
            await self.app(scope2, _replay(body2, receive), send)
        else:
            status, headers, content = await _capture(self.app, scope, replay)
            if action == "commit_then_timeout":
                await asyncio.sleep(rule.seconds or 0)
                await _send(send, status, headers, content)
            elif action == "malformed":
                await _send(send, 200, headers, MALFORMED_BODY, b"text/html; charset=utf-8")
            elif action == "truncated":
                await _send(send, status, headers, content[: len(content) // 2])
            else:  # empty_page: only a 2xx JSON answer is a page to empty
                if 200 <= status < 300:
                    with contextlib.suppress(ValueError, UnicodeDecodeError):
                        content = _json_dumps(_empty_lists(json.loads(content)))
                await _send(send, status, headers, content)


def install_faults(
    app: Any,
    plan: FaultPlan,
    error_response: ErrorResponse,
    *,
    cursor_query: Iterable[str] = (),
    cursor_body: Iterable[str] = (),
) -> None:
    """Add the fault layer and ``GET/POST/DELETE /_sim/faults``.

    Call it after the app's own middleware and *before* ``install_request_log``, so the log wraps it.
    ``error_response(status, message)`` renders the service's own error envelope; ``cursor_query`` /
    ``cursor_body`` name the paging-cursor parameters ``repeat_page`` removes.
    """
    app.add_middleware(
        FaultMiddleware,
        plan=plan,
        error_response=error_response,
        cursor_query=tuple(cursor_query),
        cursor_body=tuple(cursor_body),
    )

    async def get_faults() -> Response:
        return Response(_json_dumps(plan.snapshot()), media_type="application/json")

    async def set_faults(request: Request) -> Response:
        try:
            raw = json.loads(await request.body() or b"{}")
            if isinstance(raw, list):
                raw = {"rules": raw}
            if not isinstance(raw, dict):
                raise ValueError('body must be {"rules": [...], "seed": 0}')
            extra = sorted(set(raw) - {"rules", "seed"})
            if extra:
                raise ValueError(f"unknown key(s): {', '.join(extra)}")
            seed = raw.get("seed")
            rules = plan.set(raw.get("rules") or [], 0 if seed is None else seed)
        except (ValueError, UnicodeDecodeError) as exc:
            return error_response(400, str(exc))
        return Response(_json_dumps({"rules": rules, "seed": plan.snapshot()["seed"]}), media_type="application/json")

    async def clear_faults() -> Response:
        plan.clear()
        return Response(_json_dumps({"cleared": True}), media_type="application/json")

    app.add_api_route("/_sim/faults", get_faults, methods=["GET"], name="sim_get_faults")
    app.add_api_route("/_sim/faults", set_faults, methods=["POST"], name="sim_set_faults")
    app.add_api_route("/_sim/faults", clear_faults, methods=["DELETE"], name="sim_clear_faults")
