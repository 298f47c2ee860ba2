"""A small client for applications: read the orchestrator's degradation level and switch optional work off.

::

    from orchestrator.client import Degradation

    degradation = Degradation("http://orchestrator.internal:8765", watch=True)  # one per process
    if degradation.enabled("analytics"):         # False from "degraded" on, with the shipped map
        track(event)
    print(degradation.level)                      # normal < degraded < minimal < emergency

- **Cached**: reads do not touch the network while the last answer is younger than its ``ttl_s``; the
  first read after that sends one conditional GET (``If-None-Match``), so each version's body is fetched
  once and the rest are bodiless 304s. With ``watch=True`` a daemon thread long-polls
  (``?after=VERSION&wait=30``) and updates the cache as soon as the level changes; reads never wait.
- **Fail-static**: when the orchestrator is unreachable, slow, or answers an error or a body that is not
  a degradation document, reads go on returning the last known answer (``stale`` is True, ``last_error``
  says why); before any answer they return ``fallback_level`` and ``fallback_features``. Reads never raise.
- **Guarded** like the orchestrator's own work: after each failed request the next one waits an
  equal-jitter exponential backoff (:mod:`orchestrator.resilience.backoff`, 1 s doubling to 60 s), and
  ``FAILURE_THRESHOLD`` failures in a row open a :class:`~orchestrator.resilience.breaker.CircuitBreaker`:
  no request while it is open, then one half-open trial that closes it on success.
- **Thread-safe**: one lock around the cached answer; a :class:`Snapshot` is always one version's level
  and features together; one request in flight at a time (other readers use the cache meanwhile).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import requests

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import first_line
from orchestrator.resilience.backoff import equal_jitter_delay, exponential_delay
from orchestrator.resilience.breaker import BreakerConfig, CircuitBreaker

log = logging.getLogger(__name__)

LEVELS = ("normal", "degraded", "minimal", "emergency")
API_PATH = "/api/v1/degradation"
#: the ttl until the first answer names its own
DEFAULT_TTL_S = 10.0
#: failed requests in a row that open the breaker
FAILURE_THRESHOLD = 3
#: backoff after the n-th failure in a row: equal jitter in [ceiling/2, ceiling], ceiling = 1 s * 2**(n-1) <= 60 s
RETRY_BASE_S, RETRY_CAP_S = 1.0, 60.0
#: The breaker's open period is the short end of the jittered backoff at the same failure count, so the
#: breaker decides *whether* a try may go out (one half-open trial) and the jitter decides *when*.
BREAKER_CONFIG = BreakerConfig(
    failure_threshold=FAILURE_THRESHOLD,
    open_base_s=exponential_delay(FAILURE_THRESHOLD, RETRY_BASE_S, RETRY_CAP_S) / 2,
    open_cap_s=RETRY_CAP_S / 2,
)
#: the watch thread's long-poll (the server caps it at 60 s)
WATCH_WAIT_S = 30
#: a long-poll answered sooner than this without a change was not held (a busy server, a proxy):
#: the watch thread then waits ttl_s instead of asking again at once
MIN_HELD_POLL_S = 1.0
#: the shortest pause of the watch thread between failed or held tries (never a hot loop)
MIN_PAUSE_S = 0.05


class Outcome(StrEnum):
    """What one try to refresh did."""

    CHANGED = "changed"  # a new document (another version, level, features or reasons)
    UNCHANGED = "unchanged"  # 304, or the same document again
    FAILED = "failed"  # connection error, timeout, HTTP error or not a degradation document
    HELD = "held"  # no request: backing off, or the breaker is open
    BUSY = "busy"  # no request: another thread's request is in flight


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One version of the published level as this process last knew it; ``features`` is read-only."""

    level: str
    version: int | None  # None: nothing received yet (the fallback)
    since: str | None  # ISO time the level was entered, as the server wrote it
    reasons: tuple[str, ...]
    features: Mapping[str, Any]
    fetched_at: datetime | None  # clock.now() of the last answer (200 or 304)
    stale: bool  # the last try failed, or nothing was ever received

    def enabled(self, name: str, default: bool = False) -> bool:
        """True iff feature ``name`` is truthy (``default`` when the map does not name it)."""
        return bool(self.features[name]) if name in self.features else default

    def value(self, name: str, default: Any = None) -> Any:
        """Feature ``name``'s value (``default`` when the map does not name it)."""
        return self.features.get(name, default)


