"""The invariants of docs/guarantees.md (I1-I7) as checks the tests share.

Two halves:

1. :func:`observe` reads every surface once — the database (SQLAlchemy, SQLite or PostgreSQL), the
   daemon's API (``/api/v1/components``, ``/metrics``), optionally ``orchestrator status --json``, and
   the restart stub's own log — into one frozen :class:`Observation`.
2. ``check_i1`` … ``check_i7`` compare one observation with the truth the test keeps (:class:`World`:
   which service is broken since when, which component is paused, when the daemon was last disturbed)
   and return :class:`Violation` records. :class:`Checker` keeps the little memory they need between
   observations (when a value last changed) and the figures a soak reports.

The world is told, never guessed: a test that breaks a service says so (``World.broke``), so a
violation always names the component, the bound and how far past it the orchestrator was.

The checks read the fields issue 14's fixes added: an incident's ``waiting_for``/``waiting_until``
(I2, I6: a blocked incident's reason is ``guard <name>``), the recorder's drop counters by cause
(I4: the stop line, ``status --json``, ``orchestrator_recorder_dropped_total{kind,cause}``). The names
they accept (:data:`GUARD_NAMES`, :data:`DROP_NAMES`) are the checker's own copies, so a guard or a
drop cause added to the code without a word here fails tests/test_invariants.py instead of passing
unnoticed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

#: Added to every bound before a miss counts as a violation: a loaded 2-core CI machine runs a
#: check late by seconds. A miss past the bound alone is counted as a "detection-bound miss".
LOAD_SLACK_S = 10.0
#: How long a surface (API, /metrics, status) may disagree with the database (the database's state
#: mirror follows the daemon's live view at the next flush; a loaded machine delays both).
SURFACE_LAG_S = 10.0
#: The recorder's flush interval (orchestrator.history.recorder.DEFAULT_FLUSH_INTERVAL_S) + I3's 2 s.
WRITE_BOUND_S = 1.0 + 2.0
#: After the daemon starts, comes back from SIGSTOP or regains its database: time to reconnect and
#: check the fleet once before the bounds run.
SETTLE_S = 5.0
#: An incident may be new this long before it must say what it is doing.
INCIDENT_GRACE_S = 10.0
#: The journal records how an attempt ended within this long of its command's end.
JOURNAL_GRACE_S = 10.0
#: A second daemon on the same database must refuse to run within this long.
SECOND_DAEMON_REFUSAL_S = 15.0
#: Stubs' actions this close after a hand fix are racing the fix, not acting on a healthy service.
HAND_FIX_RACE_S = 3.0
#: How long a flap stays in the tracker's window (21 checks at 1 s, and the DOWN probe backoff): a
#: restart this soon after the test had the service flapping may find it FLAPPING and resolve ``self``.
FLAP_MEMORY_S = 30.0
#: breaks and fixes by the test within FLAP_WINDOW_S before a restart that make the tracker's FLAPPING
#: verdict (a share of state changes over its last 21 checks, up to 42 s at a 2 s interval) the truth
FLAP_CHANGES, FLAP_WINDOW_S = 4, 60.0
#: Guards allowed to stop an action (I6); matched as words in a skip or block reason.
NAMED_GUARDS = ("blast radius", "blast_radius", "mass outage", "mass_outage", "dependency", "depends", "flap",
                "budget", "breaker", "emergency", "override", "observe", "error_handling", "paused", "pause",
                "maintenance", "approval", "crash loop", "crash_loop", "concurrent", "removed", "recovered",
                "healthy", "settle", "sentinel", "hold")
#: The guards of orchestrator.recovery.guards.GUARDS: a blocked incident's ``waiting_for`` is
#: ``guard <one of these>`` (I2, I6). ``degradation`` is legitimate only under an operator's EMERGENCY
#: override (a person's decision); no computed level blocks a step.
GUARD_NAMES = ("sentinels", "blast_radius", "hold", "degradation", "dependency", "flapping", "breaker", "budget",
               "observe_only", "no_plan")  # no_plan: the coordinator's, for an incident whose plan is gone
#: What the operator's EMERGENCY override says when it holds a step (orchestrator.degradation.actions.FROZEN).
EMERGENCY_REASON = "operator emergency override"
#: How long ``degradation set … --for`` lasts in the soak (its override expires by itself then).
DEGRADATION_FOR_S = 60.0
#: The recorder's drop counters (orchestrator.history.drops.NAMES): the stop line names every one.
DROP_NAMES = ("results_buffer_full", "results_removed", "results_refused", "results_at_stop",
              "transitions_removed", "transitions_refused", "transitions_at_stop",
              "rollups_removed", "rollups_refused", "rollups_at_stop",
              "pings_removed", "pings_refused", "pings_at_stop")
#: The shipped notification group_window (recovery_strategies.json): a blocked incident's notification
#: goes out when the window its first event opened has passed, so it is judged that long + slack after.
NOTIFY_WINDOW_S = 30.0
#: The shipped blast-radius rule: at least this share of a fleet of at least MASS_OUTAGE_MIN_COMPONENTS,
#: and at least MASS_OUTAGE_MIN_DOWN of them DOWN, opens a mass-outage incident (3 of 6 does not).
MASS_OUTAGE_FRACTION = 0.5
MASS_OUTAGE_MIN_COMPONENTS = 4
MASS_OUTAGE_MIN_DOWN = 4
#: A command that ended this little before its daemon was SIGKILLed with its children may have logged its
#: exit while the exit recorder (its parent in the group) died before writing it: "no exit status" is
#: then the truth the orchestrator can know.
KILL_RACE_S = 2.0
#: Faults after which a component is not answering (its DB state must become DOWN).
DEAD_FAULTS = frozenset({"crash", "500", "hang"})
ACTIVE = ("open", "recovering", "awaiting_approval", "blocked", "escalated")


def probe_cap_s(interval_s: float) -> float:
    """I1's cap on the probe backoff of a DOWN component: min(30 s, 5 × interval)."""
    return min(30.0, 5.0 * interval_s)


