"""The check plane, in the order data flows.

- ``scheduler``: APScheduler as the daemon's timer (the dispatch tick and a few fixed jobs).
- ``dispatch``: every component's next due time in one heap; each tick hands what is due to the lanes.
- ``lanes``: fast and slow lanes of check threads in this process; ``procs`` and ``worker``: the same
  lanes in worker processes (``run --check-processes``).
- ``checkers/``: the http/tcp/command checkers (what a check is and its result are ``core.check_spec``
  and ``core.check_result``).
- ``judge``: the one thread that owns every ``tracker`` (thresholds, ``flap`` detection, holds).
- ``live``: the live view other parts read (the recovery engine's HealthView).
- ``sync``: registry changes, turned into messages for the judge; ``plane``: all of it assembled.
- ``sentinels``: "is it me?" checks that mark the whole view unreliable.
"""
