"""End to end: the real daemon checks three real loopback TLS servers whose certificates a private CA
(trusted per component with tls_ca) issued to expire in 90 days, in 5 days and in 1 day. The first
stays up, the second is degraded with the expiry in its reason, the third goes down and opens an
incident; the expiry shows in `component show`, /metrics and the report. Checked in the daemon's own
threads and in a check worker process (the expiry and the warning cross the process boundary)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import trustme
from click.testing import CliRunner
from prometheus_client import generate_latest

from orchestrator.cli import cli
from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema
from orchestrator.db.models import CheckResultRow, Component, Incident
from orchestrator.web.metrics import registry_for
from orchestrator.web.source import DatabaseSource
from tests.daemon_helpers import poll, running_daemon
from tests.tls_servers import CertServer, leaf


@pytest.mark.slow
@pytest.mark.parametrize("check_processes", [0, 1], ids=["threads", "worker-process"])
def test_expiring_certificates_degrade_then_take_down_and_show_everywhere(tmp_path: Path, check_processes: int) -> None:
    db_url = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    db = Database(db_url)
    ensure_schema(db)
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    days = {"far": 90, "soon": 5, "tomorrow": 1}
    servers = {name: CertServer(leaf(ca, expires_in=timedelta(days=n))) for name, n in days.items()}
    try:
        for name, server in servers.items():
            Registry(db).add(ComponentSpec(name=name, url=server.url, interval=0.5, timeout=0.4, failure_threshold=2,
                                           success_threshold=1, check={"tls_ca": str(ca_file)}))

        def row(name: str) -> Component:
            with db.read() as session:
                return session.scalars(sa.select(Component).where(Component.name == name)).one()

        with running_daemon(db_url, check_processes=check_processes):
            poll(lambda: row("far").state == "up" and row("soon").state == "degraded"
                 and row("tomorrow").state == "down", timeout_s=30)
            poll(lambda: _open_incident(db, "tomorrow"), timeout_s=20)
    finally:
        for server in servers.values():
            server.stop()
    today = datetime.now(UTC)
    assert row("soon").state_reason == f"certificate expires in 5 days, {(today + timedelta(days=5)).date()}"
    assert row("tomorrow").last_error == f"certificate expires in 1 day, {(today + timedelta(days=1)).date()}"
    assert _open_incident(db, "far") is None and _open_incident(db, "soon") is None
    with db.read() as session:
        recorded = session.scalar(sa.select(sa.func.count()).select_from(CheckResultRow)
                                  .where(CheckResultRow.tls_expires_at.is_not(None)))
        assert recorded == session.scalar(sa.select(sa.func.count()).select_from(CheckResultRow))  # every check

    runner = CliRunner()
    shown = json.loads(runner.invoke(cli, ["--db", db_url, "component", "show", "soon", "--json"]).stdout)
    assert 4.9 <= shown["tls_days_left"] <= 5.0 and shown["tls_expires_at"].startswith(str((today + timedelta(days=5)).date()))
    metrics = generate_latest(registry_for(DatabaseSource(db), per_component=True)).decode()
    series = [line for line in metrics.splitlines() if line.startswith("orchestrator_tls_cert_expiry_timestamp_seconds{")]
    assert len(series) == 3
    soon = next(line for line in series if 'component="soon"' in line)
    assert abs(float(soon.split()[-1]) - (today + timedelta(days=5)).timestamp()) < 120
    for fmt in ("json", "markdown"):
        out = tmp_path / f"report.{fmt}"
        assert runner.invoke(cli, ["--db", db_url, "report", "--since", "1h", "--format", fmt, "-o", str(out)]).exit_code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert {c["name"]: c["tls_expires_at"] is not None for c in report["components"]} == dict.fromkeys(days, True)
    assert "- soon: TLS certificate expires" in (tmp_path / "report.markdown").read_text()


def _open_incident(db: Database, name: str) -> int | None:
    with db.read() as session:
        return session.scalar(sa.select(Incident.id).join(Component, Component.id == Incident.component_id)
                              .where(Component.name == name, Incident.status != "resolved"))


def test_wrong_host_is_one_clear_line_from_the_check_command(run_cli, tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with CertServer(leaf(ca, expires_in=timedelta(days=90), host="other.example")) as server:
        assert run_cli("component", "add", "api", "--url", server.url, "--tls-ca", str(ca_file)).exit_code == 0
        result = run_cli("check", "api")
    assert result.exit_code == 1
    assert "TLS certificate verify failed: IP address mismatch, certificate is not valid for '127.0.0.1'" \
        in result.output
    assert "Traceback" not in result.output
