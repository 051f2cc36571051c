"""Who is acting: the operator identity recorded on every audited action."""

from __future__ import annotations

import getpass
import os


def resolve_operator(explicit: str | None = None) -> str:
    """`--as`/`--operator` first, then AGENTOPS_OPERATOR, then the OS user. The name goes
    into the audit log, so it is validated like any person (BadInput otherwise)."""
    from .names import person

    if explicit is not None:
        return person(explicit)
    from_env = os.environ.get("AGENTOPS_OPERATOR", "")
    if from_env.strip():
        return person(from_env)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
