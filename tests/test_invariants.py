"""The invariant checkers of tests/invariants.py on scripted observations: each one fires on the
violation it is for and stays quiet on the healthy case (so a green soak means something)."""

from __future__ import annotations

import time

import pytest

from tests import invariants as inv


def world(*names: str, calm_ago_s: float = 100.0) -> inv.World:
    w = inv.World()
    now = time.monotonic()
    w.calm_since = now - calm_ago_s
    for name in names:
        w.services[name] = inv.Service(name, changed_at=now - 200, answering_since=now - 200)
    return w


def obs(*, at: float | None = None, components=None, incidents=(), journal=(), actions=(), results_max_id=1,
        notified=(), api=None) -> inv.Observation:
    return inv.Observation(at=time.monotonic() if at is None else at, components=components or {},
                           incidents=list(incidents), journal=list(journal), notified=set(notified),
                           results_max_id=results_max_id, instances=[], api_states=api, metric_states=None,
                           dropped_metric=None, status_states=None, actions=list(actions))


def row(cid: int, state: str, last_check_at: object = 1) -> dict:
    return {"id": cid, "state": state, "last_check_at": last_check_at, "paused_until": None,
            "maintenance_until": None}


def incident(iid: int, cid: int | None, status: str, **fields) -> dict:
    return {"id": iid, "component_id": cid, "component_name": f"c{cid}", "kind": "component", "status": status,
            "resolution": None, "reason": None, "status_reason": None, "blocked_by": None,
            "next_attempt_at": None, "plan": "process", **fields}


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


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, "open"),
    ({"status_reason": "retry after backoff", "next_attempt_at": 1}, None),
])
def test_i2_an_open_incident_says_why_and_until_when(fields: dict, expected: str | None) -> None:
    w = world("c1")
    found = twice(inv.check_i2, lambda t: obs(at=t, components={"c1": row(1, "down")},
                                               incidents=[incident(7, 1, "open", **fields)]), w)
    assert [v.detail.split(" ")[0] for v in found] == ([expected] if expected else [])


def test_i2_blocked_needs_a_guard_and_a_notification_and_removal_closes() -> None:
    w = world("c1")
    found = twice(inv.check_i2, lambda t: obs(at=t, components={"c1": row(1, "down")}, incidents=[
        incident(1, 1, "blocked", status_reason="flapping"),
        incident(2, 1, "blocked", blocked_by="flapping"),
        incident(3, 1, "blocked", blocked_by="flapping"),
        incident(4, None, "open")], notified={(3, "blocked")}), w)
    assert sorted(v.subject.split(" ")[1] for v in found) == ["1", "1", "2", "4"], found


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
    ("x database write failed, buffering: FOREIGN KEY constraint failed\nx stopped instance=i written=9 dropped=0", 1),
    ("x database write failed, buffering: locked\nx database reachable again: wrote 3\n"
     "x stopped instance=i written=9 dropped=0", 0),
    ("x stopping\n", 1),
])
def test_i4_a_stop_with_results_still_buffered_must_count_them(log: str, expected: int) -> None:
    assert len(inv.check_i4(log, 0.0, world())) == expected


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


def test_i5_owner_died_only_when_it_did() -> None:
    w = world()
    w.killed_pids.add(11)
    journal = [{"id": n, "incident_id": n, "step_index": 0, "attempt": 1, "strategy": "restart", "executed": True,
                "status": "failed", "detail": "interrupted: its owner died mid-step", "skip_reason": None,
                "owner": f"vm:{pid}:ab12"} for n, pid in ((1, 11), (2, 12))]
    found = inv.check_i5(obs(journal=journal), w, inv.Memory())
    assert [v.subject for v in found] == ["incident 2"], found


def test_i6_degradation_is_not_a_guard_and_half_down_opens_a_mass_outage() -> None:
    w = world("a", "b", "c", "d", "e", "f")
    journal = [{"id": 1, "incident_id": 1, "step_index": 0, "attempt": 1, "strategy": "restart", "executed": False,
                "status": "skipped", "detail": None, "skip_reason": "degradation level minimal"}]
    found = twice(inv.check_i6, lambda t: obs(at=t, journal=journal, components={
        n: row(i, "down" if n in "abc" else "up", last_check_at=t) for i, n in enumerate("abcdef")}), w)
    assert sorted(v.subject for v in found) == ["fleet", "incident 1"], found


def test_i7_a_second_daemon_must_not_run_beside_the_first() -> None:
    now = time.monotonic()
    assert inv.check_i7([(1, now - 100), (2, now - 1)], world(), inv.Memory()) == []
    assert [v.invariant for v in inv.check_i7([(1, now - 100), (2, now - 60)], world(), inv.Memory())] == ["I7"]
