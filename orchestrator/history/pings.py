"""Push monitors' pings in and out of the database: the intake behind ``/ping/<token>`` and the daemon's feed.

The web server and the daemon may be two processes (``orchestrator web`` beside ``orchestrator run``)
or one (``orchestrator run --http``). Both work the same way for the job that pings:

1. :class:`PingIntake` (in whichever process serves ``/ping``) finds the monitor by its token (a map
   of ``push_monitors`` read every few seconds, so pings keep working while the database is briefly away), applies the
   per-token rate limit, caps and redacts the body, and hands the :class:`Ping` to its sink.
2. Inside the daemon the sink is the daemon's own recorder (written with ``judged`` true) and its judge
   (judged at once). In ``orchestrator web`` the sink is a recorder of that process (``judged`` false):
   buffered and retried like check results while the database is away.
3. :class:`PingFeed`, a periodic job of the daemon, reads the pings other processes wrote (``judged``
   false, newer than the last it read) and hands them to the judge, every ``FEED_INTERVAL_S``.

Protects invariant 4 (nothing lost): a ping accepted with 200 is in the recorder's buffer, written or
counted (``pings_*`` drop counters); and invariant 5 (bounded): a flood of pings to one token costs a
429 each, a huge body is cut at ``MAX_BODY_BYTES``, unknown tokens cost at most one read of the token
map a second however many arrive.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from orchestrator.core.check_result import FAIL, START, SUCCESS, Ping
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import first_line
from orchestrator.core.redaction import redact
from orchestrator.db.engine import Database
from orchestrator.db.models import PushMonitor, PushPing

log = logging.getLogger(__name__)

#: body bytes kept as the run's log excerpt; the rest of a longer body is cut (and says so)
MAX_BODY_BYTES = 10_000
#: a request body longer than this is refused (413) unread
MAX_REQUEST_BYTES = 100_000
#: pings a token may send in a burst, and per second after it (a job pings start + success per run)
RATE_BURST = 20
RATE_PER_S = 1.0
#: seconds the map of tokens is trusted before it is read again (a removed monitor stops answering)
TOKEN_TTL_S = 10.0
#: an unknown token reads the map again at most this often, seconds (a monitor just added answers soon)
RELOAD_MIN_S = 1.0
#: seconds between the daemon's reads of pings written by other processes
FEED_INTERVAL_S = 1.0
#: pings read per feed query at most
FEED_BATCH = 5000


class PingRefused(Exception):
    """Raised when a ping is not taken: ``status`` 404 (unknown token), 429 (rate) or 503 (database away
    and the token not cached). The message never says whether another token exists."""

    def __init__(self, status: int, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after_s = status, message, retry_after_s


def action_kind(action: str | None) -> tuple[str, int | None]:
    """``None`` (success), ``start``, ``fail`` or an exit status ``0``-``255`` → (kind, exit status);
    ValueError for anything else."""
    if action is None:
        return SUCCESS, None
    if action in (START, FAIL):
        return action, None
    if action.isdigit() and len(action) <= 3 and int(action) <= 255:
        status = int(action)
        return (SUCCESS if status == 0 else FAIL), status
    raise ValueError("use start, fail or an exit status 0-255")


def canonical_token(token: str) -> str | None:
    """The token as stored (lower-case canonical UUID), or None when it cannot be one."""
    if len(token) != 36:
        return None
    try:
        return str(uuid.UUID(token))
    except ValueError:
        return None


def body_excerpt(body: bytes) -> str | None:
    """The run's log excerpt: at most ``MAX_BODY_BYTES``, decoded leniently, secrets masked."""
    if not body:
        return None
    text = body[:MAX_BODY_BYTES].decode("utf-8", errors="replace")
    if len(body) > MAX_BODY_BYTES:
        text += f"\n… ({len(body) - MAX_BODY_BYTES} more bytes not kept)"
    return redact(text)


