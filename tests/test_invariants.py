"""The invariant checkers of tests/invariants.py on scripted observations: each one fires on the
violation it is for and stays quiet on the healthy case (so a green soak means something)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.core.durations import parse_duration
from orchestrator.degradation.actions import FROZEN
from orchestrator.history.drops import NAMES
from orchestrator.recovery.guards import GUARDS
from tests import invariants as inv

STOP = "x stopped instance=i written=9 dropped={} " + " ".join(f"{n}={{{n}}}" for n in NAMES)


def stop_line(**counts: int) -> str:
    full = dict.fromkeys(NAMES, 0) | counts
    return STOP.format(sum(n for k, n in full.items() if k.startswith("results_")), **full)


def world(*names: str, calm_ago_s: float = 100.0) -> inv.World:
    w = inv.World()
    now = time.monotonic()
    w.calm_since = now - calm_ago_s
    for name in names:
        w.services[name] = inv.Service(name, changed_at=now - 200, answering_since=now - 200)
    return w


def obs(*, at: float | None = None, components=None, incidents=(), journal=(), actions=(), results_max_id=1,
        notified=(), api=None, instances=(), metric_drops=None, status_instances=None) -> inv.Observation:
    return inv.Observation(at=time.monotonic() if at is None else at, components=components or {},
                           incidents=list(incidents), journal=list(journal), notified=set(notified),
                           results_max_id=results_max_id, instances=list(instances), api_states=api,
                           metric_states=None, dropped_metric=None, status_states=None, actions=list(actions),
                           metric_drops=metric_drops, status_instances=status_instances)


def row(cid: int, state: str, last_check_at: object = 1) -> dict:
    return {"id": cid, "state": state, "last_check_at": last_check_at, "paused_until": None,
            "maintenance_until": None}


def incident(iid: int, cid: int | None, status: str, **fields) -> dict:
    return {"id": iid, "component_id": cid, "component_name": f"c{cid}", "kind": "component", "status": status,
            "resolution": None, "reason": None, "status_reason": None, "blocked_by": None,
            "next_attempt_at": None, "plan": "process", "run_owner": None, "waiting_for": None,
            "waiting_until": None, **fields}


def twice(check, make, w: inv.World, gap_s: float = 30.0) -> list[inv.Violation]:
    """Run ``check`` on two observations ``gap_s`` apart (conditions must hold, not just appear)."""
    mem = inv.Memory()
    now = time.monotonic()
    mem.renewed = set()
    found = check(make(now - gap_s), w, mem)
    mem.renewed = set()
    return found + check(make(now), w, mem)


@pytest.mark.parametrize(("state", "expected"), [("up", 1), ("down", 0)])
def test_i1_a_crashed_component_must_be_down_past_its_bound(state: str, expected: int) -> None:
    w = world("a")
    w.broke("a", "crash", now=time.monotonic() - 60)
    found = twice(inv.check_i1, lambda t: obs(at=t, components={"a": row(1, state)}), w)
    assert len(found) == expected, found


def test_i1_a_surface_that_disagrees_for_long_is_a_violation() -> None:
    w = world("a")
    found = twice(inv.check_i1, lambda t: obs(at=t, components={"a": row(1, "up")}, api={"a": "down"}), w)
    assert [v.detail.split(",")[0] for v in found] == ["API says 'down'"]


def _ago(seconds: float) -> datetime:  # evaluated at collection: keep the "future" an hour ahead
    return datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=seconds)


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, "open"),  # unclaimed and saying nothing: a brand-new incident is claimed within ~0.1 s
    ({"status_reason": "retry after backoff", "next_attempt_at": 1}, "open"),  # the old pair is not enough
    ({"run_owner": "vm:1:ab12"}, None),  # being worked on
    ({"waiting_for": "a retry after the run failed (exit 1)", "waiting_until": _ago(-3600)}, None),
    ({"waiting_for": "a retry after the run failed (exit 1)", "waiting_until": None}, None),  # until its cause clears
    ({"waiting_for": "a retry after the run failed (exit 1)", "waiting_until": _ago(60)}, "open,"),  # nobody looked
    ({"waiting_for": "a retry", "waiting_until": _ago(60).isoformat(" ")}, "open,"),  # SQLite's text
    ({"waiting_for": "a retry", "waiting_until": _ago(60), "run_owner": "vm:1:ab12"}, None),  # looking now
])
def test_i2_an_open_incident_is_worked_on_or_says_what_it_waits_for_and_until_when(fields: dict,
                                                                                     expected: str | None) -> None:
    w = world("c1")
    found = twice(inv.check_i2, lambda t: obs(at=t, components={"c1": row(1, "down")},
                                               incidents=[incident(7, 1, "open", **fields)]), w)
    assert [v.detail.split(" ")[0] for v in found] == ([expected] if expected else []), found


def test_i2_blocked_names_its_guard_is_notified_and_removal_closes() -> None:
    w = world("c1")
    flapping, dependency = "guard flapping: flapping; escalates at …", "guard dependency: dependency down: db"
    long_ago = _ago(60)
    found = twice(inv.check_i2, lambda t: obs(at=t, components={"c1": row(1, "down")}, incidents=[
        incident(1, 1, "blocked", status_reason="flapping"),  # no guard named, nobody notified
        incident(2, 1, "blocked", waiting_for=flapping),  # nobody notified
        incident(3, 1, "blocked", waiting_for=dependency),  # the dependency guard without blocked_by
        incident(4, None, "open"),  # outlives its component
        incident(5, 1, "blocked", waiting_for=flapping, blocked_by="db"),  # blocked_by is the dependency's
        incident(6, 1, "blocked", waiting_for=dependency, blocked_by="db"),  # all right
        incident(7, 1, "blocked", waiting_for="guard silence: quiet hours"),  # not a guard of the orchestrator
        incident(8, 1, "blocked", waiting_for="guard flapping: held", waiting_until=long_ago),  # overdue
    ], notified={(n, "blocked") for n in (3, 5, 6, 7, 8)}), w, gap_s=inv.NOTIFY_WINDOW_S + inv.LOAD_SLACK_S + 5)
    assert sorted(v.subject.split(" ")[1] for v in found) == ["1", "1", "2", "3", "4", "5", "7", "8"], found


def test_the_checker_knows_every_guard_and_drop_counter_of_the_code() -> None:
    """The checker's own lists: a guard or a drop cause added without a word in tests/invariants.py fails here."""
    assert (*(name for name, _check, _manual in GUARDS), "no_plan") == inv.GUARD_NAMES
    assert inv.DROP_NAMES == NAMES
    assert inv.EMERGENCY_REASON in FROZEN.lower()
    shipped = json.loads((Path(__file__).parent.parent / "recovery_strategies.json").read_text())
    limits, notifications = shipped["limits"], shipped["notifications"]
    assert (limits["max_unhealthy_fraction"], limits["min_components"], limits["min_down"]) == (
        inv.MASS_OUTAGE_FRACTION, inv.MASS_OUTAGE_MIN_COMPONENTS, inv.MASS_OUTAGE_MIN_DOWN)
    assert parse_duration(notifications["group_window"]) == inv.NOTIFY_WINDOW_S and "blocked" in notifications["events"]


