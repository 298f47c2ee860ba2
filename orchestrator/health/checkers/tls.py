"""TLS certificate expiry: read the server certificate's notAfter and judge the days left.

An https check records when the certificate it was served expires (``CheckResult.tls_expires_at``),
whether or not it verifies the chain (``verify_tls=False`` still reads the certificate). Below
``tls_critical_days`` the check fails ("certificate expires in 1 day, 2026-12-08"), so the usual
thresholds make the component DOWN and open an incident; below ``tls_warn_days`` it passes with a
warning, which makes an answering component DEGRADED. An expired certificate fails verification in
the handshake; :func:`fetch_expiry` then reads its date with a second, unverified handshake so the
reason still says when it expired.

The certificate is read from its DER form with a few lines of ASN.1 (only the validity field is
needed), so a check that does not verify needs no X.509 library at run time.
"""

from __future__ import annotations

import functools
import math
import socket
import ssl
from datetime import UTC, datetime

import certifi

from orchestrator.health.checkers.base import WATCHDOG

_DAY_S = 86400.0
#: OpenSSL's X509_V_ERR_CERT_HAS_EXPIRED: the one verify error worth a second look at the certificate.
CERT_HAS_EXPIRED = 10


@functools.cache
def client_context(verify: bool | str) -> ssl.SSLContext:
    """The process-wide client TLS context of https checks, verifying or not (or also trusting a
    component's CA file, read once per process), built once.

    Verifying, it trusts what requests trusts (certifi's bundle), whichever client makes the check;
    built per connection the bundle would cost ~80 ms of CPU each time.
    """
    if verify:
        context = ssl.create_default_context(cafile=certifi.where())
        if isinstance(verify, str):
            context.load_verify_locations(cafile=verify)
        return context
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def peer_expiry(sock: object) -> datetime | None:
    """notAfter of the certificate the peer of ``sock`` (an SSLSocket) presented; None without one."""
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return None
    try:
        der = getpeercert(binary_form=True)
    except (ValueError, OSError):  # not connected any more
        return None
    return not_after(der) if der else None


def not_after(der: bytes) -> datetime | None:
    """The notAfter time of a DER X.509 certificate; None when it cannot be read.

    Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
    signature, issuer, validity SEQUENCE { notBefore, notAfter }, … }, … }
    """
    try:
        _, body, _ = _tlv(der, 0)  # Certificate
        _, tbs, _ = _tlv(der, body)  # tbsCertificate: its contents start at ``tbs``
        pos = tbs
        if der[pos] == 0xA0:  # explicit version
            pos = _tlv(der, pos)[2]
        for _ in range(3):  # serialNumber, signature, issuer
            pos = _tlv(der, pos)[2]
        _, validity, _ = _tlv(der, pos)
        not_before_end = _tlv(der, validity)[2]
        tag, start, end = _tlv(der, not_before_end)
        return _asn1_time(tag, der[start:end].decode("ascii"))
    except (IndexError, ValueError):
        return None


def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the DER element at ``pos``."""
    tag = der[pos]
    length = der[pos + 1]
    start = pos + 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4:
            raise ValueError("bad DER length")
        length = int.from_bytes(der[start:start + count], "big")
        start += count
    if start + length > len(der):
        raise ValueError("DER element overruns")
    return tag, start, start + length


def _asn1_time(tag: int, text: str) -> datetime:
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ (years 1950-2049)
        parsed = datetime.strptime(text, "%y%m%d%H%M%SZ")
        if parsed.year >= 2050:
            parsed = parsed.replace(year=parsed.year - 100)
    elif tag == 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        parsed = datetime.strptime(text, "%Y%m%d%H%M%SZ")
    else:
        raise ValueError(f"not an ASN.1 time (tag {tag})")
    return parsed.replace(tzinfo=UTC)


def days_left(expires_at: datetime, now: datetime) -> float:
    """Days (fractional) from ``now`` until ``expires_at``; negative once expired."""
    return (expires_at - now).total_seconds() / _DAY_S


def describe(expires_at: datetime, now: datetime) -> str:
    """``certificate expires in 5 days, 2026-12-12`` / ``certificate expired 2 days ago, 2026-12-05``."""
    left = days_left(expires_at, now)
    date = expires_at.date().isoformat()
    if left >= 0:
        n = max(1, math.ceil(left))
        return f"certificate expires in {n} day{'s' if n != 1 else ''}, {date}"
    n = math.floor(-left)
    ago = "less than a day ago" if n == 0 else f"{n} day{'s' if n != 1 else ''} ago"
    return f"certificate expired {ago}, {date}"


def judge_expiry(expires_at: datetime, now: datetime, warn_days: float,
                 critical_days: float) -> tuple[str | None, str | None]:
    """(failure, warning) for a certificate: a failure below ``critical_days`` (or expired), a
    warning below ``warn_days``, neither otherwise."""
    left = days_left(expires_at, now)
    text = describe(expires_at, now)
    if left < 0 or left < critical_days:
        return text, None
    if left < warn_days:
        return None, text
    return None, None


def fetch_expiry(host: str, port: int, timeout_s: float) -> datetime | None:
    """notAfter of the certificate ``host:port`` serves, read by an unverified handshake within
    ``timeout_s`` (and the calling check's watchdog deadline); None when it cannot be read.

    Used only after verification failed because the certificate expired: the verdict is already
    made, this only finds the date for the reason and the record.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if timeout_s <= 0:
        return None
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw:
            WATCHDOG.watch(raw)
            with context.wrap_socket(raw, server_hostname=host) as tls:
                return peer_expiry(tls)
    except (OSError, ValueError):
        return None
