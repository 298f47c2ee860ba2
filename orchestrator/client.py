"""A small client for applications: read the orchestrator's degradation level and feature map.

::

    from orchestrator.client import Degradation

    degradation = Degradation("http://127.0.0.1:8765", watch=True)  # one per process
    if degradation.enabled("analytics"):
        send_analytics(event)
    print(degradation.level)  # "normal", "degraded", "minimal" or "emergency"

- **Cached**: reads do not touch the network while the last answer is younger than its ``ttl_s``; then
  one conditional GET (``If-None-Match``) refreshes it, so each version's body is fetched once and
  the rest are 304s. With ``watch=True`` a background thread long-polls and updates the cache as soon
  as the level changes.
- **Fail-static**: when the orchestrator is unreachable, slow, or answers an error, reads go on
  returning the last known level and features (``stale`` is True); before any answer they return
  ``fallback_level`` and ``fallback_features``. Reads never raise.
- **Guarded** like the orchestrator's own recovery: consecutive failures open a circuit breaker
  (:mod:`orchestrator.resilience.breaker`; no request while it is open, one trial when the period is
  over, the period doubling after a failed trial), and the watch thread waits a jittered exponential
  backoff (:mod:`orchestrator.resilience.backoff`) between failed tries.
- **Thread-safe**: one lock around the cached answer; a snapshot is always one version's level and
  features together; one refresh at a time (other readers use the cache meanwhile).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.resilience.backoff import equal_jitter_delay
from orchestrator.resilience.breaker import BreakerConfig, CircuitBreaker

LEVELS = ("normal", "degraded", "minimal", "emergency")
#: Consecutive failed requests that open the breaker.
FAILURE_THRESHOLD = 3
#: The breaker's first open period, and its cap (it doubles after each failed trial).
OPEN_BASE_S, OPEN_CAP_S = 2.0, 60.0
#: The watch thread's backoff between failed tries (equal jitter), and its long-poll length.
RETRY_BASE_S, RETRY_CAP_S = 0.5, 30.0
WATCH_WAIT_S = 30.0
#: Used as the ttl before the first answer says otherwise.
DEFAULT_TTL_S = 10.0


@dataclass(frozen=True)
class Snapshot:
    """One version of the published level, as this process last knew it."""

    level: str
    version: int | None
    since: str | None
    reasons: tuple[str, ...]
    features: dict[str, Any] = field(default_factory=dict)
    fetched_at: float | None = None  # clock.monotonic() of the answer; None: never answered
    stale: bool = True  # the last try failed, or nothing was ever received

    def enabled(self, name: str, default: bool = False) -> bool:
        value = self.features.get(name)
        return default if value is None else bool(value)


class Degradation:
    """The degradation level of one scope of one orchestrator. See the module docstring."""

    def __init__(self, base_url: str, *, scope: str | None = None, token: str | None = None,
                 timeout_s: float = 5.0, fallback_level: str = "normal",
                 fallback_features: dict[str, Any] | None = None, watch: bool = False,
                 session: requests.Session | None = None, clock: Clock = SYSTEM_CLOCK,
                 rng: random.Random | None = None) -> None:
        parts = urlsplit(base_url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url: expected http(s)://host[:port], got {base_url!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s: must be > 0, got {timeout_s!r}")
        if fallback_level not in LEVELS:
            raise ValueError(f"fallback_level: one of {', '.join(LEVELS)}, got {fallback_level!r}")
        self.url = base_url.rstrip("/") + "/api/v1/degradation"
        self.params = {"scope": scope} if scope else {}
        self.timeout_s, self.clock = timeout_s, clock
        self._session = session or requests.Session()
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._lock = threading.Lock()
        self._fetching = threading.Lock()
        self._snapshot = Snapshot(fallback_level, None, None, (), dict(fallback_features or {}))
        self._etag: str | None = None
        self._ttl_s = DEFAULT_TTL_S
        self._breaker = CircuitBreaker(BreakerConfig(FAILURE_THRESHOLD, OPEN_BASE_S, OPEN_CAP_S))
        self._failures = 0
        self._rng = rng or random.Random()
        self.last_error: str | None = None
        self.requests = 0  # sent, for the curious and the tests
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if watch:
            self._thread = threading.Thread(target=self._watch, name="degradation-watch", daemon=True)
            self._thread.start()

    # -- reading (never raises) -------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The cached answer, refreshed first if it is older than its ttl (one request at most)."""
        snap = self._current()
        if not self._watching() and (snap.fetched_at is None or
                                     self.clock.monotonic() - snap.fetched_at >= self._ttl_s):
            self.refresh()
            snap = self._current()
        return snap

    @property
    def level(self) -> str:
        return self.snapshot().level

    @property
    def features(self) -> dict[str, Any]:
        return dict(self.snapshot().features)

    @property
    def version(self) -> int | None:
        return self.snapshot().version

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.snapshot().reasons

    @property
    def stale(self) -> bool:
        return self._current().stale

    def enabled(self, name: str, default: bool = False) -> bool:
        """Is feature ``name`` on at the current level (``default`` when the map does not name it)?"""
        return self.snapshot().enabled(name, default)

    def value(self, name: str, default: Any = None) -> Any:
        """Feature ``name``'s value at the current level (``default`` when the map does not name it)."""
        return self.snapshot().features.get(name, default)

    # -- fetching ---------------------------------------------------------------------------------
    def refresh(self, wait_s: float | None = None) -> bool:
        """One conditional GET (a long-poll with ``wait_s``); True when the level or features changed.
        Never raises: a failure is recorded (``last_error``, ``stale``) and counted by the breaker."""
        if not self._fetching.acquire(blocking=wait_s is not None):
            return False  # another thread is fetching: the cache serves meanwhile
        try:
            return self._fetch(wait_s)
        finally:
            self._fetching.release()

    def _fetch(self, wait_s: float | None) -> bool:
        now = self.clock.now()
        if not self._breaker.allow(now):
            self._mark_stale(f"circuit open until {self._breaker.opened_until:%H:%M:%S}")
            return False
        params, headers = dict(self.params), dict(self._headers)
        current = self._current()
        if wait_s is not None and current.version is not None:
            params.update(after=str(current.version), wait=f"{wait_s:g}s")
        elif self._etag:
            headers["If-None-Match"] = self._etag
        try:
            self.requests += 1
            response = self._session.get(self.url, params=params, headers=headers,
                                         timeout=self.timeout_s + (wait_s or 0.0))
            if response.status_code == 304:
                self._succeeded(None, response)
                return False
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            doc = response.json()
            if doc.get("level") not in LEVELS or not isinstance(doc.get("features"), dict):
                raise ValueError("not a degradation document")
        except (requests.RequestException, ValueError) as exc:
            self._failed(exc)
            return False
        return self._succeeded(doc, response)

    def _succeeded(self, doc: dict[str, Any] | None, response: requests.Response) -> bool:
        self._breaker.record_success(self.clock.now())
        self._failures = 0
        self.last_error = None
        mono = self.clock.monotonic()
        with self._lock:
            old = self._snapshot
            if doc is None:  # 304: what we hold is current
                self._snapshot = Snapshot(old.level, old.version, old.since, old.reasons, old.features, mono, False)
                return False
            self._etag = response.headers.get("ETag") or self._etag
            try:
                self._ttl_s = max(0.0, float(doc.get("ttl_s", DEFAULT_TTL_S)))
            except (TypeError, ValueError):
                self._ttl_s = DEFAULT_TTL_S
            self._snapshot = Snapshot(doc["level"], doc.get("version"), doc.get("since"),
                                      tuple(doc.get("reasons") or ()), dict(doc["features"]), mono, False)
            return (old.level, old.features) != (doc["level"], doc["features"])

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        self._breaker.record_failure(self.clock.now())
        self._mark_stale(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip())

    def _mark_stale(self, reason: str) -> None:
        self.last_error = reason
        with self._lock:
            if not self._snapshot.stale:
                s = self._snapshot
                self._snapshot = Snapshot(s.level, s.version, s.since, s.reasons, s.features, s.fetched_at, True)

    def _current(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    # -- watching -------------------------------------------------------------------------------
    def _watching(self) -> bool:
        return self._thread is not None and not self._stop.is_set()

    def _watch(self) -> None:
        while not self._stop.is_set():
            first = self._current().version is None
            self.refresh(None if first else WATCH_WAIT_S)
            if self.last_error is not None:  # failed, or the breaker is open: back off, with jitter
                self._stop.wait(equal_jitter_delay(max(1, self._failures), RETRY_BASE_S, RETRY_CAP_S, self._rng))

    def close(self) -> None:
        """Stop the watch thread and close the session. A long-poll in flight is not waited for: the
        thread (a daemon) ends when it answers."""
        self._stop.set()
        self._session.close()
        if self._thread is not None:
            self._thread.join(0.5)

    def __enter__(self) -> Degradation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self._current()
        return f"Degradation({self.url!r}, level={s.level!r}, version={s.version}, stale={s.stale})"
