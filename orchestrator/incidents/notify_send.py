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
from typing import Annotated, Literal

import requests
from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator, model_validator

from orchestrator.core.redaction import redact
from orchestrator.health.spec import validate_http_url

SIGNATURE_HEADER = "X-Orchestrator-Signature"
#: Response bytes read from a webhook at most; we only need the status.
_MAX_RESPONSE_BYTES = 4096


class Webhook(BaseModel):
    """A plain JSON webhook; with ``secret`` (or ``secret_env``, the name of an environment variable
    holding it) the body is signed: ``X-Orchestrator-Signature: sha256=<hex HMAC-SHA256 of the body>``."""

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


def _instantiate(url: str):
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


def sign(body: bytes, secret: str) -> str:
    """The signature header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _send_apprise(url: str, title: str, body: str, timeout_s: float) -> Delivery:
    started = time.monotonic()
    import apprise

    service = _instantiate(url)
    if service is None:
        return Delivery(redact(url), "apprise", False, "not a valid Apprise URL", 0.0)
    # Apprise's per-service defaults are longer than a recovery step may wait.
    service.socket_connect_timeout = service.socket_read_timeout = timeout_s
    sender = apprise.Apprise()
    sender.add(service)
    with apprise.LogCapture(level=logging.WARNING) as log:
        ok = bool(sender.notify(body=body, title=title))
        reason = log.getvalue().strip().splitlines()
    detail = "delivered" if ok else (reason[-1] if reason else "delivery failed")
    return Delivery(redact(url), "apprise", ok, redact(detail)[:300], time.monotonic() - started)


def _send_webhook(hook: Webhook, data: bytes, timeout_s: float, env: Mapping[str, str]) -> Delivery:
    started = time.monotonic()
    headers = {"Content-Type": "application/json", "User-Agent": "recovery-orchestrator"}
    secret = hook.resolve_secret(env)
    if hook.secret_env and not secret:
        return Delivery(redact(hook.url), "webhook", False, f"secret_env {hook.secret_env} is not set", 0.0)
    if secret:
        headers[SIGNATURE_HEADER] = sign(data, secret)
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
         payload: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None) -> list[Delivery]:
    """Deliver ``title``/``body`` to every target; webhooks get JSON ``{title, body, **payload}``."""
    data = json.dumps({"title": title, "body": body, **(payload or {})}, sort_keys=True).encode()
    results = [_send_apprise(url, title, body, timeout_s) for url in urls]
    results += [_send_webhook(hook, data, timeout_s, os.environ if env is None else env) for hook in webhooks]
    return results
