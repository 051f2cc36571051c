"""Opening the governance DB and the one way to change it: `transaction()`.

Every mutation runs inside `GovernanceDB.transaction()`, which takes the write lock up
front (BEGIN IMMEDIATE, so concurrent writers queue on the busy timeout instead of failing
with "database is locked" on a lock upgrade) and refuses to commit unless the work
appended its audit row. A crash before COMMIT leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import audit, migrations
from .errors import DatabaseProblem, ReadOnly

#: Seconds a writer waits for the lock before giving up with a clear error.
BUSY_TIMEOUT_S = 30.0

#: Table and column names `Tx.insert` accepts: they go into the SQL text, values never do.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*\Z")


class Tx:
    """An open write transaction; `audit()` records what it did (required once)."""

    def __init__(self, conn: sqlite3.Connection, actor: str, key_file: Path | None) -> None:
        self.conn = conn
        self.actor = actor
        self.key_file = key_file
        self.audited: list[audit.AuditRow] = []
        self.no_change = False

    def unchanged(self) -> None:
        """The work found nothing to change; commit without an audit row."""
        self.no_change = True

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def insert(self, table: str, row: dict[str, Any], *, replace: bool = False) -> int:
        """Insert one row, its columns named by the dict's keys (the sqlite-utils idiom),
        inside this transaction; returns its rowid. The one INSERT of the registry,
        owners, releases and sign-offs, whoever writes them (commands or an import).

        sqlite-utils itself is not used here: loading it would cost every write command
        its import time, and its type coercion is not wanted for rows already typed.
        """
        names = (table, *row)
        bad = [n for n in names if not _IDENTIFIER.match(n)]
        if bad or not row:
            raise ValueError(f"not an insertable table or column name: {bad or table!r}")
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        sql = f"{verb} INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
        return int(self.conn.execute(sql, tuple(row.values())).lastrowid or 0)

    def audit(
        self,
        action: str,
        target: str,
        *,
        agent: str | None = None,
        details: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> audit.AuditRow:
        row = audit.append(
            self.conn,
            actor=actor or self.actor,
            action=action,
            target=target,
            agent=agent,
            details=details,
            key_file=self.key_file,
        )
        self.audited.append(row)
        return row


class GovernanceDB:
    """A connection to one governance DB file. Not thread-safe: one per thread."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        key_file: Path | None = None,
        read_only: str | None = None,
    ) -> None:
        self.conn = conn
        self.path = path
        #: The audit key's file; None: AGENTOPS_AUDIT_KEY_FILE or the per-user default.
        self.key_file = key_file
        #: Why the DB can only be read (None when it can be written).
        self.read_only = read_only

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> GovernanceDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, actor: str) -> Iterator[Tx]:
        """One mutation plus its audit row(s), all or nothing."""
        if self.read_only:
            raise ReadOnly(f"{self.path} is read-only ({self.read_only}); nothing was changed")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc):
                raise ReadOnly(f"{self.path} is read-only ({exc}); nothing was changed") from None
            raise DatabaseProblem(f"{self.path}: cannot start a write: {exc}") from None
        tx = Tx(self.conn, actor, self.key_file)
        try:
            yield tx
            if not tx.audited and not tx.no_change:
                raise RuntimeError("a governance mutation must append its audit row")
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def query_one(
        self, sql: str, params: tuple[Any, ...] | list[Any] = ()
    ) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def schema_version(self) -> int:
        return migrations.current_version(self.conn)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return conn


def read_only_reason(path: Path) -> str | None:
    """Why an existing DB file cannot be written, or None.

    os.access answers for the effective user and also honours read-only mounts and
    immutable files (chattr +i) even for root, for whom chmod alone stops nothing (and
    then the DB really can be written). A WAL-mode DB also needs its directory, for the
    -wal and -shm files, unless both already exist and can be written.
    """
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "read-only filesystem"
    except OSError:
        pass
    if not os.access(path, os.W_OK):
        return "the file cannot be written"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        sidecars = (path.with_name(path.name + s) for s in ("-wal", "-shm"))
        if not all(os.access(p, os.W_OK) for p in sidecars):
            return "its directory cannot be written"
    return None


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """SQLite's read-only mode; where even that needs a -shm file it cannot create (a WAL
    DB in a read-only directory), `immutable=1`: nobody can be writing it there."""
    uri = path.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
    return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)


