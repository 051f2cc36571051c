"""What connection workers tell the app: dataclass Textual messages.

Events themselves go straight into the store (posting one message per event would cost
more than applying it); messages are only for changes an operator should notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from textual.message import Message


@dataclass(eq=False)
class AgentLive(Message):
    """The agent answered; `snapshot` says why a full snapshot was (re)loaded, if one was."""

    source: str
    snapshot: Literal["first", "gap", "restart", "resumed"]


@dataclass(eq=False)
class AgentStale(Message):
    """The agent stopped answering; its rows are frozen until it is back."""

    source: str
    error: str
    retries: int
    retry_in_s: float


@dataclass(eq=False)
class ActionDone(Message):
    """An operator action finished (sent to the agent, answer known, audit written)."""

    ok: bool
    message: str