def test_i2_down_without_an_incident() -> None:
    found = twice(inv.check_i2, lambda t: obs(at=t, components={"c1": row(1, "down")}), world("c1"))
    assert [v.invariant for v in found] == ["I2"]


def test_i3_results_that_stop_arriving_are_a_stall() -> None:
    w, mem = world("a"), inv.Memory()
    now = time.monotonic()
    assert inv.check_i3(obs(at=now - 30, components={"a": row(1, "up")}, results_max_id=5), w, mem) == []
    found = inv.check_i3(obs(at=now, components={"a": row(1, "up")}, results_max_id=5), w, mem)
    assert [v.invariant for v in found] == ["I3"]


@pytest.mark.parametrize(("log", "expected"), [
    ("x database write failed, buffering: FOREIGN KEY constraint failed\n" + stop_line(), 1),
    ("x database write failed, buffering: locked\nx database reachable again: wrote 3\n" + stop_line(), 0),
    ("x database write failed, buffering: gone\n" + stop_line(results_at_stop=4, transitions_at_stop=1), 0),
    ("x database write failed, buffering: gone\n" + stop_line(rollups_at_stop=2), 0),
    ("x stopping\n", 1),
    ("x stopped instance=i written=9 dropped=0", 1),  # the counters by cause are missing
    (stop_line(results_removed=2).replace("dropped=2", "dropped=0"), 1),  # the total is not their sum
])
def test_i4_a_stop_with_results_still_buffered_must_count_them(log: str, expected: int) -> None:
    assert len(inv.check_i4(log, 0.0, world())) == expected, inv.check_i4(log, 0.0, world())


