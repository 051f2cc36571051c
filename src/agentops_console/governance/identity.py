"""Who is acting: the operator identity recorded on every audited action."""

from __future__ import annotations

import getpass
import os


def resolve_operator(explicit: str | None = None) -> str:
    """`--as`/`--operator` first, then AGENTOPS_OPERATOR, then the OS user."""
    if explicit and explicit.strip():
        return explicit.strip()
    from_env = os.environ.get("AGENTOPS_OPERATOR", "").strip()
    if from_env:
        return from_env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
