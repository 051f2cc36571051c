"""The governance database and its rules: registry, owners, releases and sign-offs,
the release gate, runbooks, incidents, rollback and the hash-chained audit log.

No terminal UI here; the CLI (cli/gov_*.py) and the console are front ends over it.
Importing this package is free: submodules load when used.

Python API for the console and the demo (``agentops_console.governance.api``, also
importable from this package)::

    from agentops_console.governance import (
        open_governance, registered_agents, record_action,
        open_incident_for_flag, runbooks_for_trigger,
    )
    gdb = open_governance()                 # AGENTOPS_DB or the per-user data dir; or a path
    for agent in registered_agents(gdb):    # .name, .endpoint, .token_env (env var NAME)
        token = os.environ.get(agent.token_env or "")
    record_action(gdb, actor="alice", action="session.kill", target="sess-42",
                  agent="it-support", details={"reason": "runaway loop"})
    incident, runbook = open_incident_for_flag(
        gdb, agent="it-support", flag_kind="runaway_loop", summary="loop in password-reset",
        actor="alice", session_id="sess-42")  # runbook: best match by trigger, or None
    books = runbooks_for_trigger("policy_denied")   # list[Runbook]: .name .title .steps .body
    gdb.close()

Every mutation runs in ``GovernanceDB.transaction(actor)`` and appends its audit row
in the same transaction. Failures raise ``errors.GovernanceError`` subclasses
(BadInput, NotFound, Conflict, Unreachable, DatabaseProblem, NotReady) with one-line
messages. A GovernanceDB is one sqlite3 connection: use it from one thread.
"""

from __future__ import annotations

from typing import Any

_API = (
    "open_governance",
    "registered_agents",
    "record_action",
    "open_incident_for_flag",
    "runbooks_for_trigger",
)

__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