def test_i4_the_surfaces_show_every_counter_and_the_stop_line_never_counts_less() -> None:
    w, mem = world(), inv.Memory()
    full = {n: 0.0 for n in NAMES}
    assert inv.check_i4_shown(obs(metric_drops=full, instances=[{"id": "i", "drops": {"results_refused": 3}}],
                                  status_instances=[{"id": "i", "drops": {"results_removed": 1},
                                                     "writes_failing_since": None}]), w, mem) == []
    assert mem.drops_shown == {"i": {"results_refused": 3, "results_removed": 1}}
    assert inv.check_i4(stop_line(results_refused=3, results_removed=1), 0.0, w, mem) == []
    behind = inv.check_i4(stop_line(results_refused=2, results_removed=1), 0.0, w, mem)
    assert [v.detail.split(" (")[0] for v in behind] == ["stop line counts less than the surfaces showed"]
    partial = {k: v for k, v in full.items() if not k.startswith("rollups_")}
    found = twice(inv.check_i4_shown, lambda t: obs(at=t, metric_drops=partial, status_instances=[
        {"id": "j", "drops": {}}]), w)
    assert sorted(v.subject for v in found) == ["/metrics", "status"], found


def test_i5_double_needless_and_misrecorded_actions() -> None:
    start = {"event": "start", "name": "c1", "healthy_before": False, "fault": "crash", "t": 1.0}
    actions = [{**start, "incident": "1", "attempt": "1"}, {**start, "incident": "1", "attempt": "1"},
               {**start, "incident": "2", "attempt": "1", "healthy_before": True},
               {**start, "incident": "3", "attempt": "1"}, {"event": "end", "incident": "3", "attempt": "1", "exit": 0, "t": 2.0}]
    journal = [{"id": n, "incident_id": n, "step_index": 0, "attempt": 1, "strategy": "restart", "executed": True,
                "status": status, "detail": "", "skip_reason": None}
               for n, status in ((1, "succeeded"), (2, "succeeded"), (3, "timed_out"))]
    found = inv.check_i5(obs(actions=actions, journal=journal, incidents=[incident(3, 1, "resolved")]), world(),
                         inv.Memory())
    assert sorted(v.detail.split(" ")[-1] for v in found) == ["0", "answering", "twice"], found


@pytest.mark.parametrize(("fault", "fixed_after_s", "removed", "expected"), [
    ("crash", None, False, ["incident 4 (c1)"]), ("flap", None, False, []), ("crash", 5.0, False, []),
    ("crash", 5.0, True, [])])
def test_i5_resolved_self_after_our_restart_unless_it_was_flapping(fault: str, fixed_after_s: float | None,
                                                                   removed: bool, expected: list[str]) -> None:
    """A restart that worked is the action's credit, except on a flapping service (its good phases pass
    the checks by themselves, so 'self' is the documented answer there) or one broken again or fixed by
    hand after the restart (what healed it last was not the restart), also once the component is removed."""
    w = world("c1")
    end = time.time() - 60
    if fixed_after_s is not None:
        w.services["c1"].hand_fixed_at = time.monotonic() - 60 + fixed_after_s
    if removed:
        w.removed["c1"] = w.services.pop("c1")
    actions = [{"event": "start", "name": "c1", "healthy_before": False, "fault": fault, "t": end - 1, "incident": "4",
                "attempt": "1"}, {"event": "end", "incident": "4", "attempt": "1", "exit": 0, "t": end}]
    journal = [{"id": 1, "incident_id": 4, "step_index": 0, "attempt": 1, "strategy": "restart", "executed": True,
                "status": "succeeded", "detail": "", "skip_reason": None}]
    found = inv.check_i5(obs(actions=actions, journal=journal, incidents=[
        incident(4, 1, "resolved", resolution="self", reopen_count=0)]), w, inv.Memory())
    assert [v.subject for v in found] == expected, found


