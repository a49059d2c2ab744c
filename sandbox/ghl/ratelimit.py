"""Rate limits (ghl-api.md §6, §9.4) for the GHL simulator's state.

Owns the per-(client, location) buckets: a burst window (``burst_max`` requests per
``burst_window_ms``) and a daily window (``daily_limit`` per 24 h) on ``time.monotonic()``; the decision
for one request (``hit``) with its ``Retry-After`` wait; and the five ``X-RateLimit-*`` header
values every API answer carries. Whether a 429 carries ``Retry-After`` is the app's call
(``send_retry_after``).

The burst window's kind is not documented (ghl-api.md §6), so it is a reading (``rate_window``):

* ``fixed``: a window that starts at the first request after the previous one ended; up to
  2 × ``burst_max`` requests can pass in one window's length across a boundary;
* ``sliding``: no span of ``burst_window_ms`` holds more than ``burst_max`` allowed requests (a
  log of the allowed ones); the harshest reading, and ``Retry-After`` is when the oldest leaves.

The daily window is always fixed.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from sandbox.ghl.tokens import Token

__all__ = ["DAY_S", "RateDecision", "RateLimitMixin"]

DAY_S = 86_400.0


@dataclass
class _Bucket:
    window_start: float
    window_count: int = 0
    day_start: float = 0.0
    day_count: int = 0
    # Sliding reading: when each request still in the window was allowed (oldest first).
    allowed_at: deque = field(default_factory=deque)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    headers: dict[str, str]
    retry_after: int | None = None


class RateLimitMixin:
    """The rate limiter (part of ``GhlState``)."""

    lock: threading.RLock
    rate_limit: bool
    burst_max: int
    burst_window_ms: int
    daily_limit: int
    rate_window: str

    def _init_rate_limits(self) -> None:
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def _headers(self, bucket: _Bucket | None) -> dict[str, str]:
        used_window = bucket.window_count if bucket and self.rate_limit else 0
        used_day = bucket.day_count if bucket and self.rate_limit else 0
        return {
            "X-RateLimit-Limit-Daily": str(self.daily_limit),
            "X-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - used_day)),
            "X-RateLimit-Interval-Milliseconds": str(self.burst_window_ms),
            "X-RateLimit-Max": str(self.burst_max),
            "X-RateLimit-Remaining": str(max(0, self.burst_max - used_window)),
        }

    def _bucket(self, token: Token, now: float) -> _Bucket:
        key = (token.client, token.location_id)
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(window_start=now, day_start=now)
        window_s = self.burst_window_ms / 1000
        if self.rate_window == "sliding":
            while b.allowed_at and now - b.allowed_at[0] >= window_s:
                b.allowed_at.popleft()
            b.window_count = len(b.allowed_at)
            b.window_start = b.allowed_at[0] if b.allowed_at else now
        # Fixed windows that start at the first request after the previous one ended.
        elif now - b.window_start >= window_s:
            b.window_start, b.window_count = now, 0
        if now - b.day_start >= DAY_S:
            b.day_start, b.day_count = now, 0
        return b

    def hit(self, token: Token | None) -> RateDecision:
        """Count one request for the token's (client, location) and decide whether it may proceed."""
        with self.lock:
            if token is None:
                return RateDecision(True, self._headers(None))
            if not self.rate_limit:
                return RateDecision(True, self._headers(None))
            now = time.monotonic()
            b = self._bucket(token, now)
            if b.day_count >= self.daily_limit:
                wait = b.day_start + DAY_S - now
                return RateDecision(False, self._headers(b), max(1, math.ceil(wait)))
            if b.window_count >= self.burst_max:
                wait = b.window_start + self.burst_window_ms / 1000 - now
                return RateDecision(False, self._headers(b), max(1, math.ceil(wait)))
            b.window_count += 1
            if self.rate_window == "sliding":
                b.allowed_at.append(now)
            b.day_count += 1
            return RateDecision(True, self._headers(b))

    def reset_rate_limits(self) -> None:
        with self.lock:
            self._buckets.clear()
