"""Request budgets that every thread and process of one API account shares (pyrate-limiter).

One budget per (service, account): GHL per location id, Shift4Shop per store SecureURL. It lives
in a shared backend, so the two GHL fetch tasks Airflow runs side by side, and later Celery
workers on several hosts, spend one allowance instead of one each:

* ``sqlite:///path`` (the default, a file in the data dir): one host, any number of processes;
  pyrate-limiter's ``SQLiteBucket`` with its file lock.
* ``redis://host:port/db``: several hosts; ``RedisBucket`` (an atomic Lua check-and-insert).
* ``postgresql://…``: several hosts; ``PostgresBucket`` (a table lock per check-and-insert).

Counting is pyrate-limiter's sliding-window log. What it does not cover is kept here, small:
a blocking :meth:`RateBudget.acquire` that re-stamps every attempt, and a "not before" time in
the same backend (:meth:`RateBudget.pause` after a 429, :meth:`RateBudget.observe_remaining`
when the server says few requests are left), which every process of the account honours.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import random
import sqlite3
import threading
import time
import weakref
import zlib
from pathlib import Path
from urllib.parse import urlsplit

from pyrate_limiter import Rate, RateItem, SingleBucketFactory, validate_rate_list

# A denied attempt sleeps as long as the bucket says, at least this long (no spinning) and at
# most this long (a pause set by another process is seen soon), plus a little jitter so
# processes that were told the same wake-up time do not all knock at once.
MIN_SLEEP_S = 0.005
MAX_SLEEP_S = 1.0
JITTER_S = 0.02


# -- rates ---------------------------------------------------------------------------------------
def budget_rates(burst: float, rate_per_s: float, *, windows_s: tuple[float, ...] = ()) -> list[Rate]:
    """The sliding-window rates that keep a client within ``burst`` + ``rate_per_s`` × t.

    * ``Rate(burst, burst / rate_per_s seconds)`` (to the millisecond): any span of t seconds is
      covered by ⌈t / window⌉ windows, so it holds at most ``burst + rate_per_s × t`` requests,
      the bound of a token bucket of ``burst`` refilled at ``rate_per_s``.
    * For each of ``windows_s`` (a server's documented window, e.g. GHL's 10 s), a cap of
      ``⌊rate_per_s × window⌋`` per window: the sustained rate, without the burst on top.

    The list is made well-formed for pyrate-limiter only ever by tightening a rate.
    """
    burst_n = max(1, int(burst))
    rates = [Rate(burst_n, max(1, math.floor(1000 * burst_n / rate_per_s)))]
    rates += [Rate(max(1, math.floor(rate_per_s * w)), max(1, round(1000 * w))) for w in windows_s]
    out: list[Rate] = []
    for rate in sorted(rates, key=lambda r: (r.interval, r.limit)):
        limit = rate.limit
        if out and out[-1].interval == rate.interval:
            continue  # same window: the first (smaller) limit already holds
        if out:  # a longer window may not allow a higher density than a shorter one
            limit = min(limit, math.floor(rate.interval * out[-1].limit / out[-1].interval))
        while out and out[-1].limit >= limit:
            out.pop()  # a longer window with no more room makes the shorter one redundant
        out.append(Rate(limit, rate.interval))
    assert validate_rate_list(out), out
    return out


def budget_key(service: str, account: str) -> str:
    """A backend-safe name for one account's budget (table name, Redis key)."""
    digest = hashlib.sha256(f"{service}\x00{account}".encode()).hexdigest()[:20]
    return f"budget_{service}_{digest}"