def _resolved_self_as_flapping(w: inv.World, fault: str) -> list[str]:
    """check_i5 on incident 4 of c1: a restart a minute ago that worked, then resolved ``self`` because the
    tracker said FLAPPING when it was picked up; the subjects of the violations found."""
    start = time.time() - 60
    actions = [{"event": "start", "name": "c1", "healthy_before": False, "fault": fault, "t": start, "incident": "4",
                "attempt": "1"}, {"event": "end", "incident": "4", "attempt": "1", "exit": 0, "t": start + 1}]
    journal = [{"id": 1, "incident_id": 4, "step_index": 0, "attempt": 1, "strategy": "restart", "executed": True,
                "status": "succeeded", "detail": "", "skip_reason": None}]
    found = inv.check_i5(obs(actions=actions, journal=journal, incidents=[incident(
        4, 1, "resolved", resolution="self", reopen_count=0,
        status_reason="healthy after step 0 (restart) attempt 1, but it was flapping: a good phase")]), w, inv.Memory())
    return [v.subject for v in found]


@pytest.mark.parametrize(("changes", "expected"), [(5, []), (2, ["incident 4 (c1)"])])
def test_i5_resolved_self_as_flapping_after_the_test_broke_and_fixed_it_in_quick_succession(
        changes: int, expected: list[str]) -> None:
    """No flap fault, but breaks and fixes by the test every few seconds: the tracker's FLAPPING is the
    truth, and the documented answer is ``self`` (the 30-minute PostgreSQL soak flagged it); two changes
    are no flap."""
    w = world("c1")
    w.services["c1"].changes = [time.monotonic() - 60 - 5 * i for i in range(1, changes + 1)]
    assert _resolved_self_as_flapping(w, "500") == expected


@pytest.mark.parametrize(("flapped_before_s", "expected"), [(5.0, []), (120.0, ["incident 4 (c1)"])])
def test_i5_resolved_self_as_flapping_when_picked_up_soon_after_a_real_flap(flapped_before_s: float,
                                                                           expected: list[str]) -> None:
    """A crash right after the test had the service flapping: the tracker still says FLAPPING when the
    restart is picked up, and the documented answer is ``self``; long after a flap it is the action's."""
    w = world("c1")
    w.services["c1"].flapped_at = time.monotonic() - 60 - flapped_before_s
    assert _resolved_self_as_flapping(w, "crash") == expected


def test_i5_owner_died_only_when_it_did() -> None:
    w = world()
    w.killed_pids.add(11)
    journal = [{"id": n, "incident_id": n, "step_index": 0, "attempt": 1, "strategy": "restart", "executed": True,
                "status": "failed", "detail": "interrupted: its owner died mid-step", "skip_reason": None,
                "owner": f"vm:{pid}:ab12"} for n, pid in ((1, 11), (2, 12))]
    found = inv.check_i5(obs(journal=journal), w, inv.Memory())
    assert [v.subject for v in found] == ["incident 2"], found


@pytest.mark.parametrize(("down", "expected"), [("abcd", ["fleet", "incident 1"]), ("abc", ["incident 1"])])
def test_i6_degradation_is_not_a_guard_and_a_mass_outage_opens_its_incident(down: str, expected: list[str]) -> None:
    """4 of 6 DOWN is a mass outage (its incident must be open); 3 of 6 is not (each is restarted)."""
    w = world("a", "b", "c", "d", "e", "f")
    journal = [{"id": 1, "incident_id": 1, "step_index": 0, "attempt": 1, "strategy": "restart", "executed": False,
                "status": "skipped", "detail": None, "skip_reason": "degradation level minimal"}]
    found = twice(inv.check_i6, lambda t: obs(at=t, journal=journal, components={
        n: row(i, "down" if n in down else "up", last_check_at=t) for i, n in enumerate("abcdef")}), w)
    assert sorted(v.subject for v in found) == expected, found


@pytest.mark.parametrize(("level", "expected"), [("emergency", []), ("minimal", ["incident 1", "incident 2"]),
                                                 (None, ["incident 1", "incident 2"])])
