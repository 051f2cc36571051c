"""The single-writer rule: one process writes a records DB at a time; the second refuses.

Two watchers on one records DB would both record every session (idempotently, but with twice
the work and racing prunes), so the second one refuses to start instead. The lock is an
advisory `flock` on `<db>.writer.lock`, held for as long as the writer is open. The kernel
drops it when the process dies, even by `kill -9`, so a crashed watcher never leaves a stale
lock behind. Readers (`agentops sessions list|show|export`) take no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from .errors import WriterBusy


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".writer.lock")


class WriterLock:
    """Held from `acquire()` until `release()` (or the process ends)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.path = lock_path(db_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise WriterBusy(f"cannot create the writer lock {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise WriterBusy(
                f"{self.db_path} is already being written by"
                f" another process{holder}; only one writer (watcher or import) at a time",
                holder,
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""