# -- the "not before" time ----------------------------------------------------------------------
class _SqliteHold:
    """``not_before`` (epoch seconds) per budget, in the bucket's SQLite file."""

    def __init__(self, path: str, key: str):
        self.key = key
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._conn.execute("CREATE TABLE IF NOT EXISTS budget_hold (key TEXT PRIMARY KEY, not_before REAL NOT NULL)")

    def extend(self, seconds: float) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO budget_hold (key, not_before) VALUES (?, ?) ON CONFLICT (key) "
                "DO UPDATE SET not_before = max(not_before, excluded.not_before)",
                (self.key, time.time() + seconds),
            )

    def remaining(self) -> float:
        with self._lock:
            row = self._conn.execute("SELECT not_before FROM budget_hold WHERE key = ?", (self.key,)).fetchone()
        return max(0.0, row[0] - time.time()) if row else 0.0


class _RedisHold:
    """``not_before`` in a Redis key, on the Redis server's clock (hosts' clocks may differ)."""

    _EXTEND = """
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local hold = now + tonumber(ARGV[1])
    local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
    if hold > cur then redis.call('SET', KEYS[1], hold, 'PX', tonumber(ARGV[1]) + 1000) end
    return 0
    """
    _REMAINING = """
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
    return math.max(0, cur - now)
    """

    def __init__(self, client, key: str):
        self.key = f"{key}:hold"
        self._extend = client.register_script(self._EXTEND)
        self._remaining = client.register_script(self._REMAINING)

    def extend(self, seconds: float) -> None:
        self._extend(keys=[self.key], args=[max(1, math.ceil(seconds * 1000))])

    def remaining(self) -> float:
        return int(self._remaining(keys=[self.key])) / 1000


class _PostgresHold:
    """``not_before`` in a Postgres table, on the database server's clock."""

    def __init__(self, pool, key: str):
        self.key = key
        self._pool = pool
        with pool.connection() as conn:
            # Concurrent CREATE TABLE IF NOT EXISTS can still collide in Postgres: one at a time.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(b"ghl_s4s_budget_hold"),))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS ghl_s4s_budget_hold (key text PRIMARY KEY, not_before double precision)"
            )

    def extend(self, seconds: float) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO ghl_s4s_budget_hold (key, not_before) "
                "VALUES (%s, extract(epoch FROM clock_timestamp()) + %s) ON CONFLICT (key) "
                "DO UPDATE SET not_before = GREATEST(ghl_s4s_budget_hold.not_before, excluded.not_before)",
                (self.key, seconds),
            )

    def remaining(self) -> float:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT not_before - extract(epoch FROM clock_timestamp()) FROM ghl_s4s_budget_hold WHERE key = %s",
                (self.key,),
            ).fetchone()
        return max(0.0, float(row[0])) if row else 0.0


# -- backends ------------------------------------------------------------------------------------
_clients: dict[tuple[int, str], object] = {}
_clients_lock = threading.Lock()


def _client(url: str, make):
    """One Redis client / Postgres pool per process and URL (both are thread-safe pools)."""
    key = (os.getpid(), url)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = make(url)
        return _clients[key]


def _postgres_pool(url: str):
    from psycopg_pool import ConnectionPool

    # SQLAlchemy-style URLs (postgresql+psycopg2://) are accepted: the driver part is dropped.
    return ConnectionPool(f"postgresql://{url.split('://', 1)[1]}", min_size=1, max_size=4, open=True)


def _open_backend(backend: str, key: str, rates: list[Rate]):
    """(bucket, hold) for one budget on the backend named by the URL ``backend``."""
    scheme = urlsplit(backend).scheme.split("+", 1)[0].lower()
    if scheme == "sqlite":
        from pyrate_limiter import SQLiteBucket

        path = backend.split("://", 1)[1]
        path = path[1:] if path.startswith("/") else path  # sqlite:///rel, sqlite:////abs
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        bucket = SQLiteBucket.init_from_file(rates, table=key, db_path=path, use_file_lock=True)
        return bucket, _SqliteHold(path, key)
    if scheme in ("redis", "rediss", "unix"):
        import redis
        from pyrate_limiter import RedisBucket

        client = _client(backend, redis.Redis.from_url)
        return RedisBucket.init(rates, client, f"ghl_s4s:{key}"), _RedisHold(client, f"ghl_s4s:{key}")
    if scheme in ("postgresql", "postgres"):
        from pyrate_limiter import PostgresBucket

        pool = _client(backend, _postgres_pool)
        return PostgresBucket(pool, key, rates), _PostgresHold(pool, key)
    raise ValueError(f"GHL_S4S_RATE_BACKEND: unsupported backend {scheme!r} (sqlite, redis or postgresql)")


