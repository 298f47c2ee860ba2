"""Logging: one line per event, ``key=value`` fields in the message; JSON lines for log shippers."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from orchestrator.core.redaction import redact


class RedactingFilter(logging.Filter):
    """Redacts every record's final message (arguments merged in) before any handler formats it.

    Installed on the handlers, so records of every logger (ours, libraries', third-party strategies')
    pass through it. Cheap enough for the check plane, which logs a few lines per transition, not per
    check (bench/redaction.py measures it).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_filter(handler: logging.Handler) -> None:
    """Make ``handler`` redact what it writes (idempotent)."""
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
        line = f"{ts} {record.levelname.lower()} {record.name} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(data)


def setup(level: str = "info", fmt: str = "text") -> None:
    """Log to stderr, one line per record (``fmt`` text or json), every line redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    install_filter(handler)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "urllib3", "sqlalchemy", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # APScheduler warns once per skipped run, which under overload is a flood that costs CPU itself;
    # the daemon counts those runs and logs one summary line per heartbeat instead.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
