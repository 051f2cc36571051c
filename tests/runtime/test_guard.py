"""The guard on every call: policy outcomes, budgets, checkpoints, detections, counters."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from agentops_console.protocol.models import ApprovalDecision, BudgetUpdate, PolicyBundle
from agentops_console.protocol.models import policy_sha256 as sha
from agentops_console.runtime import (
    BudgetExceeded,
    ModelPrice,
    PolicyDenied,
    Runtime,
    RuntimeConfig,
    SessionKilled,
    ToolSpec,
)

POLICY = (Path(__file__).parents[2] / "fixtures" / "policies" / "it-support.cedar").read_text()
TOOLS = [
    ToolSpec(
        "kb_search",
        read_only=True,
        category="retrieval",
        corpus="it-kb",
        args={"query": "str"},
        required=("query",),
    ),
    ToolSpec("shady_search", read_only=True, category="retrieval", corpus="dark-web"),
    ToolSpec("reset_password", category="identity"),
    ToolSpec("change_account", customer_facing=True),
    ToolSpec("export_data", category="export"),
]


def make(**kw: object) -> Runtime:
    options: dict[str, object] = {
        "tenant": "acme",
        "policy": POLICY,
        "tools": TOOLS,
        "config": RuntimeConfig(approval_timeout_s=5),
    }
    options.update(kw)
    return Runtime("it-support", "1.4.0", **options)  # type: ignore[arg-type]


def kinds(rt: Runtime, session_id: str) -> list[str]:
    session = rt.get(session_id)
    assert session is not None
    return [f.kind for f in session.flags]


def test_reference_policy_outcomes() -> None:
    rt = make()
    with rt.session(workflow="support", principal="u1") as s:
        with s.tool_call("kb_search", {"query": "vpn"}):
            pass
        with pytest.raises(PolicyDenied, match="retrieval-from-approved-corpora"):
            with s.tool_call("shady_search", {"q": "x"}):
                pytest.fail("denied tool ran")
        with pytest.raises(PolicyDenied, match="customer-facing"):
            with s.tool_call("change_account", {"plan": "pro"}):
                pytest.fail("denied tool ran")
        with pytest.raises(PolicyDenied, match="approved-regions"):
            with s.tool_call("export_data", {"region": "ap-south-1"}):
                pytest.fail("denied tool ran")
        with pytest.raises(PolicyDenied, match="cross-tenant"):
            with s.tool_call("export_data", {"region": "eu-west-1", "tenant": "globex"}):
                pytest.fail("denied tool ran")
        s.human_input()  # six calls in a row would hit the consecutive-call checkpoint
        with s.tool_call("export_data", {"region": "eu-west-1", "tenant": "acme"}):
            pass
        assert s.unauthorized_attempts == 4
        assert kinds(rt, s.id).count("policy_denied") == 4
    with rt.session(workflow="support", principal="u1", approved_change=True) as s2:
        with s2.tool_call("change_account", {"plan": "pro"}):
            pass
    detail = rt.session_detail(s.id)
    assert detail is not None
    outcomes = [
        (sp.name, sp.outcome, sp.policy.decision if sp.policy else None) for sp in detail.spans
    ]
    assert outcomes[0] == ("kb_search", "ok", "allow")
    assert outcomes[1] == ("shady_search", "denied", "deny")


def test_schema_near_miss_is_flagged_not_fatal() -> None:
    rt = make()
    with rt.session(workflow="support", principal="u1") as s:
        with s.tool_call("kb_search", {"query": 3, "limit": 9}):
            pass
        flags = [f for f in s.flags if f.kind == "policy_near_miss"]
        assert len(flags) == 1
        assert "unexpected argument 'limit'" in flags[0].message
        assert "'query' should be str" in flags[0].message


def test_runaway_loop_flag_and_policy_stop_in_the_same_call() -> None:
    rt = make()
    with rt.session(workflow="support", principal="u1") as s:
        for _ in range(4):
            with s.tool_call("kb_search", {"query": "same"}):
                pass
        assert "runaway_loop" not in kinds(rt, s.id)
        with pytest.raises(PolicyDenied, match="stop-conditions"):
            with s.tool_call("kb_search", {"query": "same"}):
                pass
        assert "runaway_loop" in kinds(rt, s.id)
        assert s.retries == 4
        s.human_input()
        with s.tool_call("kb_search", {"query": "different"}):
            pass


def test_identity_change_waits_for_a_human_and_denial_refuses() -> None:
    rt = make()
    results: list[str] = []

    def agent() -> None:
        with rt.session(workflow="password-reset", principal="u1") as s:
            try:
                with s.tool_call("reset_password", {"user": "u1"}):
                    results.append("ran")
            except PolicyDenied as exc:
                results.append(str(exc))

    worker = threading.Thread(target=agent)
    worker.start()
    deadline = time.monotonic() + 5
    while not rt.pending_approvals() and time.monotonic() < deadline:
        time.sleep(0.005)
    (approval,) = rt.pending_approvals()
    assert approval.reason.startswith("policy identity-change-needs-human-approval")
    summaries = rt.session_summaries()
    assert summaries[0].status == "waiting_approval"
    rt.decide_approval(approval.id, ApprovalDecision(decision="deny", operator="lead"))
    worker.join(5)
    assert results and "checkpoint denied by lead" in results[0]
    with pytest.raises(ValueError, match="already denied"):
        rt.decide_approval(approval.id, ApprovalDecision(decision="approve", operator="x"))


def test_checkpoint_expires_and_refuses() -> None:
    config = RuntimeConfig(approval_timeout_s=0.05)
    rt = make(config=config)
    with rt.session(workflow="password-reset", principal="u1") as s:
        with pytest.raises(PolicyDenied, match="expired"):
            with s.tool_call("reset_password", {"user": "u1"}):
                pytest.fail("ran without approval")
        assert "approval_timeout" in kinds(rt, s.id)
    assert rt.pending_approvals() == []


def test_consecutive_tool_calls_need_a_human_checkpoint() -> None:
    rt = make(policy=None)
    approved = threading.Event()

    def approver() -> None:
        while not approved.is_set():
            for pending in rt.pending_approvals():
                rt.decide_approval(pending.id, ApprovalDecision(decision="approve", operator="o"))
                approved.set()
            time.sleep(0.005)

    thread = threading.Thread(target=approver, daemon=True)
    thread.start()
    with rt.session(workflow="support", principal="u1") as s:
        for i in range(6):
            with s.tool_call("kb_search", {"query": str(i)}):
                pass
        assert approved.is_set()
        assert "consecutive_tool_calls" in kinds(rt, s.id)
        assert s.consecutive_tool_calls == 1  # the human checkpoint reset the streak
        s.human_input()
        assert s.consecutive_tool_calls == 0
    approved.set()
    thread.join(2)


def test_session_budget_warns_at_80_percent_then_stops_at_next_call() -> None:
    config = RuntimeConfig(prices={"big-model": ModelPrice(1_000_000.0, 0.0)}, approval_timeout_s=5)
    rt = make(config=config, policy=None)
    with pytest.raises(BudgetExceeded), rt.session(workflow="support", principal="u") as s:
        s.llm_call(model="big-model", input_tokens=0)
        s.llm_call(model="big-model", input_tokens=1)  # loop cost $1 > $0.20 per loop
        assert "budget_exceeded" in kinds(rt, s.id)  # flagged in the call that crossed it
        s.llm_call(model="big-model", input_tokens=1)  # refused: the session stops here
    assert "budget_exceeded" in kinds(rt, s.id)
    ended = rt.get(s.id)
    assert ended is not None and ended.status == "stopped"

    rt2 = make(config=RuntimeConfig(prices={"m": ModelPrice(0.17e6, 0.0)}), policy=None)
    with rt2.session(workflow="support", principal="u") as s2:
        s2.llm_call(model="m", input_tokens=1)  # $0.17 of $0.20 per loop: 85 %
        assert kinds(rt2, s2.id) == ["budget_warning"]
        for _ in range(10):
            s2.llm_call(model="m", input_tokens=1)  # session total creeps up to $1.87
        assert s2.cost_usd == pytest.approx(1.87)
        s2.llm_call(model="m", input_tokens=1)  # $2.04: over the $2.00 session budget
        assert "budget_exceeded" in kinds(rt2, s2.id)
        with pytest.raises(BudgetExceeded, match="max_cost_usd_session"):
            with s2.tool_call("kb_search", {"query": "x"}):
                pytest.fail("over budget")


def test_live_budget_scopes_and_precedence() -> None:
    rt = make()
    assert rt.agent_info().budgets.max_tool_calls == 60  # from the policy's annotations
    rt.set_budgets(BudgetUpdate(scope="agent", max_tool_calls=40))
    rt.set_budgets(BudgetUpdate(scope="workflow:billing", max_tool_calls=3))
    with rt.session(workflow="billing", principal="u") as s:
        assert s.limits().max_tool_calls == 3
        rt.set_budgets(BudgetUpdate(scope=f"session:{s.id}", max_tool_calls=2))
        assert s.limits().max_tool_calls == 2
        for i in range(2):
            with s.tool_call("kb_search", {"query": str(i)}):
                pass
        with pytest.raises(BudgetExceeded, match="max_tool_calls"):
            with s.tool_call("kb_search", {"query": "third"}):
                pytest.fail("over the tool-call budget")
    with rt.session(workflow="other", principal="u") as other:
        assert other.limits().max_tool_calls == 40
    with pytest.raises(LookupError):
        rt.set_budgets(BudgetUpdate(scope="session:nope", max_tool_calls=1))


def test_kill_and_disable_survive_a_policy_push() -> None:
    rt = make()
    s = rt.session(workflow="support", principal="u")
    rt.kill(s.id, "oncall", "runaway")
    rt.disable_workflow("export", "oncall", "cross-tenant export")
    rt.load_policy(PolicyBundle(version="1.4.1", cedar=POLICY, sha256=sha(POLICY)))
    with pytest.raises(SessionKilled):
        s.llm_call(model="gpt-4o-mini", input_tokens=1)
    with pytest.raises(SessionKilled):
        rt.session(workflow="export", principal="u")
    s.end()
    assert rt.get(s.id) is not None and rt.get(s.id).status == "killed"  # type: ignore[union-attr]


def test_disable_stops_running_sessions_at_their_next_call() -> None:
    rt = make(policy=None)
    with pytest.raises(SessionKilled), rt.session(workflow="export", principal="u") as s:
        with s.tool_call("kb_search", {"query": "before"}):
            pass
        state = rt.disable_workflow("export", "oncall", "attempted export")
        assert state.sessions_stopped == 1
        with s.tool_call("kb_search", {"query": "after"}):
            pytest.fail("disabled workflow ran a tool")
    assert "workflow_disabled" in kinds(rt, s.id)


def test_low_confidence_retrieval_that_keeps_expanding_is_flagged() -> None:
    rt = make(policy=None)
    with rt.session(workflow="support", principal="u") as s:
        for tokens in (1000, 2300, 5300):
            with s.tool_call("kb_search", {"query": f"q{tokens}"}) as call:
                call.retrieved(confidence=0.3, context_tokens=tokens)
        assert kinds(rt, s.id).count("low_confidence_retrieval") == 1
        detail = rt.session_detail(s.id)
        assert detail is not None and detail.spans[-1].kind == "retrieval"


def test_unpriced_model_costs_zero_and_is_flagged() -> None:
    rt = make(policy=None)
    with rt.session(workflow="support", principal="u") as s:
        span = s.llm_call(model="my-local-llama-9000", input_tokens=50, output_tokens=5)
        assert span.unpriced and span.cost_usd == 0
        priced = s.llm_call(model="gpt-4o-mini", input_tokens=1_000_000, output_tokens=0)
        assert priced.cost_usd == pytest.approx(0.15)
    assert kinds(rt, s.id) == ["unpriced"]


def test_loops_and_loop_costs() -> None:
    rt = make(policy=None)
    with rt.session(workflow="support", principal="u") as s:
        for i in range(3):
            s.human_input()  # each loop starts from a user turn
            s.llm_call(model="gpt-4o-mini", input_tokens=1000, output_tokens=100)
            with s.tool_call("kb_search", {"query": str(i)}):
                pass
            with s.tool_call("draft_ticket", {"n": i}):
                pass
    detail = rt.session_detail(s.id)
    assert detail is not None and detail.loops == 3 and detail.tool_calls == 6
    assert [lc.tool_calls for lc in detail.loop_costs] == [2, 2, 2]
    assert detail.loop_costs[0].tokens_in == 1000


def test_finished_sessions_ring_evicts_and_counts() -> None:
    rt = make(policy=None, config=RuntimeConfig(finished_sessions=3, approval_timeout_s=5))
    for i in range(5):
        with rt.session(workflow="w", principal=f"u{i}"):
            pass
    assert len(rt.session_summaries()) == 3
    assert rt.stats.sessions_evicted == 2
    assert rt.agent_info().sessions_evicted == 2


def test_tool_error_is_recorded_and_propagates() -> None:
    rt = make(policy=None)
    with pytest.raises(ZeroDivisionError), rt.session(workflow="w", principal="u") as s:
        with s.tool_call("calc", {"x": 1}):
            _ = 1 / 0
    detail = rt.session_detail(s.id)
    assert detail is not None and detail.status == "failed"
    assert detail.spans[0].outcome == "error" and "ZeroDivisionError" in (
        detail.spans[0].error or ""
    )


def test_decorator_sync_and_async() -> None:
    rt = make()

    @rt.tool(read_only=True, category="retrieval", corpus="it-kb")
    def kb_lookup(query: str, limit: int = 3) -> list[str]:
        return [query] * limit

    @rt.tool(name="reset_pw", category="identity")
    async def reset(user: str) -> str:
        return f"reset {user}"

    with rt.session(workflow="w", principal="u") as s:
        assert kb_lookup("vpn", limit=2) == ["vpn", "vpn"]
        detail = rt.session_detail(s.id)
        assert detail is not None
        assert detail.spans[0].arguments == {"query": "vpn", "limit": 2}
        assert detail.spans[0].output == ["vpn", "vpn"]
    with pytest.raises(RuntimeError, match="outside a session"):
        kb_lookup("x")

    async def main() -> str:
        async with rt.session(workflow="w", principal="u") as s2:
            task = asyncio.create_task(reset("u"))
            while not rt.pending_approvals():
                await asyncio.sleep(0.001)
            (pending,) = rt.pending_approvals()
            # the agent's loop keeps running while the checkpoint waits
            threading.Thread(
                target=rt.decide_approval,
                args=(pending.id, ApprovalDecision(decision="approve", operator="o")),
            ).start()
            result = await task
            assert s2.tool_calls == 1
            return result

    assert asyncio.run(main()) == "reset u"


def test_async_kill_while_waiting_for_approval() -> None:
    rt = make()

    async def main() -> None:
        async with rt.session(workflow="w", principal="u") as s:

            async def call() -> None:
                async with s.tool_call("reset_password", {"user": "u"}):
                    pytest.fail("ran")

            task = asyncio.create_task(call())
            while not rt.pending_approvals():
                await asyncio.sleep(0.001)
            rt.kill(s.id, "oncall", "stop")
            with pytest.raises(SessionKilled):
                await task
            assert rt.pending_approvals() == []

    asyncio.run(main())
    (summary,) = rt.session_summaries()
    assert summary.status == "killed" and summary.killed is not None
