"""Status page, JSON API, /metrics and badges."""
