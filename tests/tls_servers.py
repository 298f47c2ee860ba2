"""Loopback HTTPS servers with certificates made at test time by trustme: a private CA whose leaf
certificates expire when a test says (in 5 days, in 1 day, already) and name the hosts it says."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta

import trustme

from tests.servers import LoopbackHTTPServer


class CertServer(LoopbackHTTPServer):
    """A loopback HTTPS server presenting ``cert`` (a trustme leaf) for every connection."""

    scheme = "https"

    def __init__(self, cert: trustme.LeafCert, **kwargs: object) -> None:
        self._cert = cert
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def make_ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._cert.configure_cert(context)
        return context


def leaf(ca: trustme.CA, *, expires_in: timedelta, host: str = "127.0.0.1") -> trustme.LeafCert:
    """A leaf certificate for ``host`` signed by ``ca``, valid from a week ago until now + ``expires_in``
    (negative: expired already)."""
    now = datetime.now(UTC)
    return ca.issue_cert(host, not_before=now - timedelta(days=7), not_after=now + expires_in)
