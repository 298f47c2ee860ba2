"""What redaction costs: per log record through the handler's filter, per redact() of a typical line,
and per component view (the CLI, the web API and reports build every view redacted).

    python bench/redaction.py --records 20000 --views 2000

The check plane logs a few lines per state transition, not per check; these figures say how many
such lines (and views) one core redacts per second, with and without known secret values.
"""

from __future__ import annotations

import argparse
import io
import logging
import time
from datetime import UTC, datetime

from orchestrator.components.views import component_view
from orchestrator.core import redaction
from orchestrator.core.logs import install_filter
from orchestrator.db.models import Component

LINES = [
    "state up -> down component=api reason=3 consecutive failures: connection refused",
    "component=api incident=42 step=0 attempt=1 claimed: run [\"systemctl\", \"restart\", \"api.service\"]",
    "calling POST http://deploy:s3cret@10.0.0.5:8080/rollback?token=abc123",
    "incident opened incident=42 component=api reason=status 500 not in [200-299]",
]


def _per_record_us(records: int, with_filter: bool) -> float:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    if with_filter:
        install_filter(handler)
    logger = logging.getLogger(f"bench.redaction.{with_filter}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    started = time.perf_counter()
    for i in range(records):
        logger.info("%s n=%d", LINES[i % len(LINES)], i)
    return (time.perf_counter() - started) / records * 1e6


def _redact_us(calls: int) -> float:
    started = time.perf_counter()
    for i in range(calls):
        redaction.redact(LINES[i % len(LINES)])
    return (time.perf_counter() - started) / calls * 1e6


def _view_us(views: int) -> float:
    now = datetime.now(UTC)
    row = Component(id=1, name="api", check_kind="http", url="http://app:pw@10.0.0.5/health",
                    check_spec={"url": "http://app:pw@10.0.0.5/health", "headers": {"Authorization": "Bearer x"}},
                    interval_s=10.0, timeout_s=2.0, failure_threshold=3, success_threshold=2, plan="web",
                    criticality="normal", labels={"team": "core"}, vars={"unit": "api.service", "admin_token": "t"},
                    secret_vars={"conn": "postgres://u:p@db/app"}, state="up", state_since=now, created_at=now,
                    updated_at=now, last_error="status 500", dependencies=[])
    started = time.perf_counter()
    for _ in range(views):
        component_view(row, {}, now)
    return (time.perf_counter() - started) / views * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--views", type=int, default=2000)
    args = parser.parse_args()
    plain = _per_record_us(args.records, with_filter=False)
    filtered = _per_record_us(args.records, with_filter=True)
    print(f"log record, no filter:        {plain:8.1f} us")
    print(f"log record, redacting filter: {filtered:8.1f} us  (+{filtered - plain:.1f} us, "
          f"{1e6 / filtered:,.0f} records/s on one core)")
    print(f"redact(), typical line:       {_redact_us(args.records):8.1f} us")
    redaction.remember([f"known-secret-value-{i}" for i in range(50)])
    print(f"redact(), 50 known values:    {_redact_us(args.records):8.1f} us")
    print(f"component view (redacted):    {_view_us(args.views):8.1f} us")


if __name__ == "__main__":
    main()
