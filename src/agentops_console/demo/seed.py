"""Register the demo fleet in a governance DB, the way a team would have before go-live.

Everything goes through `agentops_console.governance`'s own functions, so every row the
seed writes has its audit row and `agentops audit verify` holds from the first minute:
agents with their endpoints (the DB names a token variable, never the token), one owner
per role, and for each agent its released versions, signed by every owner and promoted
live. Answers come from fixtures/releases/<agent>-<version>.toml when the governance
fixtures ship one, else from the facts of the agent's own Cedar policy (so the gate agrees).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fleet import Fleet, token_env
from .scenario import FIXTURES, Agent, Scenario

#: Who the audit log says did the seeding.
SEEDER = "agentops-demo"
#: Release answer files reviewed by people (used as they are when one matches).
RELEASES = FIXTURES / "releases"


class SeedUnavailable(Exception):
    """The governance package (or its rubric) is not there; the demo runs without a DB."""


__all__ = ["RELEASES", "SEEDER", "SeedResult", "SeedUnavailable", "seed_governance", "token_env"]


@dataclass
class SeedResult:
    path: Path
    agents: list[str] = field(default_factory=list)  # registered by this run
    live: dict[str, str] = field(default_factory=dict)  # agent -> live version
    #: agents a kept DB already had -> whether their endpoint moved (a new run, new ports)
    reused: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        """Per agent, what was reused, then what went wrong."""
        reused = [
            f"{a} was already registered ({'endpoint updated' if moved else 'unchanged'})"
            for a, moved in self.reused.items()
        ]
        return reused + self.problems

    def summary(self) -> str:
        """One sentence for the demo's stderr, whether the DB is new or kept from a run."""
        parts = []
        if self.agents:
            parts.append(f"{_agents(len(self.agents))} registered with owners and releases")
        if self.reused:
            moved = [a for a, m in self.reused.items() if m]
            if len(moved) == len(self.reused):
                what = "endpoints updated"
            elif moved:
                what = f"endpoints of {', '.join(moved)} updated"
            else:
                what = "endpoints unchanged"
            parts.append(f"reused {_agents(len(self.reused))} registered earlier ({what})")
        if not parts:
            parts.append("no agents registered")
        live = ", ".join(f"{a} {v}" for a, v in sorted(self.live.items())) or "none"
        return "; ".join([*parts, f"live: {live}", *self.problems])


def _agents(count: int) -> str:
    return f"{count} agent{'' if count == 1 else 's'}"


def seed_governance(
    db_path: Path, fleet: Fleet, *, rubrics: Path | None = None, runbooks: Path | None = None
) -> SeedResult:
    """Create (or reuse) the DB and register the fleet; SeedUnavailable when impossible."""
    try:
        from ..governance.db import open_db
        from ..governance.errors import Conflict, GovernanceError
        from ..governance.owners import set_owner
        from ..governance.paths import rubrics_dir, runbooks_dir
        from ..governance.registry import add_agent, update_agent
        from ..governance.releases import live_release
        from ..governance.rubric import find_rubric
    except ImportError as exc:
        raise SeedUnavailable(f"governance package incomplete: {exc}") from None
    scenario = fleet.scenario
    books = runbooks or runbooks_dir()
    try:
        rubric = find_rubric(rubrics or rubrics_dir())
    except GovernanceError as exc:
        raise SeedUnavailable(str(exc)) from None
    result = SeedResult(db_path)
    people = scenario.model.governance
    with open_db(db_path, create=True) as gdb:
        for endpoint in fleet.endpoints():
            agent = scenario.agent(endpoint.agent)
            try:
                add_agent(
                    gdb,
                    actor=SEEDER,
                    name=agent.name,
                    endpoint=endpoint.url,
                    token_env=token_env(agent.name),
                    tenant=agent.tenant,
                    workflows=[w.name for w in agent.workflows],
                    risk=agent.risk,
                )
            except Conflict:
                # a kept demo DB from an earlier run: the fleet listens on new ports now
                _, changed = update_agent(gdb, actor=SEEDER, name=agent.name, endpoint=endpoint.url)
                result.reused[agent.name] = bool(changed)
                current = live_release(gdb, agent.name)
                if current is not None:
                    result.live[agent.name] = current.version
                continue
            result.agents.append(agent.name)
            for role, person in people.owners.items():
                set_owner(gdb, actor=SEEDER, agent=agent.name, role=role, person=person)
            try:
                live = _release(gdb, scenario, agent, rubric, books)
            except GovernanceError as exc:
                result.problems.append(f"{agent.name}: release not live ({exc})")
                continue
            if live is not None:
                result.live[agent.name] = live
    return result


