"""Records failures, as kinds of the governance ones so every CLI maps them to the same
documented exit codes (6 database problem, 3 not found, 2 bad input)."""

from __future__ import annotations

from ..governance.errors import BadInput, DatabaseProblem, NotFound


class RecordsProblem(DatabaseProblem):
    """The records DB is missing, corrupt, foreign, too new, or cannot be written."""


class WriterBusy(RecordsProblem):
    """Another process holds the records DB's single-writer lock."""


class SessionNotFound(NotFound):
    """No recorded session with that id (for that agent)."""


class AmbiguousSession(BadInput):
    """The id is recorded for more than one agent; `--agent` picks one."""
