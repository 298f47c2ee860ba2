"""Plan files: a valid one loads into typed objects; each kind of mistake names its exact JSON path."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from orchestrator.core.errors import NotFoundError, PlanError
from orchestrator.plans import load_plans, parse_plans

REPO = Path(__file__).resolve().parent.parent

VALID = {
    "version": 1,
    "plans": {
        "web": {"steps": [
            {"strategy": "restart", "params": {"command": ["systemctl", "restart", "{vars.unit}"]}},
            {"strategy": "failover", "params": {"command": ["/usr/local/bin/promote", "{component.name}"]}},
            {"strategy": "notify", "params": {"urls": ["mailto://ops@example.com"]}},
        ]},
    },
}


def with_change(path: list, value: object, base: dict | None = None) -> dict:
    """A copy of ``base`` (VALID by default) with ``value`` at ``path`` (a list of keys/indexes)."""
    data = copy.deepcopy(VALID if base is None else base)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def test_valid_file_loads_with_documented_defaults(tmp_path: Path) -> None:
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(VALID))
    plans = load_plans(path, env={})
    assert plans.source == str(path)
    step = plans.get("web").steps[0]
    assert (step.attempts, step.timeout_s, step.backoff.base_s, step.backoff.cap_s) == (3, 60.0, 1.0, 60.0)
    assert (step.verify.interval_s, step.verify.successes, step.verify.deadline_s) == (1.0, 2, 30.0)
    assert (step.approval.required, step.approval.timeout_s, step.approval.on_timeout) == (False, 900.0, "escalate")
    assert step.make_strategy().name == "restart"
    assert step.make_strategy().params.command == ["systemctl", "restart", "{vars.unit}"]
    assert (plans.get("web").budget.max_actions, plans.get("web").budget.window_s) == (5, 3600.0)
    assert plans.limits.breaker.threshold == 3 and plans.limits.max_unhealthy_fraction == 0.5
    assert plans.limits.settle_s == 2.0
    assert plans.notifications.events == ["opened", "blocked", "escalated", "resolved", "degradation"]


def test_shipped_recovery_strategies_json_validates() -> None:
    plans = load_plans(REPO / "recovery_strategies.json", env={})
    assert {"web", "worker", "db"} <= set(plans.plans)
    assert any(step.approval.required for step in plans.get("db").steps)


BAD = [
    ("command-not-a-list", ["plans", "web", "steps", 0, "params", "command"], "systemctl restart web",
     "plans.web.steps[0].params.command", "expected a list of strings"),
    ("command-element-number", ["plans", "web", "steps", 0, "params", "command"], ["systemctl", 3],
     "plans.web.steps[0].params.command[1]", "expected a string"),
    ("unknown-param", ["plans", "web", "steps", 0, "params", "comand"], ["x"],
     "plans.web.steps[0].params.comand", "did you mean 'command'?"),
    ("unknown-step-field", ["plans", "web", "steps", 1, "timout"], "5s",
     "plans.web.steps[1].timout", "did you mean 'timeout'?"),
    ("bad-duration", ["plans", "web", "steps", 1, "timeout"], "5 parsecs",
     "plans.web.steps[1].timeout", "not a duration"),
    ("zero-timeout", ["plans", "web", "steps", 1, "timeout"], "0s",
     "plans.web.steps[1].timeout", "greater than 0"),
    ("unknown-strategy", ["plans", "web", "steps", 2, "strategy"], "notifyy",
     "plans.web.steps[2].strategy", "installed: failover, http"),
    ("bad-on-timeout", ["plans", "web", "steps", 0, "approval"], {"on_timeout": "panic"},
     "plans.web.steps[0].approval.on_timeout", "'escalate' or 'proceed'"),
    ("successes-string", ["plans", "web", "steps", 0, "verify"], {"successes": "two"},
     "plans.web.steps[0].verify.successes", "expected a whole number"),
    ("backoff-cap-below-base", ["plans", "web", "steps", 0, "backoff"], {"base": "10s", "cap": "1s"},
     "plans.web.steps[0].backoff", "cap must be at least base"),
    ("unknown-placeholder", ["plans", "web", "steps", 0, "params", "command"], ["echo", "{vars.x}", "{nope}"],
     "plans.web.steps[0].params.command", "unknown placeholder {nope}"),
    ("no-steps", ["plans", "web", "steps"], [], "plans.web.steps", "at least 1 item"),
    ("bad-apprise-url", ["plans", "web", "steps", 2, "params", "urls"], ["mailto://a@example.com", "nope://x"],
     "plans.web.steps[2].params.urls[1]", "not a valid Apprise URL"),
    ("wrong-version", ["version"], 2, "version", "must be 1"),
    ("bad-fraction", ["limits"], {"max_unhealthy_fraction": 1.5}, "limits.max_unhealthy_fraction",
     "less than or equal to 1"),
    ("settle-too-long", ["limits"], {"settle": "10m"}, "limits.settle", "less than or equal to 300"),
    ("settle-not-a-duration", ["limits"], {"settle": "soon"}, "limits.settle", "not a duration"),
    ("bad-event", ["notifications"], {"events": ["opened", "exploded"]}, "notifications.events[1]", "'resolved'"),
    ("webhook-not-http", ["notifications"], {"webhooks": [{"url": "ftp://x.example"}]},
     "notifications.webhooks[0].url", "http(s) URL"),
    ("unknown-top-level", ["plan"], {}, "plan", "did you mean 'plans'?"),
    ("dotted-plan-name", ["plans", "my.plan"], {"steps": [{"strategy": "wait", "params": {"x": 1}}]},
     'plans["my.plan"].steps[0].params.x', "unknown field 'x'"),
    ("both-command-and-preset", ["plans", "web", "steps", 0, "params", "preset"], "systemd",
     "plans.web.steps[0].params", "exactly one of"),
]


@pytest.mark.parametrize(("path", "value", "field", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_names_its_json_path(path: list, value: object, field: str, message: str) -> None:
    with pytest.raises(PlanError) as err:
        parse_plans(with_change(path, value), "plans.json", env={})
    assert err.value.field == field
    assert message in str(err.value)
    assert "plans.json" in str(err.value)


def test_limits_settle_accepts_durations_and_zero() -> None:
    assert parse_plans(with_change(["limits"], {"settle": "250ms"}), "p.json", env={}).limits.settle_s == 0.25
    assert parse_plans(with_change(["limits"], {"settle": 0}), "p.json", env={}).limits.settle_s == 0.0


def test_missing_required_field_is_named() -> None:
    data = copy.deepcopy(VALID)
    del data["plans"]["web"]["steps"][0]["strategy"]
    with pytest.raises(PlanError) as err:
        parse_plans(data, "p.json", env={})
    assert err.value.field == "plans.web.steps[0].strategy"
    assert "required" in str(err.value)


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "version": 1,\n  "plans": {,}\n}\n')
    with pytest.raises(PlanError) as err:
        load_plans(path, env={})
    assert "line 3 column 13" in str(err.value)


def test_unreadable_file_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot read plan file"):
        load_plans(tmp_path / "absent.json", env={})


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(PlanError) as err:
        parse_plans([1, 2], "p.json", env={})
    assert err.value.field == "$"


def test_env_sets_defaults_but_the_file_wins() -> None:
    env = {"RETRY_MAX_ATTEMPTS": "7", "RECOVERY_TIMEOUT": "2m", "CIRCUIT_BREAKER_THRESHOLD": "9"}
    plans = parse_plans(with_change(["plans", "web", "steps", 1, "attempts"], 1), "p.json", env=env)
    steps = plans.get("web").steps
    assert [s.attempts for s in steps] == [7, 1, 7]
    assert all(s.timeout_s == 120.0 for s in steps)
    assert plans.limits.breaker.threshold == 9
    explicit = with_change(["limits"], {"breaker": {"threshold": 2}})
    assert parse_plans(explicit, "p.json", env=env).limits.breaker.threshold == 2


def test_file_defaults_merge_into_each_step_field_by_field() -> None:
    data = with_change(["defaults"], {"attempts": 2, "verify": {"successes": 5}, "timeout": "10s"})
    data["plans"]["web"]["steps"][0]["verify"] = {"deadline": "1m"}
    step0, step1, _ = parse_plans(data, "p.json", env={"RETRY_MAX_ATTEMPTS": "9"}).get("web").steps
    assert (step0.attempts, step0.timeout_s) == (2, 10.0)
    assert (step0.verify.successes, step0.verify.deadline_s, step0.verify.interval_s) == (5, 60.0, 1.0)
    assert (step1.verify.successes, step1.verify.deadline_s) == (5, 30.0)


def test_bad_default_is_reported_at_defaults() -> None:
    with pytest.raises(PlanError) as err:
        parse_plans(with_change(["defaults"], {"attempts": 0}), "p.json", env={})
    assert err.value.field == "defaults.attempts"


@pytest.mark.parametrize(("name", "value"), [("RETRY_MAX_ATTEMPTS", "three"), ("RETRY_MAX_ATTEMPTS", "0"),
                                             ("RECOVERY_TIMEOUT", "soon"), ("RECOVERY_TIMEOUT", "0s"),
                                             ("CIRCUIT_BREAKER_THRESHOLD", "-1")])
def test_invalid_env_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(PlanError) as err:
        parse_plans(VALID, "p.json", env={name: value})
    assert err.value.field == name and name in str(err.value)


def test_unknown_plan_name_lists_the_plans() -> None:
    plans = parse_plans(VALID, "p.json", env={})
    with pytest.raises(NotFoundError, match="no plan named 'db'.*plans: web"):
        plans.get("db")


def test_loaded_plans_are_immutable() -> None:
    step = parse_plans(VALID, "p.json", env={}).get("web").steps[0]
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type is an implementation detail
        step.attempts = 10