def detect_bound_s(s: Service) -> float:
    """I1: failure threshold × interval + timeout + 1 s."""
    return s.failure_threshold * s.interval_s + s.timeout_s + 1.0


def up_bound_s(s: Service) -> float:
    """I1, the way back: the DOWN probe cap, then success threshold × interval + timeout + 1 s."""
    return probe_cap_s(s.interval_s) + s.success_threshold * s.interval_s + s.timeout_s + 1.0


@dataclass(frozen=True)
class Violation:
    invariant: str
    subject: str
    detail: str
    at_s: float  # seconds since the test started

    def __str__(self) -> str:
        return f"[{self.at_s:7.1f}s] {self.invariant} {self.subject}: {self.detail}"


@dataclass
class Service:
    """The truth about one registered component, kept by the test."""

    name: str
    interval_s: float = 1.0
    timeout_s: float = 0.5
    failure_threshold: int = 2
    success_threshold: int = 1
    plan: str | None = "process"
    fault: str | None = None  # crash, 500, hang, slow, flap, crash_loop; None = answering
    dead: bool = False  # not answering right now (a crash loop alternates)
    dead_since: float = 0.0
    answering_since: float = 0.0
    paused: bool = False
    maintenance: bool = False
    changed_at: float = 0.0  # added, updated, resumed, out of maintenance: bounds restart here
    hand_fixed_at: float = -1e9
    flapped_at: float = -1e9  # the last moment the test had it flapping (a flap fault began or ended)
    changes: list[float] = field(default_factory=list)  # when the test broke it or had it answer again


@dataclass
class World:
    """What the test did, on the monotonic clock (``time.monotonic()``)."""

    started: float = field(default_factory=time.monotonic)
    services: dict[str, Service] = field(default_factory=dict)
    removed: dict[str, Service] = field(default_factory=dict)  # what the test did to a service before removing it
    disturbances: set[str] = field(default_factory=set)  # e.g. "stopped", "db cut", "daemon down"
    calm_since: float | None = None  # None while disturbed
    plan_attempts: dict[str, int] = field(default_factory=dict)  # plan → attempts of its first step
    killed_pids: set[int] = field(default_factory=set)  # daemons the test SIGKILLed (they did die)
    group_kills: list[float] = field(default_factory=list)  # wall times of SIGKILLs "with the children"
    step_timeout_s: float = 30.0  # of the restart step (a command that ended sooner did not time out)
    degradation_forced: str | None = None  # the level the test set with `degradation set … --for 1m`
    emergency_until: float = -1e9  # when the operator's EMERGENCY override ends (monotonic)

    def force_degradation(self, level: str | None) -> None:
        now = time.monotonic()
        self.degradation_forced = level
        self.emergency_until = now + DEGRADATION_FOR_S if level == "emergency" else min(self.emergency_until, now)

    def emergency_recently(self, now: float, lag_s: float) -> bool:
        """An operator's EMERGENCY override is in force, or ended less than ``lag_s`` ago (its hold lifts
        at the loop's next look)."""
        return now < self.emergency_until + lag_s

    def now_s(self) -> float:
        return time.monotonic() - self.started

    def disturb(self, what: str) -> None:
        self.disturbances.add(what)
        self.calm_since = None

    def settle(self, what: str, extra_s: float = 0.0) -> None:
        self.disturbances.discard(what)
        if not self.disturbances:
            self.calm_since = time.monotonic() + SETTLE_S + extra_s

    def calm_for(self, now: float) -> float:
        return 0.0 if self.calm_since is None else max(0.0, now - self.calm_since)

    def broke(self, name: str, fault: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        s = self.services[name]
        if fault == "flap" or s.fault == "flap":  # a flap begins, or ends in another fault
            s.flapped_at = now
        s.changes.append(now)
        s.fault = fault
        if fault in DEAD_FAULTS or fault == "crash_loop":
            if not s.dead:
                s.dead, s.dead_since = True, now

    def answering(self, name: str, *, fixed_by_hand: bool = False, keep_fault: bool = False) -> None:
        now = time.monotonic()
        s = self.services.get(name)
        if s is None:
            return
        if s.fault == "flap":
            s.flapped_at = now
        if s.dead or s.fault not in (None, "slow"):
            s.answering_since = now
        if not keep_fault:
            s.fault = None
        s.dead = False
        if fixed_by_hand:
            s.hand_fixed_at = now
        s.changes.append(now)


@dataclass(frozen=True)
class Observation:
    at: float  # monotonic
    components: dict[str, dict[str, Any]]  # DB rows by name
    incidents: list[dict[str, Any]]  # active ones and those resolved recently
    journal: list[dict[str, Any]]
    notified: set[tuple[int, str]]  # (incident id, event) with a notification or a notified event row
    results_max_id: int
    instances: list[dict[str, Any]]
    api_states: dict[str, str] | None  # None: the API did not answer
    metric_states: dict[str, str] | None
    dropped_metric: float | None
    status_states: dict[str, str] | None  # only when asked for (a CLI run costs a second)
    actions: list[dict[str, Any]]  # the stub's log
    #: /metrics ``orchestrator_recorder_dropped_total{kind,cause}`` as ``{"results_removed": 2.0, …}``
    metric_drops: dict[str, float] | None = None
    #: ``status --json``'s daemon instances (each with ``drops`` and ``writes_failing_since``)
    status_instances: list[dict[str, Any]] | None = None


# -- reading the surfaces ------------------------------------------------------------------------

def _rows(conn: sa.Connection, sql: str) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(sa.text(sql))]


