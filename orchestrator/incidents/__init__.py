"""Incidents: their lifecycle (the only writer of incident status), notifications, and the operator service."""
