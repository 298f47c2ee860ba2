"""The ground floor every other part uses: the clock, states, errors, durations, redaction, processes, logs,
config, and the shared vocabulary (check spec and result, component defaults, the validation translator).

It imports nothing else of the package (an import contract in pyproject.toml says so)."""
