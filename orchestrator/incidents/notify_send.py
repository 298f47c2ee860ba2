"""Send one notification to Apprise URLs and plain JSON webhooks; used by the notify strategy and by the
daemon's own incident notifications.

Every target is tried, each bounded by ``timeout_s``; the result is one :class:`Delivery` per target,
already redacted, so it can be stored as is. Nothing here raises for a failed delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

import requests
from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator, model_validator

from orchestrator.core.check_spec import validate_http_url
from orchestrator.core.redaction import redact

if TYPE_CHECKING:
    from apprise import NotifyBase

SIGNATURE_HEADER = "X-Orchestrator-Signature"
#: Seconds a receiver should accept a signature's timestamp either side of its own clock (docs/notifications.md):
#: long enough for a slow delivery and ordinary clock skew, short enough that a captured request cannot be
#: replayed much later.
SIGNATURE_TOLERANCE_S = 300
#: Response bytes read from a webhook at most; we only need the status.
_MAX_RESPONSE_BYTES = 4096


class Webhook(BaseModel):
    """A plain JSON webhook; with ``secret`` (or ``secret_env``, the name of an environment variable
    holding it) the body is signed: ``X-Orchestrator-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
    "<t>.<body>">`` (:func:`sign`, :func:`verify`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    secret: str | None = None
    secret_env: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return validate_http_url(value)

    @model_validator(mode="after")
    def _one_secret(self) -> Webhook:
        if self.secret and self.secret_env:
            raise ValueError("give secret or secret_env, not both")
        return self

    def resolve_secret(self, env: Mapping[str, str]) -> str | None:
        """The signing secret, read from ``env`` when ``secret_env`` names it."""
        return env.get(self.secret_env) if self.secret_env else self.secret


class _PublicUrl:
    """Where the incident pages are served (config ``public_url``), for the notify step's links. One
    writer: the daemon, once at start; readers only read a str (atomic)."""

    value: str | None = None


def set_public_url(url: str | None) -> None:
    _PublicUrl.value = url.rstrip("/") if url else None


def public_url() -> str | None:
    """The base URL the notify step links incidents under, or None when none is configured."""
    return _PublicUrl.value


@dataclass(frozen=True)
class Delivery:
    """How one target fared. ``target`` and ``detail`` are redacted."""

    target: str
    kind: Literal["apprise", "webhook"]
    ok: bool
    detail: str
    duration_s: float
    status_code: int | None = None


class _QuietInThisThread(logging.Filter):
    """Drops Apprise's own records while this thread asks it to parse a URL: a URL it cannot parse is
    reported once, by us, naming the field (Apprise would also log ``ERROR apprise Unsupported URL``)."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "quiet", False)


_QUIET = _QuietInThisThread()


def _instantiate(url: str) -> NotifyBase | None:
    """``apprise.Apprise.instantiate(url)`` without Apprise logging about it; None if it cannot parse it."""
    import apprise  # on first use: ~15 MB and 0.15 s the daemon needs only once it notifies

    logger = logging.getLogger("apprise")
    if _QUIET not in logger.filters:
        logger.addFilter(_QUIET)
    _QUIET.local.quiet = True
    try:
        return apprise.Apprise.instantiate(url)
    finally:
        _QUIET.local.quiet = False


def validate_apprise_url(url: str) -> str:
    """Return ``url`` if Apprise knows its scheme and can parse it; else ValueError (no network used)."""
    if _instantiate(url) is None:
        raise ValueError(f"not a valid Apprise URL: {redact(url)} (see https://github.com/caronc/apprise/wiki)")
    return url


#: An Apprise URL checked when the plan file loads.
AppriseUrl = Annotated[str, AfterValidator(validate_apprise_url)]


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (unix seconds): the timestamp is
    signed with the body, so a receiver that checks it against its clock refuses an old request replayed.
    The timestamp is wall time written down for the receiver (invariant 7: nothing here waits on it)."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(body: bytes, header: str, secret: str, now: float, tolerance_s: float = SIGNATURE_TOLERANCE_S) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and its timestamp is within ``tolerance_s`` of
    ``now`` (the receiver's side; docs/notifications.md has the same check for receivers to copy)."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    stamp = parts.get("t", "")
    if not stamp.isdigit() or abs(now - int(stamp)) > tolerance_s:
        return False
    return hmac.compare_digest(parts.get("v1", ""), _mac(secret, int(stamp), body))


def _send_apprise(url: str, title: str, body: str, timeout_s: float, html: str | None = None) -> Delivery:
    started = time.monotonic()
    import apprise

    service = _instantiate(url)
    if service is None:
        return Delivery(redact(url), "apprise", False, "not a valid Apprise URL", 0.0)
    # Apprise's own privacy form masks what only it knows is secret (mailto's ?pass=, tokens in paths).
    target = redact(service.url(privacy=True))
    # Apprise's per-service defaults are longer than a recovery step may wait.
    service.socket_connect_timeout = service.socket_read_timeout = timeout_s
    sender = apprise.Apprise()
    sender.add(service)
    # Apprise takes a body without a format as the target's own (HTML for mail), and a text body
    # read as HTML loses its line breaks: say what it is, and give HTML where the target takes it.
    formats = service.notify_format if isinstance(service.notify_format, (list, tuple)) else [service.notify_format]
    rich = html is not None and apprise.NotifyFormat.HTML in [apprise.NotifyFormat(f) for f in formats]
    with apprise.LogCapture(level=logging.WARNING) as log:
        ok = bool(sender.notify(body=html if rich and html is not None else body, title=title,
                                body_format=apprise.NotifyFormat.HTML if rich else apprise.NotifyFormat.TEXT))
        reason = log.getvalue().strip().splitlines()
    detail = "delivered" if ok else (reason[-1] if reason else "delivery failed")
    return Delivery(target, "apprise", ok, redact(detail)[:300], time.monotonic() - started)


def _send_webhook(hook: Webhook, data: bytes, timeout_s: float, env: Mapping[str, str], timestamp: int) -> Delivery:
    started = time.monotonic()
    headers = {"Content-Type": "application/json", "User-Agent": "recovery-orchestrator"}
    secret = hook.resolve_secret(env)
    if hook.secret_env and not secret:
        return Delivery(redact(hook.url), "webhook", False, f"secret_env {hook.secret_env} is not set", 0.0)
    if secret:
        headers[SIGNATURE_HEADER] = sign(data, secret, timestamp)
    try:
        with requests.post(hook.url, data=data, headers=headers, timeout=timeout_s, stream=True,
                           allow_redirects=False) as resp:
            resp.raw.read(_MAX_RESPONSE_BYTES)
            status = resp.status_code
    except requests.RequestException as exc:
        return Delivery(redact(hook.url), "webhook", False, redact(f"{type(exc).__name__}: {exc}")[:300],
                        time.monotonic() - started)
    ok = 200 <= status < 300
    return Delivery(redact(hook.url), "webhook", ok, "delivered" if ok else f"status {status}",
                    time.monotonic() - started, status)


def send(urls: Iterable[str], webhooks: Iterable[Webhook], title: str, body: str, timeout_s: float, *,
         payload: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None,
         html: str | None = None, timestamp: int | None = None) -> list[Delivery]:
    """Deliver ``title``/``body`` (plain text; ``html`` instead to targets that take HTML, such as mail)
    to every target; webhooks get JSON ``{title, body, **payload}`` (the structured document of
    docs/notifications.md), signed at ``timestamp`` (unix seconds, default now)."""
    data = json.dumps({"title": title, "body": body, **(payload or {})}, sort_keys=True).encode()
    stamp = int(time.time()) if timestamp is None else timestamp
    results = [_send_apprise(url, title, body, timeout_s, html) for url in urls]
    results += [_send_webhook(hook, data, timeout_s, os.environ if env is None else env, stamp)
                for hook in webhooks]
    return results
