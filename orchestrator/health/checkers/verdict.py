"""What an HTTP check's answer means: the verdict on a response, the one-line reason of a failure.

Shared by both ways an HTTP check is made (the lean client of ``wire.py`` for plain checks, requests
for the rest, ``http_requests.py``), so a check reads the same whichever made it.
"""

from __future__ import annotations

import codecs
import functools
import http.client
import json
import re
import socket
import ssl
from datetime import datetime
from urllib.parse import urlsplit

from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import CheckSpec, parse_status_set
from orchestrator.health.checkers.base import Attempt
from orchestrator.health.checkers.tls import CERT_HAS_EXPIRED, describe, fetch_expiry, judge_expiry
from orchestrator.health.checkers.wire import ClosedEarly, InvalidResponse

_CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.IGNORECASE)
_PATH_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]")

Kinds = tuple[type[BaseException], ...]


def reason(exc: BaseException, attempt: Attempt, fired: bool, *, mid_body: bool, timeouts: Kinds = (),
           resolve_failures: Kinds = (), protocol_errors: Kinds = ()) -> str:
    """One short line for a failed exchange; anything after the deadline is a timeout. The kinds
    name the client's own exceptions for a timeout, a failed lookup, a broken exchange."""
    if fired or attempt.remaining_s() <= 0:
        return attempt.timeout_error()
    chain = _chain(exc)

    def has(*kinds: type[BaseException]) -> bool:
        return any(isinstance(e, kinds) for e in chain)

    # Not urllib3's TimeoutError: its NewConnectionError (e.g. refused) is a subclass of it.
    if has(TimeoutError, *timeouts):
        return attempt.timeout_error()
    verify_error = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
    if verify_error is not None and verify_error.verify_message:
        # "Hostname mismatch, certificate is not valid for 'wrong.example'.", "self-signed certificate"
        return f"TLS certificate verify failed: {verify_error.verify_message.rstrip('.')}"
    if verify_error is not None or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return "TLS certificate verify failed"
    if has(ConnectionRefusedError):
        return "connection refused"
    if has(socket.gaierror, *resolve_failures):
        return "cannot resolve host"
    if has(ssl.SSLError):
        return f"TLS error: {next(e for e in chain if isinstance(e, ssl.SSLError)).reason or exc}"
    invalid = next((e for e in chain if isinstance(e, InvalidResponse)), None)
    if invalid is not None:
        return f"invalid HTTP response: {invalid}"
    closed = next((e for e in chain if isinstance(e, ClosedEarly)), None)
    if closed is not None:
        return str(closed)
    if mid_body or has(http.client.IncompleteRead):
        return "connection closed mid-response"
    if has(http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, *protocol_errors):
        return "connection closed before response"
    return f"{type(exc).__name__}: {exc}"


def failed_exchange(spec: CheckSpec, attempt: Attempt, fired: bool, exc: BaseException, **kinds: Kinds) -> CheckResult:
    """The failed result of an exchange that raised; a certificate refused as expired is looked at
    again (unverified) so the reason says when it expired and the record keeps the date."""
    chain = _chain(exc)
    expired = any(isinstance(e, ssl.SSLCertVerificationError) and e.verify_code == CERT_HAS_EXPIRED for e in chain)
    if expired and not fired:
        parts = urlsplit(spec.url or "")
        expires_at = fetch_expiry(parts.hostname or "", parts.port or 443, attempt.remaining_s())
        if expires_at is not None:
            return attempt.fail(describe(expires_at, attempt.checked_at), tls_expires_at=expires_at)
    return attempt.fail(reason(exc, attempt, fired, mid_body=False, **kinds))


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (causes, contexts, urllib3 reasons, exception args), bounded."""
    out: list[BaseException] = []
    todo = [exc]
    while todo and len(out) < 16:
        cur = todo.pop()
        if any(cur is seen for seen in out):
            continue
        out.append(cur)
        for nxt in (cur.__cause__, cur.__context__, getattr(cur, "reason", None), *cur.args):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return out


def judge(spec: CheckSpec, attempt: Attempt, status: int, content_type: str, body: bytes,
          details: dict[str, object], tls_expires_at: datetime | None = None) -> CheckResult:
    """The verdict, first failing rule wins: status, body text, JSON conditions, latency, then the
    certificate's days left (a failure below ``tls_critical_days``, a warning below ``tls_warn_days``)."""
    facts: dict[str, object] = {"status_code": status, "bytes_read": len(body), "details": details,
                                "tls_expires_at": tls_expires_at}
    ranges = _status_ranges(tuple(spec.expect_status))
    if not any(low <= status <= high for low, high in ranges):
        shown = ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)
        return attempt.fail(f"status {status} not in {shown}", **facts)
    if spec.body_contains is not None and spec.body_contains not in text(content_type, body):
        return attempt.fail(f"body does not contain {spec.body_contains!r}", **facts)
    conditions = spec.json_condition_parts()
    if conditions:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested input
            return attempt.fail("invalid JSON body", **facts)
        for path, op, literal in conditions:
            problem = _condition_problem(doc, path, op, literal)
            if problem:
                return attempt.fail(problem, **facts)
    latency_ms = attempt.elapsed_ms()
    if spec.max_latency_ms is not None and latency_ms > spec.max_latency_ms:
        return attempt.fail(f"latency {latency_ms:.0f} ms > max {spec.max_latency_ms:g} ms", **facts)
    if tls_expires_at is not None:
        failure, warning = judge_expiry(tls_expires_at, attempt.checked_at, spec.tls_warn_days,
                                        spec.tls_critical_days)
        if failure:
            return attempt.fail(failure, **facts)
        return attempt.succeed(warning=warning, **facts)
    return attempt.succeed(**facts)


@functools.lru_cache(maxsize=1024)
def _status_ranges(expect_status: tuple[str, ...]) -> list[tuple[int, int]]:
    """The spec's accepted statuses as ranges, parsed once per distinct setting, not per check."""
    return parse_status_set(list(expect_status))


def text(content_type: str, body: bytes) -> str:
    """The body as text: the declared charset, else UTF-8; bad bytes never raise."""
    match = _CHARSET.search(content_type)
    encoding = "utf-8"
    if match:
        try:
            encoding = codecs.lookup(match.group(1)).name
        except LookupError:
            pass
    return body.decode(encoding, errors="replace")


def _condition_problem(doc: object, path: str, op: str, literal: str) -> str | None:
    """None when ``$<path> <op> <literal>`` holds for ``doc``, else the one-line reason."""
    try:
        expected = json.loads(literal)
    except ValueError:
        return f"condition ${path}: {literal} is not a JSON value"
    node = doc
    for key, index in _PATH_STEP.findall(path):
        if key and isinstance(node, dict) and key in node:
            node = node[key]
        elif index and isinstance(node, list) and int(index) < len(node):
            node = node[int(index)]
        else:
            return f"${path} is missing"
    # JSON true is not 1: compare booleans only with booleans.
    if isinstance(node, bool) or isinstance(expected, bool):
        equal = type(node) is type(expected) and node == expected
    else:
        equal = node == expected
    if equal == (op == "=="):
        return None
    shown = json.dumps(node, ensure_ascii=False)
    shown = shown if len(shown) <= 60 else shown[:59] + "…"
    wanted = json.dumps(expected, ensure_ascii=False)
    return f"${path} is {shown}, expected {wanted}" if op == "==" else f"${path} is {shown}, expected not {wanted}"