# -- the budget ----------------------------------------------------------------------------------
class RateBudget:
    """One account's request budget, shared by every process and thread on the same backend."""

    def __init__(self, service: str, account: str, rates: list[Rate], backend: str, *, burst: float, rate_per_s: float):
        self.service, self.rates, self.backend = service, rates, backend
        self.burst, self.rate_per_s = float(burst), float(rate_per_s)
        self.key = budget_key(service, account)
        self._bucket, self._hold = _open_backend(backend, self.key, rates)
        # The bucket's own cross-process lock (SQLite: its file lock) in front of a thread lock, as
        # pyrate-limiter's Limiter does; Redis and Postgres check-and-insert atomically themselves.
        self._locks = [threading.RLock()]
        if (file_lock := self._bucket.limiter_lock()) is not None:
            self._locks.append(file_lock)
        # pyrate-limiter's background leak, which drops entries older than the longest window.
        self._factory = SingleBucketFactory(self._bucket)

    def _try_once(self) -> float:
        """Take one request if the window has room: 0.0, else the seconds until it may have."""
        with contextlib.ExitStack() as stack:
            for lock in self._locks:
                stack.enter_context(lock)
            item = RateItem(self.key, self._bucket.now())
            if self._bucket.put(item):
                return 0.0
            wait_ms = self._bucket.waiting(item)
        return max(wait_ms, 1) / 1000 if isinstance(wait_ms, int) else MIN_SLEEP_S

    def acquire(self) -> float:
        """Take one request from the budget, sleeping as long as needed; returns the seconds slept.

        Every attempt is stamped afresh under the locks. (pyrate-limiter's own blocking wait
        re-uses the first stamp plus the time it meant to sleep, which falls behind the clock
        when processes queue for the lock, and a late request stamped early frees its slot early.)
        """
        slept = 0.0
        while True:
            wait = self._hold.remaining()
            if wait <= 0:
                wait = self._try_once()
                if wait <= 0:
                    return slept
            wait = min(max(wait, MIN_SLEEP_S), MAX_SLEEP_S) + random.uniform(0, JITTER_S)
            time.sleep(wait)
            slept += wait

    def pause(self, seconds: float) -> None:
        """Hold every request of this account, in every process, for ``seconds`` (after a 429)."""
        if seconds > 0:
            self._hold.extend(seconds)

    def observe_remaining(self, remaining: int | None, *, low_water: float | None = None) -> None:
        """The server says ``remaining`` requests are left in its window.

        Below ``low_water`` (default: the burst) something besides this budget is spending the
        account's allowance: every process holds off for as long as the sustained rate takes to
        earn back the shortfall.
        """
        if remaining is None:
            return
        low = self.burst if low_water is None else low_water
        if remaining < low:
            self.pause((low - remaining) / self.rate_per_s)

    def close(self) -> None:
        self._factory.close()


_budgets: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_budgets_lock = threading.Lock()


def shared_budget(
    service: str, account: str, *, burst: float, rate_per_s: float, backend: str, windows_s: tuple[float, ...] = ()
) -> RateBudget:
    """The budget of ``(service, account)`` on ``backend``: one object per process while in use.

    Sharing across processes is the backend's; the object is only reused within a process so
    that threads share one connection.
    """
    rates = budget_rates(burst, rate_per_s, windows_s=windows_s)
    key = (os.getpid(), backend, service, account, tuple((r.limit, r.interval) for r in rates), burst, rate_per_s)
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = RateBudget(service, account, rates, backend, burst=burst, rate_per_s=rate_per_s)
            _budgets[key] = budget
        return budget