class _Bucket:
    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens, self.at = tokens, at

    def take(self, now: float, rate: float, burst: float) -> float:
        """0 when a ping may pass (one token taken), else seconds until one may."""
        self.tokens = min(burst, self.tokens + (now - self.at) * rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / rate


@dataclass
class _Known:
    component_id: int
    start: datetime | None = None  # the run in progress: its start ping


class PingIntake:
    """Takes pings for ``/ping/<token>``; ``sink(ping)`` writes and judges them. Thread-safe."""

    def __init__(self, db: Database, sink: Callable[[Ping], None], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.db = db
        self.sink = sink
        self.clock = clock
        self._known: dict[str, _Known] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._loaded_mono = -math.inf
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self.accepted = 0

    def receive(self, token: str, action: str | None, body: bytes) -> Ping:
        """Take one ping: the Ping handed on, or PingRefused. ``action`` must be valid (action_kind)."""
        kind, exit_status = action_kind(action)
        canonical = canonical_token(token)
        if canonical is None:
            raise PingRefused(404, "no such ping URL")
        mono = self.clock.monotonic()
        known = self._lookup(canonical, mono)
        with self._lock:
            wait = self._buckets.setdefault(canonical, _Bucket(RATE_BURST, mono)).take(mono, RATE_PER_S, RATE_BURST)
            if wait:
                raise PingRefused(429, "too many pings for this URL", retry_after_s=wait)
            now = self.clock.now()
            duration = None
            if kind == START:
                known.start = now
            elif known.start is not None:
                duration = max(0.0, (now - known.start).total_seconds())
                known.start = None
            self.accepted += 1
        ping = Ping(known.component_id, kind, now, exit_status, duration, body_excerpt(body))
        self.sink(ping)
        return ping

    def _lookup(self, token: str, mono: float) -> _Known:
        """The monitor of ``token`` from the map of every token, re-read when older than TOKEN_TTL_S (a
        removed monitor stops answering) or on an unknown token at most every RELOAD_MIN_S (a new one
        starts answering): a scan of guessed tokens costs no query per guess."""
        with self._lock:
            known = self._known.get(token)
            age = mono - self._loaded_mono
            if known is not None and age < TOKEN_TTL_S:
                return known
            if known is None and age < RELOAD_MIN_S:
                raise PingRefused(404, "no such ping URL")
        try:
            self._reload(mono)
        except Exception as exc:  # the database is away: a token seen before keeps working
            if known is not None:
                return known
            log.warning("ping not taken, the database is unreachable: %s", first_line(exc))
            raise PingRefused(503, "the database is unreachable; ping again shortly", retry_after_s=5.0) from None
        with self._lock:
            known = self._known.get(token)
        if known is None:
            raise PingRefused(404, "no such ping URL")
        return known

    def _reload(self, mono: float) -> None:
        with self._reload_lock:
            if self._loaded_mono >= mono:
                return  # another request reloaded while this one waited
            with self.db.read() as session:
                rows = session.execute(select(PushMonitor.token, PushMonitor.component_id)).all()
            with self._lock:
                old = self._known
                self._known = {t: old[t] if t in old and old[t].component_id == cid else _Known(cid)
                               for t, cid in rows}
                self._buckets = {t: b for t, b in self._buckets.items() if t in self._known}
                self._loaded_mono = self.clock.monotonic()


class PingFeed:
    """The daemon's periodic read of pings other processes wrote (``judged`` false), handed to ``deliver``.

    Starts after the newest ping at its first read: older pings are history (the judge restores each
    monitor's last success from the table itself when it installs it)."""

    def __init__(self, db: Database, deliver: Callable[[Ping], None]) -> None:
        self.db = db
        self.deliver = deliver
        self._after: int | None = None
        self._lock = threading.Lock()
        self.delivered = 0

    def poll(self) -> int:
        """Deliver the pings written since the last poll; how many (0 when the database is away)."""
        with self._lock:
            try:
                with self.db.read() as session:
                    if self._after is None:
                        self._after = int(session.scalar(select(PushPing.id).order_by(PushPing.id.desc()).limit(1))
                                          or 0)
                        return 0
                    rows = session.execute(
                        select(PushPing.id, PushPing.component_id, PushPing.kind, PushPing.received_at,
                               PushPing.exit_status, PushPing.duration_s)
                        .where(PushPing.id > self._after).order_by(PushPing.id).limit(FEED_BATCH)
                        .add_columns(PushPing.judged)).all()
            except Exception as exc:
                log.debug("ping feed: database unreachable: %s", first_line(exc))
                return 0
            n = 0
            for row in rows:
                self._after = row.id
                if not row.judged:
                    self.deliver(Ping(row.component_id, row.kind, row.received_at, row.exit_status, row.duration_s))
                    n += 1
            self.delivered += n
            return n
