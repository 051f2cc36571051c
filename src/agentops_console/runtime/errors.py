"""Exceptions the runtime raises into agent code.

They all derive from `GuardError` so an agent loop can stop on any governance refusal with
one `except`, and none derives from the others: a kill is not a policy decision.
"""

from __future__ import annotations


class GuardError(Exception):
    """The runtime refused a call; the agent must not carry on with this step."""


class SessionKilled(GuardError):
    """The session was killed by an operator, or its workflow was disabled."""


class PolicyDenied(GuardError):
    """Cedar denied the tool call, or a human checkpoint was denied or timed out."""


class BudgetExceeded(GuardError):
    """A hard budget limit was reached; the session makes no further calls."""


class SessionEnded(GuardError):
    """The session has already ended; calls belong in a new session."""


class PolicyError(ValueError):
    """A Cedar policy bundle that cannot be loaded; the policy in force stays."""
