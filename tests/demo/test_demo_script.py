"""The traffic script is a pure function of scenario and seed."""

from __future__ import annotations

from agentops_console.demo.scenario import load_scenario
from agentops_console.demo.script import SessionPlan, plan, trouble_order

SCENARIO = load_scenario()


def test_same_seed_same_plan_and_trouble_order() -> None:
    first = list(plan(SCENARIO, 11, until_s=200))
    again = list(plan(SCENARIO, 11, until_s=200))
    assert first == again
    assert trouble_order(SCENARIO, 11, 200) == trouble_order(SCENARIO, 11, 200)
    kinds = [kind for _, kind, _ in trouble_order(SCENARIO, 11, 90)]
    assert kinds == [
        "runaway_loop",
        "low_confidence_retrieval",
        "privilege_escalation",
        "cross_tenant_export",
        "budget_exhaustion",
        "agent_outage",
    ]
    times = [at for at, _, _ in trouble_order(SCENARIO, 11, 200)]
    assert times == sorted(times)
    assert len(times) == 2 * len(kinds) + 5  # the third cycle (180 s) reaches 195 s by 200


def test_another_seed_plays_other_ordinary_traffic() -> None:
    ours = [i for i in plan(SCENARIO, 1, until_s=90) if i.kind == "ordinary"]
    theirs = [i for i in plan(SCENARIO, 2, until_s=90) if i.kind == "ordinary"]
    assert ours != theirs
    assert [i.kind for i in plan(SCENARIO, 1, 90) if i.kind != "ordinary"] == [
        i.kind for i in plan(SCENARIO, 2, 90) if i.kind != "ordinary"
    ]


def test_life_starts_at_once_and_plans_are_time_ordered() -> None:
    items = list(plan(SCENARIO, 7, until_s=90))
    assert items[0].at_s < 1.0
    assert [i.at_s for i in items] == sorted(i.at_s for i in items)
    assert all(i.at_s < 90 for i in items)


def test_low_confidence_retrieval_inflates_the_prompt_about_2_3_times() -> None:
    session = next(i for i in plan(SCENARIO, 7, 90) if i.kind == "low_confidence_retrieval")
    assert isinstance(session, SessionPlan)
    first, last = session.loops[0], session.loops[-1]
    assert 2.2 <= last.tokens_in / first.tokens_in <= 2.4
    confidences = [loop.steps[0].confidence for loop in session.loops]
    assert all(c is not None and c < 0.5 for c in confidences)


def test_runaway_retries_one_step_without_a_person() -> None:
    session = next(i for i in plan(SCENARIO, 7, 90) if i.kind == "runaway_loop")
    assert isinstance(session, SessionPlan)
    steps = {(s.tool, repr(sorted(s.arguments.items()))) for lp in session.loops for s in lp.steps}
    assert len(steps) == 1 and len(session.loops) > 4
    assert [lp.human for lp in session.loops[1:]] == [False] * (len(session.loops) - 1)
