"""Serving the web app with waitress on a thread of its own (in the daemon or in `orchestrator web`).

Connections are guarded against slow clients by :mod:`orchestrator.web.frontdoor`. Loopback is the default bind; a bind anyone else can reach without a token configured is logged as a
warning at start (the page is then read-only, but shows the whole fleet).
"""

from __future__ import annotations

import ipaddress
import logging
import sys
import threading
from dataclasses import dataclass

from orchestrator.core.errors import InputError
from orchestrator.web import frontdoor
from orchestrator.web.app import create_app
from orchestrator.web.source import WebSource
from orchestrator.web.state import WebSettings

log = logging.getLogger("orchestrator.web")

DEFAULT_HTTP = "127.0.0.1:8765"
HTTP_ENV = "ORCHESTRATOR_HTTP"
#: request threads: the page, the API and /metrics are short reads; up to 4 more may hold a degradation
#: long-poll (orchestrator.web.degradation_api.MAX_LONG_POLLS) while they wait
THREADS = 8


def parse_address(value: str, field: str = "--http") -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8765`` for IPv6; ``:8765`` means loopback) → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InputError(f"expected HOST:PORT, got {value!r}", field=field)
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


@dataclass
class WebServer:
    """A running server: ``url`` to print, ``stop()`` to end it."""

    host: str
    port: int
    _server: object
    _thread: threading.Thread
    source: WebSource

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def stop(self) -> None:
        """Close the listening socket and every open connection (kept-alive ones too: a stopped server
        answers nothing more), end the loop, then the request threads."""
        from waitress import wasyncore

        self.source.close()  # long-polls answer now
        self._server.task_dispatcher.shutdown(timeout=5)  # requests in progress finish
        self._server.probe_dispatcher.shutdown(timeout=5)
        wasyncore.close_all(self._server._map, ignore_all=True)
        self._thread.join(5)


#: how long a thread may hold the GIL while others wait, inside the daemon (Python's default: 5 ms)
SWITCH_INTERVAL_S = 0.001


def share_the_interpreter() -> None:
    """Let check threads in sooner while a web thread renders (call in the daemon, before serving).

    Each check waits for the GIL several times (scheduler, worker, socket, recorder); with a web thread
    building a page, every wait could last the whole default 5 ms switch interval, and bench/web.py saw
    the checks' lateness p99 grow from tens of ms to hundreds. 1 ms bounds each wait at a fifth of that.
    """
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))


def start(source: WebSource, address: str, settings: WebSettings) -> WebServer:
    """Bind ``address`` and serve the app on a daemon thread; InputError when it cannot bind."""
    host, port = parse_address(address)
    try:
        # with --trusted-proxies the app's ProxyFix reads X-Forwarded-For; otherwise waitress drops it
        server = frontdoor.create(create_app(source, settings), host=host, port=port, threads=THREADS,
                                  ident="orchestrator", clear_untrusted_proxy_headers=not settings.trusted_proxies)
    except OSError as exc:
        raise InputError(f"cannot listen on {address}: {exc.strerror or exc}", field="--http") from None
    if not is_loopback(host) and settings.token is None:
        # worded without "token:" so the log redaction leaves the sentence whole
        log.warning("web: serving on %s:%d, reachable from other machines: the page shows every component to "
                    "anyone; writes need a user's login or token (orchestrator users add)", host, port)
    thread = threading.Thread(target=server.run, name="web", daemon=True)
    thread.start()
    web = WebServer(server.effective_host, server.effective_port, server, thread, source)
    log.info("web: serving %s", web.url)
    return web
