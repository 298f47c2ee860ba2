"""orchestrator.testing, the kit shipped for plugin authors: contexts like the executor's, a stub
component, a scripted strategy; and the contract's edges it relies on (one outcome enum, no hidden probe)."""

from __future__ import annotations

import pytest

from orchestrator.strategy import AttemptStatus, StepResult, StrategyContext, StrategyError, StrategyFailure
from orchestrator.testing import FakeClock, StubParams, StubStrategy, make_context, stub_component
from tests.servers import LoopbackHTTPServer


def test_make_context_has_a_deadline_on_the_given_clock_and_a_bound_logger() -> None:
    clock = FakeClock()
    context = make_context(stub_component("api", vars={"unit": "api.service"}), incident_id=9, clock=clock,
                           timeout_s=30)
    assert context.remaining_s() == 30
    clock.advance(12)
    assert context.remaining_s() == 18
    assert context.component.vars["unit"] == "api.service" and context.incident_id == 9
    assert context.logger.process("hi", {})[0] == "component=api incident=9 step=0 hi"


def test_make_context_probes_with_the_daemons_own_checkers() -> None:
    with LoopbackHTTPServer("ok") as up, LoopbackHTTPServer("500") as down:
        context = make_context(stub_component(url=up.url))
        assert context.probe(context.component.check, 2.0).ok
        assert not context.probe(down.url, 2.0).ok
        assert up.hits == 1 and down.hits == 1


def test_a_context_built_without_probe_or_sender_says_so_instead_of_checking_anything() -> None:
    context = StrategyContext.create(stub_component(), incident_id=1, clock=FakeClock())
    with pytest.raises(StrategyError, match="no probe"):
        context.probe("http://127.0.0.1:9/", 1.0)
    with pytest.raises(StrategyError, match="no sender"):
        context.send([], [], "t", "b", 1.0)


def test_stub_strategy_follows_its_script_and_keeps_every_context() -> None:
    stub = StubStrategy(StubParams(script=["fail", "raise", "succeed"], facts={"replicas": 3}))
    context = make_context()
    assert stub.execute(context).outcome is AttemptStatus.FAILED
    with pytest.raises(StrategyFailure):
        stub.execute(context)
    done = stub.execute(context)
    assert done.outcome is AttemptStatus.SUCCEEDED and done.facts == {"replicas": 3}
    assert stub.execute(context).outcome is AttemptStatus.SUCCEEDED  # the last entry repeats
    assert len(stub.calls) == 4
    with pytest.raises(StrategyError) as err:
        StubStrategy(StubParams(script=["raise_permanent"])).execute(context)
    assert err.value.permanent


@pytest.mark.parametrize("outcome", [AttemptStatus.ABANDONED, AttemptStatus.TIMED_OUT, AttemptStatus.RUNNING])
def test_a_strategy_result_cannot_claim_an_outcome_only_the_executor_sets(outcome: AttemptStatus) -> None:
    now = FakeClock().now()
    with pytest.raises(ValueError, match="succeeded, failed or skipped"):
        StepResult(outcome, "x", now, now)