def read_db(engine: sa.Engine) -> dict[str, Any]:
    """Everything the checks need from the database, in one short read."""
    with engine.connect() as conn:
        # every column (SELECT *): fields the fixes add (e.g. incidents.waiting_for) arrive without a change here
        components = {r["name"]: r for r in _rows(conn, "SELECT * FROM components")}
        # one window for both reads: an incident committed between them (PostgreSQL reads each statement
        # afresh) shifted the journal's window by one and flagged the oldest incident's commands as unjournaled
        floor = conn.execute(sa.text("SELECT coalesce(max(id), 0) - 200 FROM incidents")).scalar() or 0
        incidents = _rows(conn, f"SELECT * FROM incidents WHERE status != 'resolved' OR id > {int(floor)}")
        journal = _rows(conn, f"SELECT * FROM recovery_journal WHERE incident_id > {int(floor)}")
        # a notification about one incident, or a digest line "12:00:01 [blocked] api incident 7 blocked: …"
        # (incident_events.notified_at is set for events the routing filtered out too: not proof)
        notified: set[tuple[int, str]] = set()
        for r in _rows(conn, "SELECT incident_id, event, body FROM notifications"):
            if r["incident_id"] is not None:
                notified.add((r["incident_id"], r["event"]))
            for m in re.finditer(r"\bincident (\d+) (\w+)", r["body"] or ""):
                notified.add((int(m.group(1)), m.group(2)))
        max_id = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM check_results")).scalar() or 0
        instances = _rows(conn, "SELECT id, pid, heartbeat_at, stopped_at, dropped_results, drops, "
                                "writes_failing_since FROM daemon_instances")
        for inst in instances:  # JSON arrives as text from a textual query on SQLite
            inst["drops"] = json.loads(inst["drops"]) if isinstance(inst["drops"], str) else dict(inst["drops"] or {})
    return {"components": components, "incidents": incidents, "journal": journal, "notified": notified,
            "results_max_id": int(max_id), "instances": instances}


def _get(url: str, timeout_s: float = 3.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - loopback only
            return resp.read()
    except (OSError, ValueError):
        return None


def read_api(base: str | None) -> tuple[dict[str, str] | None, dict[str, str] | None, float | None,
                                        dict[str, float] | None]:
    """(state by name from /api/v1/components, state by name from /metrics, dropped-results counter,
    the recorder's drop counters by ``kind_cause``)."""
    if base is None:
        return None, None, None, None
    body = _get(f"{base}/api/v1/components?limit=1000")
    api = None
    if body is not None:
        try:
            data = json.loads(body)
            items = data.get("items", data) if isinstance(data, dict) else data
            api = {c["name"]: c["state"] for c in items}
        except (ValueError, KeyError, TypeError):
            api = None
    text = _get(f"{base}/metrics")
    metrics, dropped, drops = None, None, None
    if text is not None:
        metrics = {}
        for m in re.finditer(rb'^orchestrator_component_state\{component="([^"]+)",state="([^"]+)"\} 1(?:\.0)?$',
                             text, re.M):
            metrics[m.group(1).decode()] = m.group(2).decode()
        d = re.search(rb"^orchestrator_dropped_results_total(?:\{\})? ([0-9.e+]+)$", text, re.M)
        dropped = float(d.group(1)) if d else None
        drops = {}
        for m in re.finditer(rb"^orchestrator_recorder_dropped_total\{([^}]*)\} ([0-9.e+]+)$", text, re.M):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1).decode()))  # in any order
            drops[f"{labels.get('kind')}_{labels.get('cause')}"] = float(m.group(2))
    return api, metrics, dropped, drops


