"""The audit key: a secret kept outside the DB file that keys the audit chain (HMAC-SHA256).

Whoever has only the DB file can edit rows and recompute plain SHA-256 hashes, but cannot
make keyed hashes, a keyed head or a signed checkpoint. The key lives in its own file
(0600, default `<platformdirs user config dir>/agentops/audit.key`, or
AGENTOPS_AUDIT_KEY_FILE), created by `agentops init` or by the first keyed write.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from .errors import KeyProblem

ENV = "AGENTOPS_AUDIT_KEY_FILE"
_KEY_BYTES = 32


def default_key_path() -> Path:
    """AGENTOPS_AUDIT_KEY_FILE, else the per-user config dir (platformdirs)."""
    from_env = os.environ.get(ENV, "").strip()
    if from_env:
        return Path(from_env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("agentops", appauthor=False)) / "audit.key"


def load(path: Path) -> bytes | None:
    """The key in `path`; None when there is no such file. A file that is there but not
    a key is a KeyProblem: guessing would fork the chain."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyProblem(f"cannot read the audit key {path}: {exc}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != _KEY_BYTES:
        raise KeyProblem(f"{path} is not an audit key ({_KEY_BYTES * 2} hex digits expected)")
    return key


def load_or_create(path: Path) -> tuple[bytes, bool]:
    """The key in `path`, made (0600, in a 0700 directory) when absent; (key, created).

    Written to a temporary file and linked into place, so two processes creating it at
    once agree on one key and nobody ever reads a half-written file.
    """
    key = load(path)
    if key is not None:
        return key, False
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_bytes(_KEY_BYTES).hex() + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, path)
            created = True
        except FileExistsError:
            created = False  # another process won the race: use its key
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    except OSError as exc:
        raise KeyProblem(f"cannot create the audit key {path}: {exc.strerror}") from None
    key = load(path)
    if key is None:
        raise KeyProblem(f"the audit key {path} vanished while it was being created")
    return key, created


def key_id(key: bytes) -> str:
    """A public name for the key (it reveals nothing about it): which key keyed a log."""
    return hmac.digest(key, b"agentops-audit-key-id", "sha256").hex()[:16]


def mac(key: bytes, text: str) -> str:
    return hmac.digest(key, text.encode("utf-8"), "sha256").hex()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
