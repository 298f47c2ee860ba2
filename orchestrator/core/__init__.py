"""Foundations every other part uses: the clock, states, errors, durations, redaction, processes, logs, config."""