def _check_is_governance(conn: sqlite3.Connection, path: Path, create: bool) -> None:
    """Any existing file must be one of ours before we touch it; an empty one (say, a
    stray `touch`) becomes a governance DB only when asked to create one."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.OperationalError as exc:  # it is there but cannot be read (permissions)
        raise DatabaseProblem(f"cannot read {path}: {exc}") from None
    except sqlite3.DatabaseError:
        raise DatabaseProblem(f"{path} is not a governance database (not SQLite)") from None
    if not tables:
        if create:
            return
        raise DatabaseProblem(
            f"{path} is empty, not a governance database; run `agentops init --db {path}`"
        )
    if "meta" not in tables or "schema_migrations" not in tables:
        raise DatabaseProblem(f"{path} is an SQLite file but not a governance database")
    row = conn.execute("SELECT value FROM meta WHERE key = 'application'").fetchone()
    if row is None or row[0] != migrations.APPLICATION:
        raise DatabaseProblem(f"{path} is an SQLite file but not a governance database")


def open_db(
    path: Path | str,
    *,
    create: bool = False,
    upgrade: bool = True,
    key_file: Path | None = None,
) -> GovernanceDB:
    """Open (or with `create`, make) the DB at `path`, upgrading an old schema in place.

    Raises DatabaseProblem with a one-line reason for a missing file, a file that is not
    a governance DB, or a schema newer than this code.
    """
    target = Path(path).expanduser()
    if not target.exists():
        if not create:
            raise DatabaseProblem(f"no governance database at {target}; run `agentops init`")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseProblem(f"cannot create {target.parent}: {exc.strerror}") from None
        if not os.access(target.parent, os.W_OK | os.X_OK):
            raise ReadOnly(f"cannot create {target}: its directory is read-only")
    elif target.is_dir():
        raise DatabaseProblem(f"{target} is a directory, not a governance database")
    read_only = read_only_reason(target) if target.exists() else None
    try:
        conn = _connect_read_only(target) if read_only else _connect(target)
    except sqlite3.Error as exc:
        raise DatabaseProblem(f"cannot open {target}: {exc}") from None
    try:
        _check_is_governance(conn, target, create)
        if read_only:
            _check_read_only_schema(conn, target, read_only)
            return GovernanceDB(conn, target, key_file, read_only)
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        version = migrations.current_version(conn)
        if version > migrations.LATEST:
            raise DatabaseProblem(
                f"{target} has schema v{version}, newer than this agentops "
                f"(v{migrations.LATEST}); upgrade agentops-console"
            )
        if version < migrations.LATEST:
            if version > 0 and not upgrade:
                raise DatabaseProblem(f"{target} has an old schema v{version}")
            migrations.migrate(conn)
    except DatabaseProblem:
        conn.close()
        raise
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise DatabaseProblem(f"{target}: {exc}") from None
    return GovernanceDB(conn, target, key_file)


def _check_read_only_schema(conn: sqlite3.Connection, target: Path, why: str) -> None:
    """A read-only DB cannot be upgraded in place, and this code reads only its own schema."""
    version = migrations.current_version(conn)
    if version > migrations.LATEST:
        raise DatabaseProblem(
            f"{target} has schema v{version}, newer than this agentops "
            f"(v{migrations.LATEST}); upgrade agentops-console"
        )
    if version == 0:
        raise ReadOnly(f"{target} is read-only ({why}): no governance DB can be created there")
    if version < migrations.LATEST:
        raise ReadOnly(
            f"{target} is read-only ({why}) and has the old schema v{version}; open it once"
            f" where it can be written to upgrade it to v{migrations.LATEST}"
        )
