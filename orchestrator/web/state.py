"""The web app's state (one per app) and the errors its routes raise."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app

from orchestrator.web.auth import Auth
from orchestrator.web.cache import AnswerCache
from orchestrator.web.source import WebSource

#: key of the AppState in ``app.extensions``
EXTENSION = "orchestrator"


@dataclass(frozen=True)
class WebSettings:
    """How the web app behaves (flags of `run --http` and `web`)."""

    token: str | None = None
    #: one series per component in /metrics (off: per-state totals only, for very large fleets)
    metrics_per_component: bool = True
    #: a check latency histogram per component in /metrics (14 series a component; needs the above)
    metrics_component_histograms: bool = False
    #: seconds between the page's own refreshes
    refresh_s: float = 2.0
    #: reverse proxies in front (`--trusted-proxies`): X-Forwarded-For is read that many hops back; 0: ignored
    trusted_proxies: int = 0
    #: every read needs a login or token too (`--login-to-read`); off: reads are open, as they always were
    login_to_read: bool = False


@dataclass
class AppState:
    """Everything a request needs: where data comes from, who may write, the settings."""

    source: WebSource
    settings: WebSettings
    auth: Auth
    cache: AnswerCache
    extras: dict[str, object] = field(default_factory=dict)


def app_state() -> AppState:
    """The AppState of the app serving the current request."""
    return current_app.extensions[EXTENSION]


class HttpError(Exception):
    """Raised by a route to answer ``status`` with one message (JSON for the API, a page otherwise)."""

    def __init__(self, status: int, message: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}
