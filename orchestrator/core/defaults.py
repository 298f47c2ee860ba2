"""The defaults and floors of a component's settings, in a module of their own so the database models
(and every command that reads them) need not import the pydantic definition to know them."""

from __future__ import annotations

# The defaults of a component, here and nowhere else (the models, the tracker and the CLI read them).
#: seconds between checks
DEFAULT_INTERVAL_S = 10.0
#: days of certificate validity left below which an answering https component is DEGRADED
DEFAULT_TLS_WARN_DAYS = 14.0
#: days left below which the https check fails (the component goes DOWN and an incident opens)
DEFAULT_TLS_CRITICAL_DAYS = 3.0
#: longest check timeout when none is given; never more than half the interval (see default_timeout_s)
DEFAULT_TIMEOUT_S = 2.0
#: consecutive failures that make a component DOWN
DEFAULT_FAILURE_THRESHOLD = 3
#: consecutive successes that make it UP again
DEFAULT_SUCCESS_THRESHOLD = 2
#: longest re-check delay after a first failure (see default_retry_interval_s)
DEFAULT_RETRY_INTERVAL_S = 1.0
#: shortest interval accepted: faster checking is a typo (``0.0001``), and its timeout could never pass.
#: Must never let through a check that cannot succeed: it would open incidents and restart a healthy
#: service (invariant 3, do no harm).
MIN_INTERVAL_S = 0.1
#: shortest timeout accepted: below it no check (not even a loopback connect) can answer in time
MIN_TIMEOUT_S = 0.01
#: more replicas than any fleet runs, and far inside the database's INTEGER
MAX_REPLICAS = 1_000_000


def default_timeout_s(interval_s: float) -> float:
    """The timeout used when none is given: 2 s, or half the interval when that is shorter, so
    ``--interval 2s`` alone is valid (a timeout must be shorter than the interval)."""
    return min(DEFAULT_TIMEOUT_S, interval_s / 2)
#: longest wait between probes of a DOWN component (see definition.default_max_probe_interval_s): a
#: service fixed by hand is seen UP within this (plus its success threshold) at worst
DEFAULT_MAX_PROBE_INTERVAL_S = 30.0
#: ... and never more than this many intervals, so a fast-checked component is seen back fast
MAX_PROBE_INTERVALS = 5

# The daemon's own cadence, read by the daemon that keeps it and by the web that judges it.
#: seconds between the daemon's heartbeats (daemon_instances.heartbeat_at); /healthz calls the scheduler
#: stuck after a few missed ones
HEARTBEAT_INTERVAL_S = 5.0

# A push (heartbeat) monitor's own defaults: it is judged by its pings, so one late verdict (already
# after its grace) is DOWN and one success ping is UP; while late it is reported again every interval.
#: seconds between "still late" results of a push monitor
PUSH_INTERVAL_S = 60.0
#: a late push monitor is DOWN at its first late verdict
PUSH_FAILURE_THRESHOLD = 1
#: one success ping is UP
PUSH_SUCCESS_THRESHOLD = 1
