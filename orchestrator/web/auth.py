"""Who may write: a bearer token for scripts, a login cookie plus a CSRF token for the browser.

- One API token (``ORCHESTRATOR_API_TOKEN`` or ``--api-token-file``), compared in constant time. With
  none configured every write answers 405: the page is read-only and shows no buttons.
- The login form exchanges the token for an HttpOnly, SameSite=Strict session cookie signed with a key
  derived from the token (a new token logs everyone out). The token itself never goes into a cookie.
- Every browser form carries a CSRF token: an HMAC of a random per-browser cookie under a per-process
  secret. A cookie-authenticated write without it answers 403. Bearer requests need none (no ambient
  credential a foreign page could borrow).
- Wrong tokens are throttled by address, counted by token fingerprint (:class:`Throttle`; 429 with
  Retry-After meanwhile): a broken script repeating a stale token is not guessing and locks nobody out,
  the right token after a typo is served at once, many different tokens from one address slow that
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
from pathlib import Path

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import InputError

TOKEN_ENV = "ORCHESTRATOR_API_TOKEN"
SESSION_COOKIE = "orchestrator_session"
CSRF_COOKIE = "orchestrator_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
#: a login lasts this long
SESSION_TTL_S = 12 * 3600
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

    Guarantee kept (docs/web.md, "Writes: token, login, CSRF"): it delays, never lets through: a throttled request is
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


def _sign(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


class Auth:
    """Token, session and CSRF checks for one web app."""

    def __init__(self, token: str | None, *, clock: Clock = SYSTEM_CLOCK, secret: bytes | None = None) -> None:
        self._token = token.encode() if token else None
        self.clock = clock
        self._secret = secret or os.urandom(32)
        self._session_key = _sign(self._secret, f"session:{token}").encode() if token else b""
        self.throttle = Throttle(clock)

    @property
    def writes_enabled(self) -> bool:
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
    def new_session(self) -> str:
        expires = int(self.clock.now().timestamp()) + SESSION_TTL_S
        body = f"{expires}.{secrets.token_urlsafe(16)}"
        return f"{body}.{_sign(self._session_key, body)}"

    def session_valid(self, value: str | None) -> bool:
        if not value or self._token is None:
            return False
        body, _, signature = value.rpartition(".")
        expires, _, _nonce = body.partition(".")
        if not expires.isdigit() or not hmac.compare_digest(signature, _sign(self._session_key, body)):
            return False
        return int(expires) > self.clock.now().timestamp()

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
