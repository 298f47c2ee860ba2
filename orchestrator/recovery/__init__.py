"""The recovery engine: a claim loop over incident rows, guards and gates, the plan executor, the journal.

- ``coordinator`` / ``worklist`` / ``claims``: the loop, which incidents need work, who owns a run now
- ``executor`` / ``gates`` / ``retry`` / ``attempt`` / ``verify`` / ``approval`` / ``slots``: running one plan
- ``journal`` / ``runs`` / ``records`` / ``decisions`` / ``takeover``: what is durable, and crash safety
- ``guards`` / ``snapshot`` / ``outage`` / ``fleet_probe``: may an action run now?
- ``targets`` / ``health_view``: what is checked, and the live health the guards read
"""
