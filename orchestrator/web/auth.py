"""Who may do what: user logins and API tokens (roles from ``accounts``), sessions, CSRF, throttling.

- Users (``orchestrator users add``) log in with name and password and get an HttpOnly, SameSite=Strict
  session cookie signed with a per-process key; it names the user and their ``session_epoch``, so a
  password change (or the user's removal) ends it at its next request. It also ends after
  ``SESSION_IDLE_S`` without a request made by a person (the page's own refreshes do not count) and
  ``SESSION_ABSOLUTE_S`` after the login, whatever happens.
- Scripts send ``Authorization: Bearer <token>``: a user's token (``orchestrator tokens create``) or the
  legacy single token (``ORCHESTRATOR_API_TOKEN`` / ``--api-token-file``), which acts as an admin and is
  deprecated (one line in the log at start). The legacy token may also log in on the page (empty user).
  With neither users nor that token every write answers 405: the page is read-only and shows no buttons.
- Every browser form carries a CSRF token: an HMAC of a random per-browser cookie under a per-process
  secret. A cookie-authenticated write without it answers 403. Bearer requests need none (no ambient
  credential a foreign page could borrow).
- Wrong tokens and passwords are throttled by address, counted by fingerprint (:class:`Throttle`; 429
  with Retry-After meanwhile): a broken script repeating a stale token is not guessing and locks nobody
  out, the right one after a typo is served at once, many different guesses from one address slow that
  address down. Nothing holds a server thread. Behind a reverse proxy, ``--trusted-proxies`` makes the
  address the client's.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import InputError

TOKEN_ENV = "ORCHESTRATOR_API_TOKEN"
SESSION_COOKIE = "orchestrator_session"
CSRF_COOKIE = "orchestrator_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
#: a login ends this long after it was made, whatever happens (and the cookie's max-age)
SESSION_ABSOLUTE_S = 12 * 3600
#: a login ends after this long without a request made by a person
SESSION_IDLE_S = 30 * 60
#: a login's last-seen time is renewed (a new cookie) at most this often
SESSION_TOUCH_S = 60
#: the name a login with the legacy token carries (no user can have it: user names start with a letter)
LEGACY_NAME = "~token"
#: the wait after the first wrong token; doubled by each further one, up to the cap
THROTTLE_BASE_S = 1.0
THROTTLE_CAP_S = 60.0
#: addresses remembered at most (the oldest is forgotten first)
THROTTLE_MAX_ADDRESSES = 10_000
#: different wrong tokens one address may try before the whole address waits (a typo or two, a stale
#: token in a script, a scanner's probe) — guessing needs many more
FREE_GUESSES = 10
#: different wrong tokens remembered per address (more change nothing: the wait is at its cap by then)
MAX_FINGERPRINTS = 64
#: an address's guesses are forgotten this long after its last wrong token
ADDRESS_MEMORY_S = 900.0


def load_token(token_file: Path | None, env: dict[str, str] | os._Environ = os.environ) -> str | None:
    """The API token from ``token_file`` (first line) or the environment; None when writes are off."""
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"cannot read {token_file}: {exc.strerror or exc}", field="--api-token-file") from None
        if not token:
            raise InputError(f"{token_file} is empty", field="--api-token-file")
        return token
    return (env.get(TOKEN_ENV) or "").strip() or None


class Throttle:
    """Back-off after wrong tokens, by address, counted by token fingerprint. Thread-safe; monotonic time
    from the injected clock.

    Each address remembers the fingerprints of the wrong tokens it sent. The same wrong token again (a
    broken script with a stale token) is refused at once and counts no more; the first ``FREE_GUESSES``
    different ones (typos) cost nothing; each further one (guessing) doubles how long the whole address
    must wait, from ``THROTTLE_BASE_S`` to ``THROTTLE_CAP_S``. An address is forgotten
    ``ADDRESS_MEMORY_S`` after its last wrong token.

    Guarantee kept (docs/web.md, "Users and roles"): it delays, never lets through: a throttled request is
    refused before its token is compared. The right token after a few failures is served at once; only
    an address that guesses waits, and behind a proxy ``--trusted-proxies`` makes that the guesser's own.
    """

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        # address → (wrong fingerprints, not before, last failure), all on the monotonic clock
        self._entries: OrderedDict[str, tuple[frozenset[str], float, float]] = OrderedDict()

    def wait_s(self, address: str) -> float:
        """Seconds ``address`` must still wait before a token is even looked at (0: go ahead)."""
        with self._lock:
            entry = self._entries.get(address)
        return 0.0 if entry is None else max(0.0, entry[1] - self.clock.monotonic())

    def failed(self, address: str, fingerprint: str) -> float:
        """Record a wrong token; returns the wait now imposed on the address."""
        now = self.clock.monotonic()
        with self._lock:
            fingerprints, not_before, last = self._entries.pop(address, (frozenset(), 0.0, now))
            if now - last > ADDRESS_MEMORY_S:
                fingerprints, not_before = frozenset(), 0.0
            if fingerprint not in fingerprints and len(fingerprints) < MAX_FINGERPRINTS:
                fingerprints = fingerprints | {fingerprint}
                if len(fingerprints) > FREE_GUESSES:
                    not_before = now + min(THROTTLE_CAP_S, THROTTLE_BASE_S * 2 ** (len(fingerprints) - FREE_GUESSES - 1))
            self._entries[address] = (fingerprints, not_before, now)
            while len(self._entries) > THROTTLE_MAX_ADDRESSES:
                self._entries.popitem(last=False)
        return max(0.0, not_before - now)


@dataclass(frozen=True)
class SessionClaim:
    """A valid session cookie's content: who, at which epoch, issued and last seen (epoch seconds)."""

    name: str
    epoch: str
    issued: int
    last: int


