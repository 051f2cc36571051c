"""Turn command-line options and the registry into agent sources and a governance port.

Shared by `agentops console` and `agentops status` so both find agents the same way.
"""

from __future__ import annotations

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


def resolve(endpoints: list[str], token_env: str | None, db: Path | None) -> Launch:
    """--endpoint URLs when given, else every agent in the registry."""
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
        governance, reason = None, f"actions off: {exc}"
    if endpoints:
        sources = [AgentSource(check_url(u), check_url(u), token_env) for u in endpoints]
    elif governance is not None:
        sources = [
            AgentSource(a.name, a.endpoint, a.token_env or token_env)
            for a in governance.registered_agents()
        ]
    else:
        sources = []
    if not sources:
        raise LaunchError(
            "no agents to watch: register one with `agentops agent add` or pass --endpoint URL"
        )
    return Launch(sources, governance, reason)
