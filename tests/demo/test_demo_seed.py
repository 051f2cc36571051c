"""Seeding the governance DB: registry, owners, signed live releases, an intact audit log.

Uses the repository's own rubrics/, runbooks/ and fixtures/releases/, as the demo does.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from agentops_console.demo.fleet import Fleet
from agentops_console.demo.scenario import load_scenario
from agentops_console.demo.seed import RELEASES, seed_governance, token_env


def test_seed_registers_owns_releases_and_audits(tmp_path: Path) -> None:
    from agentops_console.governance.audit import verify
    from agentops_console.governance.db import open_db
    from agentops_console.governance.owners import missing_roles
    from agentops_console.governance.registry import list_agents
    from agentops_console.governance.releases import list_releases, live_release

    db = tmp_path / "governance.db"
    with Fleet(load_scenario(), speed=10) as fleet:
        result = seed_governance(db, fleet)
        urls = {e.agent: e.url for e in fleet.endpoints()}
        tokens = [e.token for e in fleet.endpoints()]
    assert result.live == {"it-support": "1.4.0", "billing": "2.1.0", "research": "0.9.2"}
    assert result.notes == []
    with open_db(db) as gdb:
        agents = {a.name: a for a in list_agents(gdb)}
        assert {n: a.endpoint for n, a in agents.items()} == urls
        assert agents["it-support"].token_env == token_env("it-support")
        assert all(missing_roles(gdb, name) == [] for name in agents)
        it_support = live_release(gdb, "it-support")
        assert it_support is not None and it_support.version == "1.4.0"
        shipped = tomllib.loads((RELEASES / "it-support-1.4.0.toml").read_text("utf-8"))
        assert it_support.answers["q4"] == shipped["q4"]  # the reviewed answers file
        research = live_release(gdb, "research")  # no file: answered from its policy
        assert research is not None and research.answers["q3"]["max_cost_usd_session"] == 2.0
        statuses = {r.version: r.status for r in list_releases(gdb, "it-support")}
        assert statuses == {"1.3.2": "retired", "1.4.0": "live"}
        assert verify(gdb.conn).ok
    raw = db.read_bytes()
    assert all(token.encode() not in raw for token in tokens)


def test_seeding_twice_keeps_the_db_and_says_so(tmp_path: Path) -> None:
    db = tmp_path / "governance.db"
    scenario = load_scenario()
    with Fleet(scenario, speed=10) as fleet:
        seed_governance(db, fleet)
        again = seed_governance(db, fleet)
    assert again.agents == [] and len(again.notes) == 3
    assert all(note.endswith("(unchanged)") for note in again.notes)
    with Fleet(scenario, speed=10) as second:  # a later run: same agents, new ports
        moved = seed_governance(db, second)
        urls = {e.agent: e.url for e in second.endpoints()}
    assert all(note.endswith("(endpoint updated)") for note in moved.notes)
    from agentops_console.governance.db import open_db
    from agentops_console.governance.registry import list_agents

    with open_db(db) as gdb:
        assert {a.name: a.endpoint for a in list_agents(gdb)} == urls