def read_status(db_url: str, home: Path) -> tuple[dict[str, str] | None, list[dict[str, Any]] | None]:
    """(state by name, daemon instances) from ``orchestrator status --json`` (None if it failed)."""
    try:
        out = subprocess.run([sys.executable, "-m", "orchestrator", "--db", db_url, "status", "--json"],
                             capture_output=True, text=True, timeout=30,
                             env={"ORCHESTRATOR_HOME": str(home), "PATH": "/usr/bin:/bin"})
        data = json.loads(out.stdout)
        return {c["name"]: c["state"] for c in data["components"]}, data.get("instances")
    except (subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return None, None


def read_actions(log: Path) -> list[dict[str, Any]]:
    """The restart stub's log: one JSON line per start and per end of a command."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a line being written right now
    return out


def observe(engine: sa.Engine, api_base: str | None, actions_log: Path, *, status: tuple[str, Path] | None = None,
            ) -> Observation:
    db = read_db(engine)
    api, metrics, dropped, drops = read_api(api_base)
    states, instances = read_status(*status) if status else (None, None)
    return Observation(at=time.monotonic(), **db, api_states=api, metric_states=metrics, dropped_metric=dropped,
                       status_states=states, actions=read_actions(actions_log), metric_drops=drops,
                       status_instances=instances)


# -- the checks ----------------------------------------------------------------------------------

@dataclass
class Memory:
    """What the checks remember between observations (monotonic times)."""

    state_seen: dict[str, tuple[str, float]] = field(default_factory=dict)  # name → (DB state, first seen)
    last_check_seen: dict[str, tuple[Any, float]] = field(default_factory=dict)
    results_seen: tuple[int, float] = (0, 0.0)
    incident_seen: dict[int, tuple[str, float]] = field(default_factory=dict)
    holding: dict[Any, float] = field(default_factory=dict)  # condition → since when it holds
    renewed: set[Any] = field(default_factory=set)
    reported: set[tuple[str, str, Any]] = field(default_factory=set)  # one violation per episode
    misses: set[tuple[str, float]] = field(default_factory=set)
    longest_stall_s: float = 0.0
    drops_shown: dict[str, dict[str, int]] = field(default_factory=dict)  # instance id → largest counts shown


def _since(memory: dict, key: Any, value: Any, now: float) -> float:
    """How long ``key`` has had ``value`` (first seen now if it changed)."""
    seen = memory.get(key)
    if seen is None or seen[0] != value:
        memory[key] = (value, now)
        return 0.0
    return now - seen[1]


def _held(mem: Memory, key: Any, now: float) -> float:
    """How long the condition ``key`` has held in every observation so far (0 the first time).
    Conditions not renewed in an observation are forgotten by :meth:`Checker.evaluate`."""
    since = mem.holding.setdefault(key, now)
    mem.renewed.add(key)
    return now - since


def _once(mem: Memory, out: list[Violation], v: Violation, episode: Any) -> None:
    key = (v.invariant, v.subject, episode)
    if key not in mem.reported:
        mem.reported.add(key)
        out.append(v)


def _watched(world: World, name: str) -> Service | None:
    s = world.services.get(name)
    return None if s is None or s.paused or s.maintenance else s


def check_i1(obs: Observation, world: World, mem: Memory) -> list[Violation]:
    """I1: broken past its detection bound → DOWN on every surface; answering again → UP within the same
    bound plus the DOWN probe cap. A miss past the bound is counted; past bound + LOAD_SLACK_S it is a
    violation."""
    out: list[Violation] = []
    now, t = obs.at, world.now_s()
    for name, row in obs.components.items():
        s = _watched(world, name)
        if s is None or world.calm_since is None or now < world.calm_since:
            continue
        since_state = _since(mem.state_seen, name, row["state"], now)
        if s.dead and s.fault in DEAD_FAULTS | {"crash_loop"}:
            start, bound, want = max(s.dead_since, world.calm_since, s.changed_at), detect_bound_s(s), ("down", "flapping")
        elif not s.dead and s.fault in (None, "slow"):
            start, bound, want = max(s.answering_since, world.calm_since, s.changed_at), up_bound_s(s), ("up", "degraded")
        else:
            continue
        late = now - start - bound
        if row["state"] in want or late <= 0:
            continue
        mem.misses.add((name, start))
        if late > LOAD_SLACK_S:
            _once(mem, out, Violation("I1", name, f"{s.fault or 'answering'} for {now - start:.1f}s (bound "
                                      f"{bound:.1f}s) but the database says {row['state']!r}", t), start)
        del since_state
    # the surfaces agree with the database once it has held a state for SURFACE_LAG_S
    for surface, states in (("API", obs.api_states), ("/metrics", obs.metric_states),
                            ("status", obs.status_states)):
        if states is None or world.calm_since is None or now < world.calm_since:
            continue
        for name, row in obs.components.items():
            seen = mem.state_seen.get(name)
            if _watched(world, name) is None or (row["paused_until"] or row["maintenance_until"]):
                continue  # surfaces show a person's hold as the state; the database keeps the health
            if name not in states or states[name] == row["state"]:
                continue
            lasting = _held(mem, ("surface", surface, name, states[name], row["state"]), now)
            if lasting > SURFACE_LAG_S:
                _once(mem, out, Violation("I1", name, f"{surface} says {states[name]!r}, the database "
                                          f"{row['state']!r}, for {lasting:.0f}s", t), (surface, seen and seen[1]))
    return out


def check_i2(obs: Observation, world: World, mem: Memory) -> list[Violation]:
    """I2: a DOWN component with a plan has an incident that acts (``run_owner`` set), waits saying for
    what (``waiting_for``) and looks again by ``waiting_until``, is blocked by a named guard
    (``waiting_for`` = ``guard <name>``; ``blocked_by`` set by the dependency guard alone) with a
    notification sent, or is escalated; no incident outlives its component."""
    out: list[Violation] = []
    now, t = obs.at, world.now_s()
    calm = world.calm_since is not None and now > world.calm_since + INCIDENT_GRACE_S
    by_component: dict[Any, list[dict]] = {}
    for inc in obs.incidents:
        if inc["status"] in ACTIVE:
            by_component.setdefault(inc["component_id"], []).append(inc)
    for name, row in obs.components.items():
        s = _watched(world, name)
        if s and s.plan and row["state"] == "down" and calm and not by_component.get(row["id"]):
            lasting = _held(mem, ("no incident", name), now)
            if lasting > INCIDENT_GRACE_S:
                _once(mem, out, Violation("I2", name, f"DOWN with no open incident for {lasting:.0f}s", t),
                      mem.holding[("no incident", name)])
    wall = datetime.now(UTC).replace(tzinfo=None)  # the database keeps naive UTC
    for inc in obs.incidents:
        if inc["status"] not in ACTIVE or inc["kind"] != "component":
            continue
        age = _since(mem.incident_seen, inc["id"], inc["status"], now)
        subject = f"incident {inc['id']} ({inc['component_name']})"
        waiting_for, until = inc.get("waiting_for"), _naive(inc.get("waiting_until"))
        # held across observations (a moment between a claim's release and the next is not a state):
        # open, nobody working on it (run_owner NULL) and not saying what it waits for: a brand-new
        # unclaimed incident is due at once (claimed within ~0.1 s), so this lasting is a silent wait
        silent = inc["status"] == "open" and not inc.get("run_owner") and not waiting_for \
            and _held(mem, ("silent", inc["id"]), now)
        # waiting_until is "when the loop looks again at the latest": a look rewrites it or acts
        overdue_s = (wall - until).total_seconds() if until is not None else 0.0
        overdue = inc["status"] in ("open", "blocked") and not inc.get("run_owner") and overdue_s > 0 \
            and _held(mem, ("overdue", inc["id"], until), now)
        if not calm or age < INCIDENT_GRACE_S:
            continue
        if inc["component_id"] is None and inc["status"] != "escalated":
            _once(mem, out, Violation("I2", subject, f"{inc['status']} {age:.0f}s after its component was removed",
                                      t), inc["status"])
        elif inc["component_id"] is None:
            _once(mem, out, Violation("I2", subject, "escalated incident outlives its removed component", t),
                  "removed")
        elif silent and silent > INCIDENT_GRACE_S:
            _once(mem, out, Violation("I2", subject, f"open {silent:.0f}s, nobody working on it and no "
                                      f"waiting_for (status_reason={inc['status_reason']!r})", t), "open")
        if overdue and overdue_s > INCIDENT_GRACE_S + LOAD_SLACK_S:
            _once(mem, out, Violation("I2", subject, f"{inc['status']}, waiting for {waiting_for!r} until "
                                      f"{until:%H:%M:%S}, {overdue_s:.0f}s ago, and nobody looked again", t),
                  ("overdue", until))
        if inc["status"] == "blocked" and inc["component_id"] is not None:
            guard = _guard_of(waiting_for)
            if guard is None:
                _once(mem, out, Violation("I2", subject, f"blocked {age:.0f}s without a named guard: waiting_for="
                                          f"{waiting_for!r} ({inc['status_reason']!r})", t), "guard")
            elif guard == "dependency" and not inc["blocked_by"]:
                _once(mem, out, Violation("I2", subject, f"blocked {age:.0f}s by the dependency guard, blocked_by "
                                          "empty", t), "blocked_by")
            elif guard != "dependency" and inc["blocked_by"]:  # only the dependency guard sets blocked_by
                _once(mem, out, Violation("I2", subject, f"blocked by guard {guard} but blocked_by="
                                          f"{inc['blocked_by']!r}", t), "blocked_by")
        if inc["status"] == "blocked" and age > NOTIFY_WINDOW_S + LOAD_SLACK_S \
                and (inc["id"], "blocked") not in obs.notified:
            _once(mem, out, Violation("I2", subject, f"blocked {age:.0f}s ({inc['status_reason']!r}), nobody "
                                      "notified", t), "blocked_notify")
    return out


def _naive(value: Any) -> datetime | None:
    """A timestamp column as naive UTC (SQLite's textual query returns a string)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _guard_of(waiting_for: str | None) -> str | None:
    """The guard a blocked incident names (``guard flapping: …`` → ``flapping``), None if none of GUARD_NAMES."""
    m = re.match(r"guard (\w+)", waiting_for or "")
    return m.group(1) if m and m.group(1) in GUARD_NAMES else None


def check_i3(obs: Observation, world: World, mem: Memory) -> list[Violation]:
    """I3: results keep reaching the database within WRITE_BOUND_S while it is reachable (measured on
    the test's monotonic clock by the newest result id, so a wall-clock step cannot hide a stall)."""
    out: list[Violation] = []
    now, t = obs.at, world.now_s()
    last_id, changed_at = mem.results_seen
    if obs.results_max_id != last_id:
        if world.calm_since is not None and now > world.calm_since:
            mem.longest_stall_s = max(mem.longest_stall_s, now - max(changed_at, world.calm_since))
        mem.results_seen = (obs.results_max_id, now)
        return out
    if world.calm_since is None or not any(_watched(world, n) for n in obs.components):
        mem.results_seen = (last_id, now)  # a disturbance restarts the measure
        return out
    stall = now - max(changed_at, world.calm_since)
    mem.longest_stall_s = max(mem.longest_stall_s, stall)
    if stall > WRITE_BOUND_S + LOAD_SLACK_S:
        _once(mem, out, Violation("I3", "recorder", f"no result written for {stall:.0f}s while the database is "
                                  f"reachable (newest result id {last_id})", t), changed_at)
    return out


def check_i4(log_text: str, stall_at_stop_s: float, world: World, mem: Memory | None = None) -> list[Violation]:
    """I4: at a clean stop, results not written are counted. ``log_text`` is that daemon's log: its last
    stop line ``stopped instance=I written=W dropped=D results_buffer_full=0 … rollups_at_stop=0`` names
    every counter of DROP_NAMES, D is the sum of the ``results_*`` ones, no counter is below what a
    surface showed for that instance while it ran (``mem.drops_shown``: a counter never goes back), and
    something is counted when results were still waiting unwritten (a write failure after the last
    "reachable again", or a write stall at the stop)."""
    t = world.now_s()
    lines = log_text.splitlines()
    stop = next((i for i in range(len(lines) - 1, -1, -1) if "stopped instance=" in lines[i]), None)
    if stop is None:
        return [Violation("I4", "daemon", "stopped without its 'stopped … written= dropped=' line", t)]
    m = re.search(r"instance=(\S+) written=(\d+) dropped=(\d+)", lines[stop])
    if not m:
        return [Violation("I4", "daemon", f"stop line without counts: {lines[stop].strip()!r}", t)]
    counts = {k: int(v) for k, v in re.findall(r"\b(\w+)=(\d+)\b", lines[stop]) if k in DROP_NAMES}
    out: list[Violation] = []
    missing = [n for n in DROP_NAMES if n not in counts]
    if missing:
        out.append(Violation("I4", "daemon", f"stop line without the counters {missing}: {lines[stop].strip()!r}", t))
    results = sum(n for k, n in counts.items() if k.startswith("results_"))
    if results != int(m.group(3)):
        out.append(Violation("I4", "daemon", f"stop line's dropped={m.group(3)} is not the sum of its results_* "
                             f"counters ({results})", t))
    shown = (mem.drops_shown.get(m.group(1), {}) if mem else {})
    behind = {k: (counts.get(k, 0), n) for k, n in shown.items() if counts.get(k, 0) < n}
    if behind:
        out.append(Violation("I4", "recorder", f"stop line counts less than the surfaces showed (stop line, "
                             f"shown): {behind}", t))
    counted = sum(counts.values())
    failed = max((i for i in range(stop) if "database write failed" in lines[i]), default=-1)
    recovered = max((i for i in range(stop) if "database reachable again" in lines[i]), default=-1)
    if failed > recovered and counted == 0:
        cause = lines[failed].split("buffering:", 1)[-1].strip()
        out.append(Violation("I4", "recorder", f"stopped with rows buffered after a failed write ({cause}); "
                             f"neither written nor counted: {lines[stop].strip()!r}", t))
    elif stall_at_stop_s > WRITE_BOUND_S + LOAD_SLACK_S and counted == 0:
        out.append(Violation("I4", "recorder", f"stopped {stall_at_stop_s:.0f}s into a write stall, rows of that "
                             f"time neither written nor counted: {lines[stop].strip()!r}", t))
    return out


def check_i4_shown(obs: Observation, world: World, mem: Memory) -> list[Violation]:
    """I4 on the live surfaces: /metrics has ``orchestrator_recorder_dropped_total`` for every counter of
    DROP_NAMES, ``status --json`` gives each instance its ``drops`` and ``writes_failing_since``, and the
    largest count each showed is remembered for the stop line (:func:`check_i4`)."""
    out: list[Violation] = []
    now, t = obs.at, world.now_s()
    calm = world.calm_since is not None and now > world.calm_since
    missing = [n for n in DROP_NAMES if n not in (obs.metric_drops or {})] if obs.metric_drops is not None else []
    # while the daemon starts, its web server answers before the recorder exists (the family is empty
    # then): only a family still incomplete SURFACE_LAG_S into calm is one
    if missing and calm and _held(mem, ("metric drops", tuple(missing)), now) > SURFACE_LAG_S:
        _once(mem, out, Violation("I4", "/metrics", f"orchestrator_recorder_dropped_total lacks {missing}", t),
              tuple(missing))
    for inst in obs.status_instances or ():
        if not isinstance(inst.get("drops"), dict) or "writes_failing_since" not in inst:
            _once(mem, out, Violation("I4", "status", f"instance {inst.get('id')} without drops or "
                                      f"writes_failing_since: {sorted(inst)}", t), inst.get("id"))
    for inst in [*obs.instances, *(obs.status_instances or ())]:
        shown = mem.drops_shown.setdefault(str(inst.get("id")), {})
        for name, n in (inst.get("drops") or {}).items():
            shown[name] = max(shown.get(name, 0), int(n))
    return out


def check_i5(obs: Observation, world: World, mem: Memory) -> list[Violation]:
    """I5: no action on a component healthy when picked up, none twice, and the journal matches the
    commands' own log (what ran, and how it ended)."""
    out: list[Violation] = []
    t = world.now_s()
    starts = [a for a in obs.actions if a.get("event") == "start"]
    ends = {(a["incident"], a["attempt"]): a for a in obs.actions if a.get("event") == "end"}
    seen: dict[tuple[str, str], int] = {}
    starts_at: dict[tuple[str, str], float] = {}
    for a in starts:
        key = (a["incident"], a["attempt"])
        starts_at.setdefault(key, a["t"])
        seen[key] = seen.get(key, 0) + 1
        if seen[key] == 2:
            _once(mem, out, Violation("I5", f"incident {key[0]}", f"attempt {key[1]} ran twice", t), key)
        if a["healthy_before"] and a.get("fault") not in ("flap",) and not a.get("hand_fix_race"):
            _once(mem, out, Violation("I5", f"incident {key[0]} ({a['name']})", f"attempt {key[1]} restarted a "
                                      "component that was answering", t), ("healthy", key))
    journal = {(str(j["incident_id"]), str(j["attempt"])): j for j in obs.journal
               if j["strategy"] == "restart" and j["executed"]}
    settled = time.time() - JOURNAL_GRACE_S  # the stub's times are wall-clock, like its log
    wall_offset = time.time() - time.monotonic()  # the world's times are monotonic
    # the journal is read for the newest 200 incidents only (read_db): an older incident's commands are
    # no longer compared with it (a 30-minute soak opens hundreds)
    window = max((int(i["id"]) for i in obs.incidents), default=0) - 200
    for key in seen:
        end = ends.get(key)
        if str(key[0]).isdigit() and int(key[0]) <= window:
            continue
        if key not in journal and end is not None and end["t"] < settled and world.calm_since is not None:
            _once(mem, out, Violation("I5", f"incident {key[0]}", f"attempt {key[1]} ran but the journal has no "
                                      "executed row for it", t), ("unjournaled", key))
    for key, j in journal.items():
        end = ends.get(key)
        if j["status"] == "succeeded" and key not in seen:
            _once(mem, out, Violation("I5", f"incident {key[0]}", f"journal says attempt {key[1]} succeeded, the "
                                      "command never ran", t), ("phantom", key))
        in_time = end is not None and key in starts_at and end["t"] - starts_at[key] < world.step_timeout_s
        raced = "no exit status" in (j["detail"] or "") and end is not None and any(
            0 <= k - end["t"] <= KILL_RACE_S for k in world.group_kills)
        if end and end["exit"] == 0 and in_time and j["status"] in ("timed_out", "failed") and not raced:
            _once(mem, out, Violation("I5", f"incident {key[0]}", f"journal says attempt {key[1]} {j['status']}"
                                      f" ({j['detail']!r}); the command exited 0", t), ("disagree", key))
    for j in obs.journal:  # "its owner died" only when the test killed it (instance ids are host:pid:tag)
        parts = str(j.get("owner") or "").split(":")
        pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
        if "owner died" in (j["detail"] or "") and pid is not None and pid not in world.killed_pids:
            _once(mem, out, Violation("I5", f"incident {j['incident_id']}", f"journal says attempt {j['attempt']}'s "
                                      f"owner died (pid {pid}); it was never killed: {j['detail']!r}", t),
                  ("owner", j["id"]))
    by_incident: dict[int, list[dict]] = {}
    for j in obs.journal:
        by_incident.setdefault(j["incident_id"], []).append(j)
    for inc in obs.incidents:
        # a restart of a service flapping when it was picked up does not count: its checks pass in the
        # flap's good phases by themselves, so the orchestrator resolves it 'self' on purpose (passing
        # checks then are no proof the action worked; orchestrator.recovery.executor)
        flapping = {(a["incident"], a["attempt"]) for a in starts if a.get("fault") == "flap"}
        # nor one that started on a service already answering (fixed by hand just before): it healed nothing
        flapping |= {(a["incident"], a["attempt"]) for a in starts if a["healthy_before"]}
        # nor one after which the test broke the service again or fixed it by hand (while the incident
        # was held, say): what healed it last was not that restart
        # (a removed component's history still counts: the incident may have been resolved before removal)
        s = world.services.get(inc.get("component_name") or "") or world.removed.get(inc.get("component_name") or "")
        later = max(s.dead_since, s.hand_fixed_at) + wall_offset if s else float("-inf")
        # nor one the orchestrator saw FLAPPING when it picked the attempt up, after the test really had
        # it flapping: its tracker's verdict was evidence, and the rule is `self` then (docs/guarantees.md)
        # (the test had it flapping: a flap fault, or breaks and fixes in quick succession)
        flap_seen = "was flapping" in (inc["status_reason"] or "") and s is not None and any(
            0 <= started - (s.flapped_at + wall_offset) <= FLAP_MEMORY_S
            or sum(0 <= started - (c + wall_offset) <= FLAP_WINDOW_S for c in s.changes) >= FLAP_CHANGES
            for k, started in starts_at.items() if k[0] == str(inc["id"]))
        key_ok = [k for k, e in ends.items() if k[0] == str(inc["id"]) and e["exit"] == 0 and k not in flapping
                  and e["t"] > later and not flap_seen]
        # a reopened incident's earlier action fixed an earlier episode: only single episodes are judged
        if inc["status"] == "resolved" and inc["resolution"] == "self" and key_ok and not inc.get("reopen_count"):
            _once(mem, out, Violation("I5", f"incident {inc['id']} ({inc['component_name']})", "resolved 'self' "
                                      f"although attempt(s) {[k[1] for k in key_ok]} restarted it", t), "self")
        attempts = world.plan_attempts.get(inc.get("plan") or "process")
        reason = f"{inc['status_reason'] or ''} {inc['reason'] or ''}"
        if inc["status"] == "escalated" and attempts and "exhaust" in reason:
            rows = [j for j in by_incident.get(inc["id"], []) if j["step_index"] == 0]
            failed = [j for j in rows if j["status"] in ("failed", "failed_verification", "timed_out")]
            if len(failed) < attempts and any(j["status"] == "abandoned" or "interrupt" in (j["detail"] or "")
                                              for j in rows):
                _once(mem, out, Violation("I5", f"incident {inc['id']} ({inc['component_name']})",
                                          f"escalated '{reason.strip()}' after {len(failed)} failed of {attempts}"
                                          f" attempts (the others interrupted: {[(j['attempt'], j['status']) for j in rows]})",
                                          t), "exhausted")
    return out


def check_i6(obs: Observation, world: World, mem: Memory) -> list[Violation]:
    """I6: checks never stop and actions are never skipped but by a person or a named guard: each
    watched component's ``last_check_at`` keeps moving (DOWN ones at least every probe cap), no skip or
    block reason names anything else, and the blast-radius guard trips at its threshold."""
    out: list[Violation] = []
    now, t = obs.at, world.now_s()
    for name, row in obs.components.items():
        s = world.services.get(name)
        if s is None or s.paused or s.maintenance:  # a person's hold: I6 lets a person stop checks
            continue
        since = _since(mem.last_check_seen, name, row["last_check_at"], now)
        if world.calm_since is None or now < world.calm_since:
            continue
        gap = min(since, now - max(world.calm_since, s.changed_at))
        allowed = probe_cap_s(s.interval_s) + s.interval_s + s.timeout_s
        if gap > allowed + LOAD_SLACK_S:
            _once(mem, out, Violation("I6", name, f"not checked for {gap:.0f}s (state {row['state']!r}; allowed "
                                      f"{allowed:.0f}s)", t), mem.last_check_seen[name][1])
    # a step held by degradation is legitimate only under the operator's EMERGENCY override (a person's
    # decision), and only while it is in force (or just lifted: the hold ends at the loop's next look)
    emergency = world.emergency_recently(now, INCIDENT_GRACE_S + LOAD_SLACK_S)
    for j in obs.journal:
        reason = (j["skip_reason"] or "").lower() if j["status"] == "skipped" else ""
        # a skip is judged when it is first seen: one written under the override stays a record of it
        frozen = EMERGENCY_REASON in reason and (emergency or ("frozen", j["id"], reason) in mem.reported)
        if frozen:
            mem.reported.add(("frozen", j["id"], reason))
        if reason and (not any(g in reason for g in NAMED_GUARDS) or "degradation" in reason and not frozen):
            _once(mem, out, Violation("I6", f"incident {j['incident_id']}", f"step skipped by {reason!r}, "
                                      "not a person or a named guard", t), ("skip", j["id"]))
    for inc in obs.incidents:
        if inc["status"] not in ACTIVE:
            continue
        reason = f"{inc['status_reason'] or ''} {inc.get('waiting_for') or ''}".lower()
        guard = _guard_of(inc.get("waiting_for")) if inc["status"] == "blocked" else None
        if EMERGENCY_REASON in reason and emergency:
            continue  # blocked by the override, or just released from it (its status_reason lingers a moment)
        if guard == "degradation" or "degradation" in reason:
            _once(mem, out, Violation("I6", f"incident {inc['id']}", f"held by degradation: {reason.strip()!r} "
                                      f"(operator override: {world.degradation_forced})", t),
                  ("degradation", inc["id"]))
    # blast radius: at >= the threshold (shipped: 0.5 of >= 4, and >= 4 DOWN) a mass-outage incident is
    # open; the fleet is every registered component (held ones too: the larger denominator, never a
    # false alarm)
    fleet = list(obs.components)
    down = [n for n in fleet if _watched(world, n) and obs.components[n]["state"] == "down"
            and _held(mem, ("down", n), now) > INCIDENT_GRACE_S]
    tripped = len(fleet) >= MASS_OUTAGE_MIN_COMPONENTS and len(down) >= MASS_OUTAGE_MIN_DOWN \
        and len(down) >= MASS_OUTAGE_FRACTION * len(fleet)
    if tripped and world.calm_since and now > world.calm_since:
        if not any(i["kind"] == "mass_outage" and i["status"] in ACTIVE for i in obs.incidents):
            _once(mem, out, Violation("I6", "fleet", f"{len(down)} of {len(fleet)} DOWN for over "
                                      f"{INCIDENT_GRACE_S:.0f}s and no mass-outage incident", t), tuple(sorted(down)))
    return out


def check_i7(live_daemons: list[tuple[int, float]], world: World, mem: Memory) -> list[Violation]:
    """I7: one daemon acts per database. ``live_daemons``: (pid, started monotonic) of every daemon the
    test started on this database that is still running; a second one must refuse within
    SECOND_DAEMON_REFUSAL_S."""
    out: list[Violation] = []
    if len(live_daemons) > 1:
        newest = max(live_daemons, key=lambda d: d[1])
        age = time.monotonic() - newest[1]
        if age > SECOND_DAEMON_REFUSAL_S:
            _once(mem, out, Violation("I7", f"daemon pid {newest[0]}", f"running {age:.0f}s beside pid "
                                      f"{[p for p, _ in live_daemons if p != newest[0]]} on the same database",
                                      world.now_s()), newest[0])
    return out


class Checker:
    """I1-I7 over a stream of observations; collects violations and the figures a soak reports."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.mem = Memory()
        self.violations: list[Violation] = []

    def evaluate(self, obs: Observation) -> list[Violation]:
        found: list[Violation] = []
        self.mem.renewed = set()
        for check in (check_i1, check_i2, check_i3, check_i4_shown, check_i5, check_i6):
            found += check(obs, self.world, self.mem)
        self.mem.holding = {k: v for k, v in self.mem.holding.items() if k in self.mem.renewed}
        self.violations += found
        return found

    def add(self, found: list[Violation]) -> list[Violation]:
        self.violations += found
        return found

    def stall_now_s(self) -> float:
        last_id, changed_at = self.mem.results_seen
        calm = self.world.calm_since
        return 0.0 if calm is None else max(0.0, time.monotonic() - max(changed_at, calm))