def parse_document(doc: object) -> tuple[Snapshot, float]:
    """A 200 body as (snapshot, ttl_s); ValueError saying what is wrong with it."""
    if not isinstance(doc, dict):
        raise ValueError(f"not a degradation document: a JSON {type(doc).__name__}")
    level, version, features = doc.get("level"), doc.get("version"), doc.get("features")
    reasons, since, ttl_s = doc.get("reasons") or [], doc.get("since"), doc.get("ttl_s", DEFAULT_TTL_S)
    if level not in LEVELS:
        raise ValueError(f"not a degradation document: level {level!r}")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"not a degradation document: version {version!r}")
    if not isinstance(features, dict) or not isinstance(reasons, list) or not isinstance(since, str | None):
        raise ValueError("not a degradation document: features, reasons or since of the wrong type")
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or not ttl_s >= 0:
        ttl_s = DEFAULT_TTL_S
    snap = Snapshot(level, version, since, tuple(str(r) for r in reasons), MappingProxyType(dict(features)),
                    None, False)
    return snap, float(ttl_s)


class Degradation:
    """The published degradation level of one scope of one orchestrator (see the module docstring).

    ``scope`` is a label selector such as ``"team=checkout"`` (None: the global level); ``token`` is sent
    as ``Authorization: Bearer``; ``timeout_s`` bounds each request (a long-poll adds its wait).
    ValueError naming the argument for a base_url that is not http(s), a timeout_s <= 0, an unknown
    fallback_level or fallback_features that is not a mapping.
    """

    def __init__(self, base_url: str, *, scope: str | None = None, token: str | None = None,
                 timeout_s: float = 5.0, fallback_level: str = "normal",
                 fallback_features: Mapping[str, Any] | None = None, watch: bool = False,
                 session: requests.Session | None = None, clock: Clock | None = None,
                 rng: random.Random | None = None) -> None:
        parts = urlsplit(base_url) if isinstance(base_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url: expected http(s)://host[:port], got {base_url!r}")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not timeout_s > 0:
            raise ValueError(f"timeout_s: expected a number of seconds > 0, got {timeout_s!r}")
        if fallback_level not in LEVELS:
            raise ValueError(f"fallback_level: expected one of {', '.join(LEVELS)}, got {fallback_level!r}")
        if fallback_features is not None and not isinstance(fallback_features, Mapping):
            raise ValueError(f"fallback_features: expected a mapping, got {type(fallback_features).__name__}")
        self.url = base_url.rstrip("/") + API_PATH
        self.scope, self.timeout_s = scope, float(timeout_s)
        self.clock = clock or SYSTEM_CLOCK
        self._rng = rng or random.Random()
        self._session = session or requests.Session()
        self._headers = {"Accept": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
        self._lock = threading.Lock()  # the cached state below
        self._fetching = threading.Lock()  # one request in flight
        self._snapshot = Snapshot(fallback_level, None, None, (),
                                  MappingProxyType(dict(fallback_features or {})), None, True)
        self._etag: str | None = None
        self._ttl_s = DEFAULT_TTL_S
        self._fetched_mono: float | None = None
        self._failures = 0
        self._retry_at = float("-inf")
        self._last_error: str | None = None
        self._breaker = CircuitBreaker(BREAKER_CONFIG)  # touched only by the thread holding _fetching
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if watch:
            self._thread = threading.Thread(target=self._watch, name="degradation-watch", daemon=True)
            self._thread.start()

    # -- reading: never raises, never waits longer than one request -------------------------------------
    def snapshot(self) -> Snapshot:
        """The cached answer; first one conditional refresh when it is older than its ttl (not in watch mode)."""
        with self._lock:
            snap, fetched, ttl_s = self._snapshot, self._fetched_mono, self._ttl_s
        if not self.watching and (fetched is None or self.clock.monotonic() - fetched >= ttl_s):
            if self._refresh(None, blocking=False) is not Outcome.BUSY:
                with self._lock:
                    snap = self._snapshot
        return snap

    @property
    def level(self) -> str:
        """``normal``, ``degraded``, ``minimal`` or ``emergency``."""
        return self.snapshot().level

    @property
    def features(self) -> dict[str, Any]:
        """A copy of the feature map of the current level."""
        return dict(self.snapshot().features)

    @property
    def version(self) -> int | None:
        """The published version (None before any answer)."""
        return self.snapshot().version

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the level is what it is, as the orchestrator wrote it."""
        return self.snapshot().reasons

    def enabled(self, name: str, default: bool = False) -> bool:
        """True iff feature ``name`` is truthy at the current level (``default`` when the map does not name it)."""
        return self.snapshot().enabled(name, default)

    def value(self, name: str, default: Any = None) -> Any:
        """Feature ``name``'s value at the current level, e.g. ``"reduced"`` (``default`` when not named)."""
        return self.snapshot().value(name, default)

    @property
    def stale(self) -> bool:
        """True when the last try failed or no answer was ever received (does not refresh)."""
        with self._lock:
            return self._snapshot.stale

    @property
    def last_error(self) -> str | None:
        """Why the last try failed or was held; None after a success."""
        with self._lock:
            return self._last_error

    @property
    def breaker_state(self) -> str:
        """``closed``, ``open`` or ``half_open``."""
        return self._breaker.state.value

    @property
    def watching(self) -> bool:
        """True while the watch thread runs (``watch=True`` and not closed)."""
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    # -- fetching ---------------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """One conditional GET now (unless backing off, the breaker is open or a request is in flight).

        Returns True when the document changed. Never raises: a failure sets ``stale`` and ``last_error``.
        """
        return self._refresh(None, blocking=False) is Outcome.CHANGED

    def _refresh(self, wait_s: float | None, *, blocking: bool) -> Outcome:
        if not self._fetching.acquire(blocking=blocking):
            return Outcome.BUSY
        try:
            return self._fetch(wait_s)
        except Exception as exc:  # a bug or a surprise from a library: reads must still not raise
            log.exception("degradation client: unexpected error url=%s", self.url)
            return self._failed(exc)
        finally:
            self._fetching.release()

    def _fetch(self, wait_s: float | None) -> Outcome:
        now, mono = self.clock.now(), self.clock.monotonic()
        with self._lock:
            version, etag, retry_at = self._snapshot.version, self._etag, self._retry_at
        if mono < retry_at:
            return Outcome.HELD  # backing off: last_error still says why
        permit = self._breaker.check(now)
        if not permit.allowed:
            return self._held(permit.reason)
        if permit.transition:
            log.info("degradation client: breaker half-open, one trial request url=%s", self.url)
        params: dict[str, str] = {"scope": self.scope} if self.scope else {}
        headers = dict(self._headers)
        if wait_s is not None and version is not None:
            params |= {"after": str(version), "wait": f"{wait_s:g}"}
        elif etag:
            headers["If-None-Match"] = etag
        try:
            response = self._session.get(self.url, params=params, headers=headers,
                                         timeout=(self.timeout_s, self.timeout_s + (wait_s or 0.0)))
            if response.status_code == 304:
                return self._succeeded(None, None)
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}: {_error_text(response)}")
            return self._succeeded(parse_document(response.json()), response.headers.get("ETag"))
        except (requests.RequestException, ValueError) as exc:
            return self._failed(exc)

    def _succeeded(self, parsed: tuple[Snapshot, float] | None, etag: str | None) -> Outcome:
        now, mono = self.clock.now(), self.clock.monotonic()
        if self._breaker.record_success(now):
            log.info("degradation client: breaker closed url=%s", self.url)
        with self._lock:
            old = self._snapshot
            self._failures, self._retry_at, self._last_error = 0, float("-inf"), None
            self._fetched_mono = mono
            if parsed is None:  # 304: what we hold is current
                self._snapshot = replace(old, fetched_at=now, stale=False)
                return Outcome.UNCHANGED
            new, self._ttl_s = parsed
            self._snapshot = replace(new, fetched_at=now)
            self._etag = etag or self._etag
        return Outcome.CHANGED if _published(old) != _published(new) else Outcome.UNCHANGED

    def _failed(self, exc: Exception) -> Outcome:
        now, mono = self.clock.now(), self.clock.monotonic()
        transition = self._breaker.record_failure(now)
        reason = f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__
        with self._lock:
            self._failures += 1
            self._retry_at = mono + equal_jitter_delay(self._failures, RETRY_BASE_S, RETRY_CAP_S, self._rng)
            self._last_error = reason
            self._snapshot = replace(self._snapshot, stale=True)
            failures, retry_in_s = self._failures, self._retry_at - mono
        if transition:  # the breaker's own reason speaks of recoveries: say it for a client
            log.warning("degradation client: breaker open url=%s failures=%d retry_in_s=%.1f error=%s",
                        self.url, failures, retry_in_s, reason)
        else:
            log.debug("degradation client: request failed url=%s failures=%d error=%s", self.url, failures, reason)
        return Outcome.FAILED

    def _held(self, reason: str) -> Outcome:
        with self._lock:
            self._last_error = reason
            self._snapshot = replace(self._snapshot, stale=True)
        return Outcome.HELD

    # -- watching ---------------------------------------------------------------------------------------
    def _watch(self) -> None:
        """Long-poll until closed: 1. ask (a plain GET until the first answer, then after=VERSION);
        2. pause: none after a change or a held poll, ttl_s after a poll answered at once, the backoff
        after a failure."""
        while not self._stop.is_set():
            started = self.clock.monotonic()
            outcome = self._refresh(WATCH_WAIT_S, blocking=True)
            mono = self.clock.monotonic()
            with self._lock:
                ttl_s, retry_at = self._ttl_s, self._retry_at
            if outcome in (Outcome.FAILED, Outcome.HELD, Outcome.BUSY):
                pause = max(MIN_PAUSE_S, retry_at - mono)
            elif outcome is Outcome.UNCHANGED and mono - started < MIN_HELD_POLL_S:
                pause = max(MIN_PAUSE_S, ttl_s)
            else:
                pause = 0.0
            if pause:
                self._stop.wait(pause)

    def close(self) -> None:
        """Stop the watch thread and close the session. A long-poll in flight is not waited for: the
        thread (a daemon) ends when it is answered."""
        self._stop.set()
        self._session.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(0.2)

    def __enter__(self) -> Degradation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self._snapshot
        return f"Degradation({self.url!r}, level={s.level!r}, version={s.version}, stale={s.stale})"


def _published(snap: Snapshot) -> tuple[Any, ...]:
    """What the orchestrator published, without this process's bookkeeping (fetched_at, stale)."""
    return snap.version, snap.level, dict(snap.features), snap.reasons, snap.since


def _error_text(response: requests.Response) -> str:
    """The ``error`` of a JSON error body, else the reason phrase."""
    try:
        body = response.json()
    except ValueError:
        return response.reason or ""
    return str(body.get("error", "")) if isinstance(body, dict) else response.reason or ""
