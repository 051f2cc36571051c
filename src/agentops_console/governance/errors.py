"""Governance failures by kind, so each front end (CLI, console) can map them to its own
exit codes or messages without knowing which module raised them."""

from __future__ import annotations


class GovernanceError(Exception):
    """Base: an expected, one-line failure of a governance rule or input."""


class BadInput(GovernanceError):
    """A malformed file, value or argument (CLI exit 2)."""


class NotFound(GovernanceError):
    """Unknown agent, role, version, incident, runbook (CLI exit 3)."""


class Conflict(GovernanceError):
    """Duplicate name, self sign-off, a state that forbids the change (CLI exit 4)."""


class Unreachable(GovernanceError):
    """An agent endpoint did not answer or refused the call (CLI exit 5)."""


class DatabaseProblem(GovernanceError):
    """The file is missing, corrupt, too new, or not a governance DB (CLI exit 6)."""


class KeyProblem(GovernanceError):
    """The audit key is missing, unreadable or not the one the DB's chain was keyed with
    (CLI exit 7): the keyed audit chain can be neither checked nor extended."""


class ReadOnly(DatabaseProblem):
    """A change asked of a DB that can only be read (read-only file, directory or
    filesystem); reads still work (CLI exit 6)."""


class NotReady(GovernanceError):
    """A check said no, e.g. promoting a release that fails the gate (CLI exit 1)."""