def _release(gdb: Any, scenario: Scenario, agent: Agent, rubric: Any, books: Path) -> str | None:
    """Propose, sign and promote each version in turn; returns the live version."""
    from ..governance.lifecycle import promote
    from ..governance.releases import propose, sign

    people = scenario.model.governance
    policy = scenario.policy_text(agent)
    versions = [v for v in (agent.previous_version, agent.version) if v]
    runbook = _runbook(books)
    live = None
    for index, version in enumerate(versions):
        answers = fixture_answers(agent.name, version) or release_answers(
            scenario,
            agent,
            version,
            rubric=rubric.name,
            runbook=runbook,
            rollback_to=versions[index - 1] if index else None,
        )
        propose(
            gdb,
            actor=people.author,
            agent=agent.name,
            version=version,
            answers=answers,
            policy=policy,
            author=people.author,
            rubric=rubric,
            answers_origin=f"demo answers for {agent.name} {version}",
        )
        for person in sorted(set(people.owners.values())):
            sign(
                gdb,
                person=person,
                agent=agent.name,
                version=version,
                decision="approve",
                comment="reviewed in the demo",
                rubric=rubric,
            )
        promote(
            gdb,
            actor=people.owners.get("operations", SEEDER),
            agent=agent.name,
            version=version,
            rubric=rubric,
            runbooks=books,
        )
        live = version
    return live


def fixture_answers(agent: str, version: str) -> dict[str, Any] | None:
    """The answers file the governance fixtures ship for this release, if there is one."""
    path = RELEASES / f"{agent}-{version}.toml"
    if not path.is_file():
        return None
    return tomllib.loads(path.read_text(encoding="utf-8"))


def release_answers(
    scenario: Scenario,
    agent: Agent,
    version: str,
    *,
    rubric: str,
    runbook: str,
    rollback_to: str | None,
) -> dict[str, Any]:
    """Rubric answers that state what the agent's policy really enforces."""
    from ..governance.gate import NO_EARLIER_RELEASE
    from ..governance.policy_facts import derive

    catalog = tool_catalog(agent)
    facts = derive(scenario.policy_text(agent), catalog, f"{agent.name}@{version}")
    limits: dict[str, Any] = {**facts.stop_conditions, **facts.budgets}
    budgets = {
        name: limits.get(name, 0)
        for name in (
            "max_cost_usd_session",
            "max_cost_usd_loop",
            "max_consecutive_tool_calls",
            "max_tool_calls",
            "max_output_tokens",
            "max_retries",
        )
    }
    workflows = [w.name for w in agent.workflows]
    return {
        "agent": agent.name,
        "version": version,
        "rubric": rubric,
        "tools": catalog,
        "q1": {
            "summary": f"{agent.name} searches and drafts on its own; identity changes wait "
            "for a person, customer-facing changes need an approved change.",
            "tools_without_approval": facts.tools_with("allowed"),
            "tools_requiring_approval": facts.tools_with("approval"),
        },
        "q2": {
            "summary": "Only the approved corpora below, read-only.",
            "data_sources": sorted(facts.readable_corpora()),
            "access_logging": "every tool call is a span with principal, arguments and policy "
            "decision, exported over OTLP to the team's collector",
        },
        "q3": {"summary": "The policy's stop conditions, enforced by the runtime.", **budgets},
        "q4": {
            "summary": "Disable the affected workflows, then roll back to the last release.",
            "runbook": runbook,
            "rollback_to": rollback_to or NO_EARLIER_RELEASE,
            "disable_workflows": workflows,
            "steps": [
                "disable the affected workflows from the console",
                "kill the sessions still running",
                f"agentops rollback {agent.name}",
            ],
        },
    }


def tool_catalog(agent: Agent) -> dict[str, dict[str, Any]]:
    """The release's `[tools.NAME]` tables: the same attributes the runtime's ToolSpec has."""
    catalog: dict[str, dict[str, Any]] = {}
    for tool in agent.tools:
        entry: dict[str, Any] = {
            "read_only": tool.read_only,
            "customer_facing": tool.customer_facing,
            "category": tool.category,
        }
        if tool.corpus is not None:
            entry["corpus"] = tool.corpus
        if tool.region is not None:
            entry["region"] = tool.region
        if tool.examples:
            example = {k: v for k, v in tool.examples[0].items() if "{" not in str(v)}
            if example:
                entry["example_arguments"] = example
        catalog[tool.name] = entry
    return catalog


def _runbook(books: Path) -> str:
    """The runbook a release names for rollback: one for runaway loops if there is one."""
    from ..governance.errors import GovernanceError
    from ..governance.runbooks import list_runbooks, runbooks_for

    try:
        found = runbooks_for(books, "runaway_loop") or list_runbooks(books)
    except GovernanceError:
        found = []
    return found[0].name if found else "runaway-loop"