def _sign(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


class Auth:
    """Token, session and CSRF checks for one web app."""

    def __init__(self, token: str | None, *, clock: Clock = SYSTEM_CLOCK, secret: bytes | None = None) -> None:
        self._token = token.encode() if token else None
        self.clock = clock
        self._secret = secret or os.urandom(32)
        self._session_key = _sign(self._secret, "session").encode()
        self.throttle = Throttle(clock)

    @property
    def legacy_token(self) -> bool:
        """Whether the legacy single token is configured."""
        return self._token is not None

    def fingerprint(self, presented: str) -> str:
        """A keyed digest of a presented token (the throttle's key: the token itself is never kept)."""
        return _sign(self._secret, f"token:{presented}")[:32]

    def token_matches(self, presented: str | None) -> bool:
        if self._token is None or not presented:
            return False
        return hmac.compare_digest(presented.encode(), self._token)

    def bearer(self, header: str | None) -> str | None:
        """The token of an ``Authorization: Bearer …`` header, or None when there is no such header."""
        scheme, _, value = (header or "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None

    # -- sessions ---------------------------------------------------------------------------------
    def new_session(self, name: str, epoch: str, issued: int | None = None) -> str:
        """A session cookie value for ``name`` at ``epoch``: issued (kept across renewals), last seen (now)."""
        now = int(self.clock.now().timestamp())
        body = f"{name}.{epoch}.{issued if issued is not None else now}.{now}.{secrets.token_urlsafe(12)}"
        return f"{body}.{_sign(self._session_key, body)}"

    def read_session(self, value: str | None) -> SessionClaim | None:
        """What a session cookie says, if its signature holds and it has not expired (idle or absolute)."""
        if not value:
            return None
        body, _, signature = value.rpartition(".")
        parts = body.split(".")
        if len(parts) != 5 or not hmac.compare_digest(signature, _sign(self._session_key, body)):
            return None
        name, epoch, issued, last, _nonce = parts
        if not (issued.isdigit() and last.isdigit()):
            return None
        now = self.clock.now().timestamp()
        if int(issued) + SESSION_ABSOLUTE_S <= now or int(last) + SESSION_IDLE_S <= now:
            return None
        return SessionClaim(name, epoch, int(issued), int(last))

    def legacy_epoch(self) -> str:
        """The epoch of legacy-token logins: a digest of the token, so another token ends them."""
        return _sign(self._secret, f"legacy:{self._token!r}")[:16]

    # -- CSRF -------------------------------------------------------------------------------------
    @staticmethod
    def new_csrf_cookie() -> str:
        return secrets.token_urlsafe(24)

    def csrf_token(self, cookie: str) -> str:
        """The token forms carry for the browser holding ``cookie``."""
        return _sign(self._secret, f"csrf:{cookie}")

    def csrf_valid(self, cookie: str | None, presented: str | None) -> bool:
        if not cookie or not presented:
            return False
        return hmac.compare_digest(presented, self.csrf_token(cookie))
