"""The result of one health check: data, never an exception."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check of one component.

    ``ok`` is the verdict; ``error`` is a one-line reason when it is False (``"timeout after 2s"``,
    ``"status 500 not in [200]"``). ``latency_ms`` is wall time from start to verdict.
    """

    ok: bool
    latency_ms: float
    checked_at: datetime
    status_code: int | None = None
    error: str | None = None
    #: Bytes of body read (capped); for the record and for the bad-endpoint tests.
    bytes_read: int = 0
    #: Extra facts a checker wants in the record (e.g. the redirect chain length).
    details: dict[str, object] = field(default_factory=dict)
    #: The check ran into its deadline (the dispatcher runs such a component in the slow lane next).
    timed_out: bool = False
    #: When the server's TLS certificate expires (https checks that got as far as a certificate).
    tls_expires_at: datetime | None = None
    #: A passing check's caveat, one line ("certificate expires in 5 days, 2026-12-12"): an answering
    #: component is DEGRADED while its checks carry one.
    warning: str | None = None


#: a push monitor's ping kinds, as stored (push_pings.kind)
SUCCESS, START, FAIL = "success", "start", "fail"


@dataclass(frozen=True, slots=True)
class Ping:
    """One ping of a push monitor as received (orchestrator.health.push): the wall time it arrived is
    a record; ``duration_s`` runs from the run's start ping, when there was one."""

    component_id: int
    kind: str
    received_at: datetime
    exit_status: int | None = None
    duration_s: float | None = None
    #: the request body, capped and redacted: the run's log excerpt
    body: str | None = None
