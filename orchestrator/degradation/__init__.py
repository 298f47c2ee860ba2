"""Graceful degradation: component early warning, system levels from policies, and their publication."""
