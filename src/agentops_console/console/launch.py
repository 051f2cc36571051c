"""Turn command-line options and the registry into agent sources and a governance port.

Shared by `agentops console` and `agentops status` so both find agents the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .connection import AgentSource
from .governance_adapter import GovernanceAdapter


class LaunchError(ValueError):
    """Bad options or nothing to watch; `code` is the CLI exit code to use."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Launch:
    sources: list[AgentSource]
    governance: GovernanceAdapter | None
    #: Why actions are off although --readonly was not given ('' when they are on).
    readonly_reason: str = ""


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LaunchError(f"--endpoint {url!r} is not an http(s) URL")
    return url.rstrip("/")


def token_for(control_env: str | None, read_env: str | None, readonly: bool) -> str | None:
    """The variable whose token the console uses. Read-only: the read token's when that
    variable is set, so the control token is never even read; else the control token's."""
    if readonly and read_env and os.environ.get(read_env):
        return read_env
    return control_env


def resolve(
    endpoints: list[str],
    token_env: str | None,
    db: Path | None,
    *,
    read_token_env: str | None = None,
    readonly: bool = False,
) -> Launch:
    """--endpoint URLs when given, else every agent in the registry. `read_token_env`
    (for --endpoint) and the registry's read token variables count only when `readonly`."""
    from ..governance.errors import DatabaseProblem
    from ..governance.paths import default_db_path

    path = db or default_db_path()
    governance: GovernanceAdapter | None = GovernanceAdapter(path)
    reason = ""
    try:
        assert governance is not None
        governance.check()
    except DatabaseProblem as exc:
        if db is not None:  # asked for explicitly: a problem with it is an error
            raise LaunchError(str(exc), 6) from None
        # shown in the console's header: every action is audited, so none without it
        governance, reason = None, f"actions off, no audit log: {exc}"
    if endpoints:
        chosen = token_for(token_env, read_token_env, readonly)
        sources = [AgentSource(check_url(u), check_url(u), chosen) for u in endpoints]
    elif governance is not None:
        sources = [
            AgentSource(
                a.name, a.endpoint, token_for(a.token_env or token_env, a.read_token_env, readonly)
            )
            for a in governance.registered_agents()
        ]
    else:
        sources = []
    if not sources:
        raise LaunchError(
            "no agents to watch: register one with `agentops agent add` or pass --endpoint URL"
        )
    return Launch(sources, governance, reason)
