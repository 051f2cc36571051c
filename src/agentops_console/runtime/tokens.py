"""Endpoint tokens: every endpoint has a control token, generated when none is given.

An endpoint without a token was open to any web page in the operator's browser (a
cross-origin POST killed sessions), so there is no tokenless mode. A generated token is
written to a 0600 file in a per-user directory, and its path, never the token, is printed
once on stderr, so the operator can hand it to the console without it reaching any log.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sys
import tempfile
from pathlib import Path

#: Bytes of randomness in a generated token (URL-safe base64 of 32 bytes: 43 characters).
TOKEN_BYTES = 32


def checked_token(value: str | None, what: str) -> str | None:
    """None stays None (not given); an empty or blank token is a mistake, not "no auth"."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string (leave it out to generate one)")
    if value != value.strip() or any(ord(c) < 0x21 or ord(c) > 0x7E for c in value):
        raise ValueError(f"{what} must be printable ASCII without spaces")
    return value


def from_env(name: str | None, what: str) -> str | None:
    """The token held by the environment variable the config names, if it is set."""
    if not name:
        return None
    return checked_token(os.environ.get(name) or None, f"{what} (from ${name})")


def generate() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_dir() -> Path:
    """$XDG_RUNTIME_DIR/agentops (per-user, tmpfs, 0700 by spec), else a private temp dir."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and Path(runtime_dir).is_dir():
        return Path(runtime_dir) / "agentops"
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"agentops-{uid}"


def token_path(agent: str, port: int) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", agent)[:64] or "agent"
    return token_dir() / f"{safe}-{port}.token"


def write_token_file(agent: str, port: int, token: str) -> Path:
    """Write the token readable by this user only; the directory is made 0700."""
    path = token_path(agent, port)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # never write through a file (or link) someone else left there
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    return path


def announce(agent: str, url: str, path: Path | None) -> None:
    """One line on stderr saying where the generated token is (never the token itself)."""
    where = f"in {path}" if path is not None else "in rt.token (the file could not be written)"
    print(
        f"agentops: {agent} endpoint {url}: generated bearer token {where}; "
        "pass token= (or [endpoint] token_env) to choose one",
        file=sys.stderr,
        flush=True,
    )


def remove_token_file(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()
