"""The evaluator: the one owner of the published degradation levels, and their publication.

A thread evaluates every ``evaluate_every`` seconds, at once when the live view's counts move (a
component changed state), and every ``confirm_interval`` while a higher level waits for its
confirmation — so a critical component going DOWN is published well within a second. A live view
that can say when its counts move (``watch``, the daemon's) wakes the thread; it sleeps until the next
evaluation otherwise. Only a view without ``watch`` is looked at every ``WATCH_S``. Each
evaluation:

1. reads the overrides in force (that read is also the database probe: it failing is the
   ``database_unreachable`` signal) and, every ``INDEX_REFRESH_S``, which components each scope and
   rule covers (criticality, labels);
2. computes each scope's level from the live states and the fleet signals, through its hysteresis;
   an override in force is published instead;
3. on a change: a new version, the state file rewritten atomically, long-polls woken, the row and
   its history event written (with ``NOTIFY`` on PostgreSQL; retried while the database is away);
4. applies to the orchestrator itself only what :mod:`orchestrator.degradation.actions` allows: its
   own overload level (``self_protection``: its check lateness) stretches the checks of UP low and
   normal components (at most 2x), and the global operator override at EMERGENCY freezes automation
   (notify only). No level the rules compute is applied to the orchestrator: its checks and recovery
   steps never depend on the fleet's health (DESIGN.md invariant 6, never silent; restraint in a mass
   outage is the blast-radius guard's). Both are logged when they change and published in the global
   document (``self_protection``, ``override``) for ``status`` and the page.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import first_line
from orchestrator.core.states import ComponentState, DegradationLevel, level_rank
from orchestrator.db.engine import Database
from orchestrator.db.models import Component
from orchestrator.degradation import actions, store
from orchestrator.degradation.evaluate import Facts, Hysteresis, compute
from orchestrator.degradation.policy import DEFAULT_POLICY, GLOBAL_SCOPE, DegradationPolicy, parse_selector
from orchestrator.degradation.signals import FleetSignals

log = logging.getLogger("orchestrator.degradation")
L = DegradationLevel

#: Seconds between re-reads of which components each scope covers (labels and criticality change rarely).
INDEX_REFRESH_S = 10.0
#: How often the thread looks at the live counts for a change, for a live view that cannot tell it
#: (no ``watch``; cheap: a small dict copy). The daemon's live view wakes the thread instead.
WATCH_S = 0.05
#: Evaluations a stream of state changes may cause at most: one per this many seconds (a start-up of
#: 10,000 UNKNOWN -> UP transitions must not cost an evaluation every look).
MIN_GAP_S = 0.1
#: The longest a long-poll may wait.
MAX_WAIT_S = 60.0
#: The state file's name in the state directory.
FILE_NAME = "degradation.json"


class Live(Protocol):
    def states(self) -> dict[int, ComponentState]: ...
    def counts(self) -> Any: ...


@dataclass
class _Scope:
    name: str
    hysteresis: Hysteresis
    doc: dict[str, Any]
    override_id: int | None = None
    dirty: bool = False  # its row is still to be written
    #: rule index → since when its condition holds (for rules with ``for``)
    holding: dict[int, datetime] = field(default_factory=dict)


class DegradationService:
    """Evaluates, publishes and applies the levels. ``start()``/``stop()`` run its thread."""

    def __init__(self, db: Database, live: Live, signals: FleetSignals, *,
                 policy: DegradationPolicy | None = None, clock: Clock = SYSTEM_CLOCK,
                 file_path: Path | None = None, apply=None) -> None:
        """``apply(level)`` is called when the level the orchestrator applies to itself changes."""
        self.db, self.live, self.signals, self.clock = db, live, signals, clock
        self.policy = policy or DEFAULT_POLICY
        self.file_path = file_path
        self._apply = apply
        self._cond = threading.Condition()
        self._scopes: dict[str, _Scope] = {}
        #: (document, from level, actor) of changes whose history row is not written yet
        self._events: list[tuple[dict[str, Any], str | None, str | None]] = []
        self._published = False  # a document changed in this evaluation: file and long-polls to update
        self._overrides: dict[str, store.Override] = {}
        self._index: tuple[dict[str, frozenset[int]], dict[str, frozenset[int]]] = ({}, {})
        self._index_at: float | None = None
        self.database_ok = True
        self._overload = Hysteresis(self.policy.confirm, self.policy.self_protection.hold_s)
        #: the overload level applied to the orchestrator's own checks (``apply`` is told of changes)
        self.check_level = L.NORMAL
        #: the global operator override at EMERGENCY that freezes automation now (None: not frozen)
        self.frozen_by: store.Override | None = None
        #: the global document's ``self_protection`` (None while not overloaded)
        self._self_protection: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.evaluations = 0
        watch = getattr(live, "watch", None)
        #: the live view wakes the thread when its counts move (else it is looked at every WATCH_S)
        self._watched = watch is not None
        if watch is not None:
            watch(self._wake.set)
        self._restore()

    # -- reading (any thread) -------------------------------------------------------------------
    def document(self, scope: str = GLOBAL_SCOPE) -> dict[str, Any] | None:
        """The scope's published document (a copy), None for an unknown scope."""
        with self._cond:
            s = self._scopes.get(scope)
            return None if s is None else dict(s.doc)

    def documents(self) -> dict[str, dict[str, Any]]:
        with self._cond:
            return {name: dict(s.doc) for name, s in self._scopes.items()}

    def wait(self, scope: str, after: int, timeout_s: float) -> dict[str, Any] | None:
        """The scope's document as soon as its version is not ``after`` (at once if it already is), or
        after ``timeout_s`` whatever it is."""
        # a wait on the kernel: real seconds, whatever clock decides (see orchestrator.core.clock)
        deadline = time.monotonic() + min(max(timeout_s, 0.0), MAX_WAIT_S)
        with self._cond:
            while True:
                s = self._scopes.get(scope)
                if s is None or s.doc["version"] != after or self._stop.is_set():
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 1.0))
            return None if s is None else dict(s.doc)

    def automation_level(self) -> L:
        """The level whose actions the recovery guards apply now: EMERGENCY while an operator's global
        EMERGENCY override is in force, NORMAL otherwise (never a level the rules computed)."""
        return L.EMERGENCY if self.frozen_by is not None else L.NORMAL

    def frozen_until(self) -> datetime | None:
        """While automation is frozen, when the operator's override expires (None: not frozen)."""
        frozen = self.frozen_by
        return None if frozen is None else frozen.expires_at

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self.evaluate()
        self._thread = threading.Thread(target=self._run, name="degradation", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def poke(self) -> None:
        """Evaluate now (an override was set, a registry change)."""
        self._wake.set()

    def reload(self, policy: DegradationPolicy) -> None:
        """A new policy (SIGHUP); scopes no longer configured stop being published."""
        with self._cond:
            self.policy = policy
            for s in self._scopes.values():
                s.hysteresis.reconfigure(policy.confirm, policy.hold_s)
                s.holding.clear()
            self._overload.reconfigure(policy.confirm, policy.self_protection.hold_s)
            for name in list(self._scopes):
                if name not in policy.scope_names():
                    del self._scopes[name]
        self._index_at = None
        self.poke()

    def _run(self) -> None:
        last_counts: Any = None
        last_at, wanted = float("-inf"), False
        next_at = self.clock.monotonic() + self.policy.evaluate_every_s
        while not self._stop.is_set():
            # a wait on the kernel (real seconds): until the next evaluation, or the end of the minimum gap
            # when one is wanted, or (a live view without watch) the next look at its counts
            now = self.clock.monotonic()
            wait = max(0.0, (last_at + MIN_GAP_S if wanted else next_at) - now)
            self._wake.wait(min(wait, WATCH_S) if not self._watched else wait)
            wanted |= self._wake.is_set()
            self._wake.clear()
            counts = None if self._watched else self.live.counts()
            wanted |= counts != last_counts
            now = self.clock.monotonic()
            if (wanted and now - last_at >= MIN_GAP_S) or now >= next_at:
                last_counts, last_at, wanted = counts, now, False
                try:
                    pending = self.evaluate()
                except Exception:  # one bad evaluation must not end publication
                    log.exception("degradation evaluation failed")
                    pending = False
                wait = self.policy.confirm_interval_s if pending else self.policy.evaluate_every_s
                next_at = self.clock.monotonic() + wait

    # -- one evaluation (the service thread; tests call it directly) -----------------------------
    def evaluate(self) -> bool:
        """Evaluate every scope once; True while a higher level waits for confirmation."""
        now, mono = self.clock.now(), self.clock.monotonic()
        self.evaluations += 1
        self._read_database(now, mono)
        facts = self._facts()
        policy = self.policy
        pending = self._protect(now)  # first: the global document carries what it applies
        for name in policy.scope_names():
            scope = self._scope(name, now)
            ids = None if name == GLOBAL_SCOPE else self._index[1].get(name, frozenset())
            computed, reasons = compute(policy.rules_of(name), facts, ids, holding=scope.holding, now=now)
            scope.hysteresis.step(computed, now)
            pending |= scope.hysteresis.pending
            self._publish(scope, computed, reasons, now)
        if self._published:  # once per evaluation, however many scopes changed
            self._published = False
            self._write_file()  # before the long-polls wake: whoever saw the change may read the file
            with self._cond:
                self._cond.notify_all()
        self._persist(now)
        return pending

    def _read_database(self, now: datetime, mono: float) -> None:
        refresh = self._index_at is None or mono - self._index_at >= INDEX_REFRESH_S
        try:
            with self.db.read() as session:
                self._overrides = store.active_overrides(session, now)
                if refresh:
                    rows = session.execute(select(Component.id, Component.criticality, Component.labels)).all()
                    self._index = self._build_index(rows)
                    self._index_at = mono
            if not self.database_ok:
                log.info("database reachable again")
            self.database_ok = True
        except Exception as exc:
            if self.database_ok:
                log.warning("database unreachable: %s", first_line(exc))
            self.database_ok = False
            self._overrides = {k: o for k, o in self._overrides.items() if o.expires_at > now}

    def _build_index(self, rows) -> tuple[dict[str, frozenset[int]], dict[str, frozenset[int]]]:
        by_criticality: dict[str, set[int]] = {}
        selectors = {s for s in self.policy.scopes} | {
            r.selector for name in self.policy.scope_names() for r in self.policy.rules_of(name) if r.selector}
        parsed = {sel: parse_selector(sel) for sel in selectors}
        groups: dict[str, set[int]] = {sel: set() for sel in selectors}
        for cid, criticality, labels in rows:
            by_criticality.setdefault(criticality, set()).add(cid)
            labels = labels or {}
            for sel, pairs in parsed.items():
                if all(str(labels.get(k)) == v for k, v in pairs):
                    groups[sel].add(cid)
        return ({k: frozenset(v) for k, v in by_criticality.items()},
                {k: frozenset(v) for k, v in groups.items()})

    def _facts(self) -> Facts:
        window = self.signals.window(self.policy.self_protection.window_s)
        return Facts(states=self.live.states(), critical=self._index[0], groups=self._index[1],
                     checks=window.checks, error_rate=window.error_rate, latency_p95_ms=window.latency_p95_ms,
                     lateness_p95_ms=window.lateness_p95_ms, database_ok=self.database_ok)

    def _scope(self, name: str, now: datetime) -> _Scope:
        scope = self._scopes.get(name)
        if scope is None:
            policy = self.policy
            doc = store.document(name, L.NORMAL.value, 1, now, [], policy.features_at(L.NORMAL, name),
                                 policy.ttl_s, None)
            scope = _Scope(name, Hysteresis(policy.confirm, policy.hold_s, since=now), doc, dirty=True)
            with self._cond:
                self._scopes[name] = scope
            self._published = True
        return scope

    def _publish(self, scope: _Scope, computed: L, reasons: list[str], now: datetime) -> None:
        override = self._overrides.get(scope.name)
        level = override.level if override else scope.hysteresis.level
        old = scope.doc
        if override:
            reasons = [f"override by {override.actor} until {override.expires_at:%Y-%m-%d %H:%M:%S}Z: "
                       f"{override.reason}", *reasons]
        changed = level.value != old["level"] or (override.id if override else None) != scope.override_id
        features = self.policy.features_at(level, scope.name)
        # what moves without a new version: the rules' level now, until when the level holds, and
        # (global document) what the orchestrator applies to itself
        held_until = (scope.hysteresis.held_until
                      if override is None and level_rank(level) > level_rank(computed) else None)
        live = {"computed": computed.value, "held_until": held_until,
                "self_protection": self._self_protection if scope.name == GLOBAL_SCOPE else None}
        if not changed and features == old["features"]:
            if any(old.get(key) != value for key, value in live.items()):
                with self._cond:
                    scope.doc, scope.dirty = {**old, **live}, True
            return
        doc = store.document(scope.name, level.value, old["version"] + 1, now if changed else old["since"],
                             reasons if changed else old["reasons"], features, self.policy.ttl_s, override,
                             computed.value, held_until=held_until, self_protection=live["self_protection"])
        actor = override.actor if override else (old["override"] or {}).get("actor")
        with self._cond:
            scope.doc, scope.override_id, scope.dirty = doc, (override.id if override else None), True
            if level.value != old["level"]:
                self._events.append((doc, old["level"], actor))
        self._published = True
        if level.value != old["level"]:
            log.warning("degradation level %s -> %s scope=%s reasons=%s", old["level"], level.value, scope.name,
                        "; ".join(doc["reasons"]) or "-")

    def _persist(self, now: datetime) -> None:
        """Write changed rows and the history events not yet written (kept while the database is away)."""
        if not self.database_ok:
            return
        with self._cond:
            dirty = [s for s in self._scopes.values() if s.dirty]
            events = list(self._events)
        if not dirty and not events:
            return
        try:
            with self.db.write() as session:
                for doc, from_level, actor in events:
                    store.add_event(session, doc, from_level, actor)
                for s in dirty:
                    store.write_level(session, s.doc, now=now)
        except Exception as exc:
            log.warning("could not record the degradation level (retried): %s", first_line(exc))
            return
        with self._cond:
            del self._events[:len(events)]
            for s in dirty:
                s.dirty = False

    def _protect(self, now: datetime) -> bool:
        """What the orchestrator applies to itself (see :mod:`orchestrator.degradation.actions`): its own
        overload level stretches its checks; the operator's global EMERGENCY override freezes
        automation. True while a higher overload level waits for confirmation.

        Protection that must never break invariant 6 (never silent): no check is skipped, no interval
        more than doubled, and each change is logged and published."""
        sp = self.policy.self_protection
        lateness = self.signals.window(sp.window_s).lateness_p95_ms
        overload = L.NORMAL
        if sp.enabled and lateness is not None:
            if lateness > sp.minimal_above_s * 1000:
                overload = L.MINIMAL
            elif lateness > sp.degraded_above_s * 1000:
                overload = L.DEGRADED
        self._overload.step(overload, now)
        level = self._overload.level
        if level is not self.check_level:
            if level_rank(level) > 0:
                reason = f"check lateness p95 {lateness or 0:.0f} ms"
                log.warning("overloaded (self_protection, %s): %s", reason, actions.describe(level))
                self._self_protection = {"level": level.value, "since": now.isoformat(), "reason": reason,
                                         "checks": actions.describe(level)}
            else:
                log.info("no longer overloaded: check lateness p95 %.0f ms; %s", lateness or 0,
                         actions.describe(level))
                self._self_protection = None
            self.check_level = level
            if self._apply is not None:
                self._apply(level)
        self._freeze()
        return self._overload.pending

    def _freeze(self) -> None:
        """Follow the operator's global EMERGENCY override: automation frozen while it is in force."""
        override = self._overrides.get(GLOBAL_SCOPE)
        frozen = override if override is not None and override.level is L.EMERGENCY else None
        if (frozen.id if frozen else None) == (self.frozen_by.id if self.frozen_by else None):
            return
        if frozen is not None:
            log.warning("automation FROZEN by the operator EMERGENCY override (%s until %sZ: %s): only notify "
                        "starts, checks go on; `orchestrator degradation clear` ends it", frozen.actor,
                        f"{frozen.expires_at:%Y-%m-%d %H:%M:%S}", frozen.reason)
        else:
            log.warning("automation no longer frozen: the operator EMERGENCY override ended")
        self.frozen_by = frozen

    # -- persistence of the published state ----------------------------------------------------
    def _restore(self) -> None:
        """Start from the levels last published (a restart must not drop EMERGENCY to NORMAL at once)."""
        try:
            with self.db.read() as session:
                docs = store.stored(session, self.clock.now())
        except Exception as exc:
            log.warning("could not read the last published levels: %s", first_line(exc))
            return
        policy = self.policy
        for name, doc in docs.items():
            if name not in policy.scope_names():
                continue
            level = L(doc["level"] if doc["override"] is None else doc["computed"])
            # the override (if any) is read again by the first evaluation: publish without it until then
            self._scopes[name] = _Scope(name, Hysteresis(policy.confirm, policy.hold_s, level=level,
                                                         since=doc["since"]), {**doc, "override": None})

    def _write_file(self) -> None:
        """The state file, replaced atomically: readers see the old or the new document, never half."""
        if self.file_path is None:
            return
        with self._cond:
            docs = {name: dict(s.doc) for name, s in self._scopes.items()}
        top = docs.get(GLOBAL_SCOPE)
        if top is None:
            return
        body = json.dumps({**top, "scopes": docs}, default=_iso, indent=2)
        try:
            self.file_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".degradation.", dir=self.file_path.parent)
            with os.fdopen(fd, "w") as fh:
                fh.write(body + "\n")
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.file_path)
        except OSError as exc:
            log.warning("could not write %s: %s", self.file_path, exc)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)
