"""Control calls to an agent's endpoint from the governance side, each one audited.

The token comes from the environment variable the registry names. A call that fails
(nothing answered, or the endpoint refused) is recorded as failed and then raised as
Unreachable, so the log shows the attempt either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..protocol.text import error_line
from .db import GovernanceDB
from .errors import BadInput, Conflict, NotFound, Unreachable
from .registry import Agent, get_agent
from .releases import Release, get_release, live_release, rollback_problem

if TYPE_CHECKING:
    from ..protocol.client import AgentClient


def _token(agent: Agent) -> str | None:
    if not agent.token_env:
        return None
    value = os.environ.get(agent.token_env)
    if not value:
        raise BadInput(
            f"environment variable {agent.token_env} (token for {agent.name}) is not set"
        )
    return value


def _record(
    gdb: GovernanceDB, actor: str, action: str, agent: Agent, target: str, details: dict[str, Any]
) -> None:
    """Through the one audit writer, so a CLI call reads like the console's and the
    watcher's (same action and target, source cli, the outcome in its own field)."""
    from .api import record_action

    outcome = str(details.pop("outcome", "ok"))
    record_action(
        gdb,
        actor=actor,
        action=action,
        target=target,
        agent=agent.name,
        details={"endpoint": agent.endpoint, **details},
        source="cli",
        outcome=outcome,
    )


def call_endpoint(
    gdb: GovernanceDB,
    *,
    actor: str,
    agent: Agent,
    action: str,
    target: str,
    request: dict[str, Any],
    send: Callable[[AgentClient], Any],
) -> dict[str, Any]:
    """Run `send` against the agent's endpoint and audit the outcome; returns the answer."""
    from ..protocol.client import AgentClient, EndpointError

    try:
        token = _token(agent)
    except BadInput as exc:
        _record(
            gdb, actor, action, agent, target, {**request, "outcome": "failed", "error": str(exc)}
        )
        raise
    try:
        with AgentClient(agent.endpoint, token) as client:
            answer = send(client)
    except EndpointError as exc:
        error = error_line(exc, None)  # the endpoint's text: audited and shown, so cleaned
        details = {**request, "outcome": "failed", "error": error, "status": exc.status}
        _record(gdb, actor, action, agent, target, details)
        raise Unreachable(f"{action} on {agent.name} failed: {error}") from None
    data: dict[str, Any] = answer.model_dump(mode="json")
    _record(gdb, actor, action, agent, target, {**request, "outcome": "ok", "answer": data})
    return data


def release_for_push(
    gdb: GovernanceDB, agent: str, version: str | None, *, rollback: bool = False
) -> Release:
    """The release whose policy may go to the agent: the live one, or (for a rollback
    only) a release the agent may go back to. Anything else would put a policy in force
    that no reviewer signed off."""
    if version is None:
        live = live_release(gdb, agent)
        if live is None:
            raise NotFound(f"agent {agent!r} has no live release; promote one first")
        return live
    release = get_release(gdb, agent, version)
    if release.status == "live":
        return release
    if rollback and rollback_problem(gdb, release) is None:
        return release
    raise Conflict(
        f"release {agent} {version} is {release.status}, not live; only the live release's"
        " policy can be pushed (promote it, or roll back to it)"
    )


def push_policy(
    gdb: GovernanceDB,
    *,
    actor: str,
    agent: str,
    version: str | None = None,
    rollback: bool = False,
) -> dict[str, Any]:
    """PUT the release's Cedar bundle to the agent (the live release by default)."""
    from ..protocol.models import PolicyBundle, policy_sha256

    target = get_agent(gdb, agent)
    release = release_for_push(gdb, agent, version, rollback=rollback)
    bundle = PolicyBundle(
        version=release.version,
        cedar=release.policy,
        sha256=policy_sha256(release.policy),
        operator=actor,
    )
    return call_endpoint(
        gdb,
        actor=actor,
        agent=target,
        action="policy.push",
        target=f"{agent}@{release.version}",
        request={"version": release.version, "sha256": bundle.sha256},
        send=lambda client: client.push_policy(bundle),
    )


def set_workflow(
    gdb: GovernanceDB,
    *,
    actor: str,
    agent: str,
    workflow: str,
    enabled: bool,
    reason: str = "",
    registered_only: bool = True,
) -> dict[str, Any]:
    """Disable (kill switch) or re-enable a workflow on the agent's endpoint.

    A workflow the registry does not list is refused (a typo would otherwise leave the
    real one running while the operator believes it stopped); rollback passes
    `registered_only=False` to honour a reviewed release's disable list as written.
    """
    from . import names

    names.workflow(workflow)
    target = get_agent(gdb, agent)
    if registered_only and workflow not in target.workflows:
        known = ", ".join(target.workflows) or "none"
        raise NotFound(
            f"agent {agent!r} has no workflow {workflow!r} (registered: {known}); add it with"
            f" `agentops agent update {agent} --workflow ...`"
        )
    verb = "enable" if enabled else "disable"

    def send(client: AgentClient) -> Any:
        if enabled:
            return client.enable(workflow, actor, reason)
        return client.disable(workflow, actor, reason)

    return call_endpoint(
        gdb,
        actor=actor,
        agent=target,
        action=f"workflow.{verb}",
        target=f"{agent}/workflow/{workflow}",
        request={"workflow": workflow, "reason": reason},
        send=send,
    )
