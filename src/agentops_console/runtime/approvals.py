"""Human checkpoints: a tool call waits here until an operator answers or time runs out.

A waiter may be a thread (sync agents) or a coroutine (asyncio agents); the decision comes
from the endpoint's thread, so each pending approval wakes threads with a
`threading.Event` and coroutines with `call_soon_threadsafe` on their own loop. No thread
is created for waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from ..protocol.models import Approval, ApprovalDecision
from .spans import jsonable

Status = Literal["pending", "approved", "denied", "expired"]

#: Decided approvals remembered so a second answer gets 409, not 404.
_DECIDED_KEPT = 1000


@dataclass(slots=True)
class PendingApproval:
    id: str
    session_id: str
    workflow: str
    principal: str
    tool: str
    arguments: Any
    reason: str
    requested_at: float
    expires_at: float
    status: Status = "pending"
    decided_by: str | None = None
    decision_reason: str | None = None
    decided_at: float | None = None
    _event: threading.Event = field(default_factory=threading.Event, repr=False)
    _futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(
        default_factory=list, repr=False
    )

    def to_model(self) -> Approval:
        def at(ts: float | None) -> datetime | None:
            return None if ts is None else datetime.fromtimestamp(ts, UTC)

        return Approval(
            id=self.id,
            session_id=self.session_id,
            workflow=self.workflow,
            principal=self.principal,
            tool=self.tool,
            arguments=self.arguments,
            reason=self.reason,
            requested_at=datetime.fromtimestamp(self.requested_at, UTC),
            expires_at=datetime.fromtimestamp(self.expires_at, UTC),
            status=self.status,
            decided_by=self.decided_by,
            decision_reason=self.decision_reason,
            decided_at=at(self.decided_at),
        )

    def _wake(self) -> None:
        self._event.set()
        # a copy: waiters on other threads add and remove themselves meanwhile
        for loop, future in list(self._futures):
            # the waiter's loop may be gone (asyncio.run ended): nobody left to wake
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)

    def wait(self) -> Status:
        """Block the calling thread until decided or expired."""
        self._event.wait(max(0.0, self.expires_at - time.time()))
        return self.status

    async def wait_async(self) -> Status:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._futures.append((loop, future))
        try:
            if self._event.is_set():
                return self.status
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, max(0.0, self.expires_at - time.time()))
            return self.status
        finally:
            self._futures.remove((loop, future))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ApprovalBook:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._items: OrderedDict[str, PendingApproval] = OrderedDict()
        self._lock = threading.Lock()

    def request(
        self,
        session_id: str,
        workflow: str,
        principal: str,
        tool: str,
        arguments: Any,
        reason: str,
    ) -> PendingApproval:
        now = time.time()
        approval = PendingApproval(
            id=uuid.uuid4().hex[:12],
            session_id=session_id,
            workflow=workflow,
            principal=principal,
            tool=tool,
            arguments=jsonable(arguments),  # served as JSON to every operator: never fails
            reason=reason,
            requested_at=now,
            expires_at=now + self.timeout_s,
        )
        with self._lock:
            self._items[approval.id] = approval
            self._trim()
        return approval

    def _trim(self) -> None:
        decided = [k for k, v in self._items.items() if v.status != "pending"]
        for key in decided[: max(0, len(decided) - _DECIDED_KEPT)]:
            del self._items[key]

    def pending(self) -> list[PendingApproval]:
        with self._lock:
            return [a for a in self._items.values() if a.status == "pending"]

    def get(self, approval_id: str) -> PendingApproval | None:
        return self._items.get(approval_id)

    def decide(self, approval_id: str, decision: ApprovalDecision) -> PendingApproval | None:
        """None for an unknown id; ValueError when it was already decided or expired."""
        with self._lock:
            approval = self._items.get(approval_id)
            if approval is None:
                return None
            if approval.status != "pending":
                raise ValueError(f"approval {approval_id} is already {approval.status}")
            approval.status = "approved" if decision.decision == "approve" else "denied"
            approval.decided_by = decision.operator
            approval.decision_reason = decision.reason
            approval.decided_at = time.time()
        approval._wake()
        return approval

    def expire(self, approval: PendingApproval) -> bool:
        """Mark an unanswered approval expired; False when an answer won the race."""
        with self._lock:
            if approval.status != "pending":
                return False
            approval.status = "expired"
            approval.decided_at = time.time()
        approval._wake()
        return True

    def cancel_session(self, session_id: str, operator: str, reason: str) -> None:
        """A killed session's checkpoints are denied so its waiting call returns now."""
        for approval in self.pending():
            if approval.session_id == session_id:
                self.decide(
                    approval.id,
                    ApprovalDecision(
                        decision="deny", operator=operator, reason=reason or "session killed"
                    ),
                )

    def close(self) -> None:
        for approval in self.pending():
            self.expire(approval)
