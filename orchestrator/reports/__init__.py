"""Reports: incident history and component health over a window, as HTML, Markdown, JSON or CSV.

``build_report`` (in :mod:`.model`) reads the database into a frozen view model; :mod:`.render` turns it
into text. The JSON shape (``version`` 1) is stable; fields may be added, never renamed or removed::

    {
      "version": 1,
      "generated_at": ISO-8601, "since": ISO-8601, "until": ISO-8601, "window_s": float,
      "component": name | null,                      # the --component filter
      "totals": {
        "incidents": int,
        "by_resolution": {"auto": int, "self": int, "manual": int, "removed": int, "unresolved": int},
        "actions_executed": int,                     # journal attempts that really ran
        "actions_verified": int,                     # ...and passed verification
        "escalations": int, "mass_outages": int,
        "mttr_s": float | null                       # mean opened→resolved of resolved incidents
      },
      "components": [{
        "name": str, "state": str, "criticality": str, "labels": {str: str},
        "uptime_pct": float | null,                  # (up + degraded) / (up + degraded + down + flapping); null if never judged
        "time_s": {"up", "degraded", "down", "flapping", "unknown", "paused", "maintenance": float},
        "checks": {"checks": int, "failures": int,
                   "latency_p50_ms", "latency_p95_ms", "latency_max_ms": float | null},
        "incidents": int, "mttr_s": float | null,
        "tls_expires_at": ISO-8601 | null,           # the certificate its https check last saw
        "windows": [str],                            # maintenance windows and silences in force at "until"
        "push": null | {                             # a push monitor's pings at "until" (null: polled kinds)
          "last_ping_at": ISO-8601 | null, "last_ping_kind": "success" | "start" | "fail" | null,
          "last_exit_status": int | null, "last_success_at": ISO-8601 | null,
          "last_duration_s": float | null,           # the last successful run, start ping to success
          "next_expected_at": ISO-8601 | null,       # late (DOWN) after this plus grace_s
          "grace_s": float}
      }],
      "windows": [{"id": int, "kind": "maintenance" | "silence", "selector": str, "recurring": bool,
                   "cron": str | null, "duration_s": float | null, "tz": str | null,
                   "starts_at": ISO-8601 | null, "ends_at": ISO-8601 | null, "reason": str | null,
                   "created_at": ISO-8601, "created_by": str, "active": bool,
                   "active_until": ISO-8601 | null, "next_start": ISO-8601 | null}],
      "incidents": [{                                # newest first; those overlapping the window
        "id": int, "component": str | null, "kind": "component" | "mass_outage",
        "status": str, "resolution": "auto" | "self" | "manual" | "removed" | null,
        "opened_at": ISO-8601, "resolved_at": ISO-8601 | null,
        "duration_s": float,                         # to resolved_at, or to "until" while unresolved
        "escalated": bool, "reason": str | null, "plan": str | null, "blocked_by": str | null,
        "notifications": int,
        "source": "check" | "alert",                 # what opened it
        "alerts": [{"name": str | null, "status": "firing" | "resolved",
                    "runbook_url": str | null}],     # the alerts behind it; runbook_url only an http(s) link
        "steps": [{"step_index": int, "attempt": int, "strategy": str, "status": str,
                   "executed": bool, "verified": bool, "finished_at": ISO-8601 | null,
                   "detail": str | null, "output": str | null,   # output cut at 2000 characters
                   "verification": str | null}]               # e.g. "check passed: healthy 2 times in a row"
      }]
    }

Reasons, details, outputs and verification summaries are redacted (:func:`orchestrator.redact.redact`).
"""
