"""TLS certificate expiry of https checks, against real loopback TLS servers whose certificates a
private CA (trustme) issued to expire in 5 days, in 1 day, already, or for another host."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from orchestrator.core.check_spec import CheckSpec
from orchestrator.health.checkers import HttpChecker
from orchestrator.health.checkers.tls import describe, not_after
from tests.tls_servers import CertServer, leaf


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def checker() -> Iterator[HttpChecker]:
    chk = HttpChecker()
    yield chk
    chk.close()


def _days(n: float) -> timedelta:
    return timedelta(days=n)


def test_far_expiry_is_recorded_and_healthy(ca, ca_file, checker) -> None:
    cert = leaf(ca, expires_in=_days(90))
    with CertServer(cert) as server:
        result = checker.check(CheckSpec(url=server.url, tls_ca=ca_file), timeout_s=5)
    assert result.ok and result.warning is None, result
    assert result.tls_expires_at is not None
    assert abs((result.tls_expires_at - datetime.now(UTC)) - _days(90)) < timedelta(minutes=1)


def test_expiring_in_5_days_passes_with_a_warning(ca, ca_file, checker) -> None:
    cert = leaf(ca, expires_in=_days(5))
    with CertServer(cert) as server:
        result = checker.check(CheckSpec(url=server.url, tls_ca=ca_file), timeout_s=5)
    date = (datetime.now(UTC) + _days(5)).date().isoformat()
    assert result.ok
    assert result.warning == f"certificate expires in 5 days, {date}"


def test_expiring_in_1_day_fails_below_the_critical_days(ca, ca_file, checker) -> None:
    cert = leaf(ca, expires_in=_days(1))
    with CertServer(cert) as server:
        result = checker.check(CheckSpec(url=server.url, tls_ca=ca_file), timeout_s=5)
        lenient = checker.check(CheckSpec(url=server.url, tls_ca=ca_file, tls_critical_days=0.5, tls_warn_days=2),
                                timeout_s=5)
    date = (datetime.now(UTC) + _days(1)).date().isoformat()
    assert not result.ok and result.error == f"certificate expires in 1 day, {date}"
    assert result.status_code == 200 and result.tls_expires_at is not None
    assert lenient.ok and lenient.warning == f"certificate expires in 1 day, {date}"


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_expired_certificate_says_when_it_expired(ca, ca_file, checker) -> None:
    cert = leaf(ca, expires_in=-_days(2, ) - timedelta(hours=1))
    with CertServer(cert) as server:
        result = checker.check(CheckSpec(url=server.url, tls_ca=ca_file), timeout_s=5)
        unverified = checker.check(CheckSpec(url=server.url, verify_tls=False), timeout_s=5)
    date = (datetime.now(UTC) - _days(2) - timedelta(hours=1)).date().isoformat()
    assert not result.ok and result.error == f"certificate expired 2 days ago, {date}"
    assert result.tls_expires_at is not None and result.status_code is None  # refused in the handshake
    # without verification the handshake passes, and the expiry still fails the check
    assert not unverified.ok and unverified.error == f"certificate expired 2 days ago, {date}"


def test_wrong_host_is_one_clear_line(ca, ca_file, checker) -> None:
    cert = leaf(ca, expires_in=_days(90), host="other.example")
    with CertServer(cert) as server:
        result = checker.check(CheckSpec(url=server.url, tls_ca=ca_file), timeout_s=5)
    assert not result.ok
    assert result.error == "TLS certificate verify failed: IP address mismatch, certificate is not valid for " \
                           "'127.0.0.1'"


def test_private_ca_is_trusted_only_where_given(ca, ca_file, checker) -> None:
    cert = leaf(ca, expires_in=_days(90))
    with CertServer(cert) as server:
        without = checker.check(CheckSpec(url=server.url), timeout_s=5)
        with_ca = checker.check(CheckSpec(url=server.url, tls_ca=ca_file), timeout_s=5)
        again = checker.check(CheckSpec(url=server.url), timeout_s=5)  # its own pool: not trusted by the other
    assert with_ca.ok
    assert not without.ok and not again.ok
    assert without.error == "TLS certificate verify failed: unable to get local issuer certificate"


def test_unreadable_ca_file_fails_the_check(tmp_path, checker) -> None:
    missing = str(tmp_path / "gone.pem")
    result = checker.check(CheckSpec(url="https://127.0.0.1:1/health", tls_ca=missing), timeout_s=2)
    assert not result.ok and result.error == f"cannot read TLS CA file {missing}"


@pytest.mark.parametrize("years", [1, 40])  # UTCTime before 2050, GeneralizedTime after
def test_not_after_reads_der_as_the_x509_library_does(ca, years) -> None:
    from cryptography import x509

    expires = datetime(2026 + years, 3, 4, 5, 6, 7, tzinfo=UTC)
    cert = ca.issue_cert("127.0.0.1", not_after=expires)
    der = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()).public_bytes(
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.DER)
    assert not_after(der) == expires
    assert not_after(der[:40]) is None  # truncated: unknown, never an exception


@pytest.mark.parametrize("left, text", [
    (timedelta(days=5), "certificate expires in 5 days, 2026-12-12"),
    (timedelta(hours=20), "certificate expires in 1 day, 2026-12-08"),
    (-timedelta(hours=3), "certificate expired less than a day ago, 2026-12-07"),
    (-timedelta(days=1, hours=1), "certificate expired 1 day ago, 2026-12-06"),
])
def test_describe(left, text) -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert describe(now + left, now) == text


@pytest.mark.parametrize("spec, field", [
    ({"tls_ca": "relative.pem"}, "tls_ca"),
    ({"tls_warn_days": 2, "tls_critical_days": 3}, "tls_critical_days"),
    ({"tls_warn_days": -1}, "tls_warn_days"),
])
def test_bad_tls_settings_name_the_field(spec, field) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        CheckSpec(url="https://example.com/", **spec)
    assert caught.value.errors()[0]["loc"] == (field,)


def _result(ok: bool = True, warning: str | None = None, at: datetime | None = None):
    from orchestrator.core.check_result import CheckResult

    return CheckResult(ok=ok, latency_ms=5.0, checked_at=at or datetime(2026, 12, 7, tzinfo=UTC),
                       error=None if ok else "certificate expires in 1 day, 2026-12-08", warning=warning)


def test_a_warning_degrades_an_answering_component_until_it_clears() -> None:
    """Scripted results through the tracker: UP, DEGRADED while the certificate warning lasts (a
    failure does not clear it), UP again once renewed; DOWN when the check fails for good."""
    from orchestrator.core.states import ComponentState as S
    from orchestrator.health.tracker import Tracker, TrackerConfig

    now = datetime(2026, 12, 7, tzinfo=UTC)
    tracker = Tracker(TrackerConfig(interval_s=10, success_threshold=1, failure_threshold=2), now)
    warning = "certificate expires in 5 days, 2026-12-12"
    steps = [(_result(), S.UP), (_result(warning=warning), S.DEGRADED), (_result(warning=warning), S.DEGRADED),
             (_result(ok=False), S.DEGRADED), (_result(warning=warning), S.DEGRADED), (_result(), S.UP),
             (_result(warning=warning), S.DEGRADED), (_result(ok=False), S.DEGRADED), (_result(ok=False), S.DOWN)]
    reasons = []
    for result, expected in steps:
        transition = tracker.observe(result, now)
        assert tracker.state is expected, (result, reasons)
        if transition is not None:
            reasons.append(transition.reason)
    assert reasons == ["1 consecutive success", warning, f"warning cleared (was: {warning})", warning,
                       "2 consecutive failures: certificate expires in 1 day, 2026-12-08"]
