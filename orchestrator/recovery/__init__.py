"""The recovery engine: guards, the plan executor, the step journal and the coordinator around them.

- ``coordinator``: what the daemon calls (on_incident, on_state, reconcile_on_start, recover, ...)
- ``executor`` / ``attempt`` / ``verify`` / ``approval``: running one plan for one incident
- ``journal`` / ``runs`` / ``records`` / ``reconcile``: what is durable, and crash safety
- ``guards`` / ``snapshot`` / ``outage``: may an action run now?
- ``targets`` / ``health_view``: what is checked, and the live health the guards read
"""