def test_i6_only_the_operators_emergency_override_holds_steps(level: str | None, expected: list[str]) -> None:
    """The degradation guard's hold is a person's decision under EMERGENCY, a violation under any other level."""
    w = world("a")
    w.force_degradation(level)
    journal = [{"id": 1, "incident_id": 1, "step_index": 0, "attempt": 1, "strategy": "restart", "executed": False,
                "status": "skipped", "detail": None, "skip_reason": FROZEN}]
    incidents = [incident(2, 1, "blocked", status_reason=FROZEN, waiting_for=f"guard degradation: {FROZEN}")]
    found = inv.check_i6(obs(journal=journal, incidents=incidents, components={"a": row(1, "down")}), w, inv.Memory())
    assert sorted(v.subject for v in found) == expected, found


def test_i6_an_emergency_hold_outlasting_the_override_is_a_violation() -> None:
    w = world("a")
    w.force_degradation("emergency")
    w.force_degradation(None)
    incidents = [incident(2, 1, "blocked", waiting_for=f"guard degradation: {FROZEN}"),
                 incident(3, 1, "open", status_reason=FROZEN, waiting_for="settling for 2s before acting")]
    now = time.monotonic()
    later = now + inv.INCIDENT_GRACE_S + inv.LOAD_SLACK_S + 1
    assert inv.check_i6(obs(at=now, incidents=incidents), w, inv.Memory()) == []  # released a moment ago
    assert [v.subject for v in inv.check_i6(obs(at=later, incidents=incidents), w, inv.Memory())] == [
        "incident 2", "incident 3"]


def test_i7_a_second_daemon_must_not_run_beside_the_first() -> None:
    now = time.monotonic()
    assert inv.check_i7([(1, now - 100), (2, now - 1)], world(), inv.Memory()) == []
    assert [v.invariant for v in inv.check_i7([(1, now - 100), (2, now - 60)], world(), inv.Memory())] == ["I7"]


def test_i6_a_step_skipped_under_the_override_stays_legitimate_after_it() -> None:
    """The journal is a record: a skip first seen while the override held is judged then, not later."""
    w, mem = world("a"), inv.Memory()
    w.force_degradation("emergency")
    journal = [{"id": 1, "incident_id": 1, "step_index": 0, "attempt": 1, "strategy": "restart", "executed": False,
                "status": "skipped", "detail": None, "skip_reason": FROZEN}]
    now = time.monotonic()
    later = now + inv.DEGRADATION_FOR_S + inv.INCIDENT_GRACE_S + inv.LOAD_SLACK_S + 1
    assert inv.check_i6(obs(at=now, journal=journal), w, mem) == []
    assert inv.check_i6(obs(at=later, journal=journal), w, mem) == []
    assert [v.subject for v in inv.check_i6(obs(at=later, journal=journal), w, inv.Memory())] == ["incident 1"]


@pytest.mark.parametrize(("kill_after_s", "expected"), [(0.5, []), (None, ["incident 5"]), (30.0, ["incident 5"])])
def test_i5_an_exit_lost_with_its_recorder_in_a_group_kill_is_no_misrecord(kill_after_s: float | None,
                                                                           expected: list[str]) -> None:
    """'No exit status' for a command that logged exit 0 just before the test killed the whole group is the
    truth the orchestrator can know; long before the kill, or without one, it is a misrecord."""
    w, end = world(), time.time() - 60
    if kill_after_s is not None:
        w.group_kills.append(end + kill_after_s)
    actions = [{"event": "start", "name": "c1", "healthy_before": False, "fault": "crash", "t": end - 3,
                "incident": "5", "attempt": "1"}, {"event": "end", "incident": "5", "attempt": "1", "exit": 0, "t": end}]
    journal = [{"id": 1, "incident_id": 5, "step_index": 0, "attempt": 1, "strategy": "restart", "executed": True,
                "status": "failed", "skip_reason": None,
                "detail": "interrupted: its owner died mid-step and its command left no exit status"}]
    found = inv.check_i5(obs(actions=actions, journal=journal), w, inv.Memory())
    assert [v.subject for v in found] == expected, found
