"""Records failures, as kinds of the governance ones so every CLI maps them to the same
documented exit codes (6 database problem, 3 not found, 2 bad input)."""

from __future__ import annotations

from ..governance.errors import BadInput, DatabaseProblem, NotFound


class RecordsProblem(DatabaseProblem):
    """The records DB is missing, corrupt, foreign, too new, or cannot be written."""


class WriterBusy(RecordsProblem):
    """Another process holds the records DB's single-writer lock."""

    def __init__(self, message: str, holder: str | None = None) -> None:
        super().__init__(message)
        #: " (pid N)", or "" when the lock file does not name its holder; None when the
        #: lock file could not be made (so nobody is known to hold it).
        self.holder = holder


class SessionNotFound(NotFound):
    """No recorded session with that id (for that agent)."""


class AmbiguousSession(BadInput):
    """The id is recorded for more than one agent; `--agent` picks one."""
