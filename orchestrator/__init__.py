"""Central recovery orchestrator: watch components, record incidents, recover them safely."""

__version__ = "0.1.0"
