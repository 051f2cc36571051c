"""What the endpoint checks on a request before any handler sees it, as plain functions.

A browser on the operator's machine can reach a loopback endpoint: a page can send
cross-origin "simple" requests (`text/plain` POSTs) and, through DNS rebinding, make its own
origin resolve to 127.0.0.1. So besides the bearer token the endpoint checks the `Host`
header against the address it is bound to, refuses any browser `Origin` not explicitly
allowed, and takes control bodies only as `application/json` (which a page cannot send
cross-origin without a CORS preflight the endpoint never grants).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterable
from typing import Literal

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")

Phase = Literal["active", "finished"]
PHASES: tuple[Phase, ...] = ("active", "finished")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::", "[::]")


def allowed_hosts(bound: str, port: int, extra: Iterable[str] = ()) -> frozenset[str] | None:
    """The `Host` values this endpoint answers; None when any is accepted (a wildcard bind
    with no names configured: the address a client used cannot be known)."""
    names: set[str] = set()
    if is_loopback(bound):
        names.update(LOOPBACK_NAMES)
    elif not is_wildcard(bound):
        names.add(f"[{bound}]" if ":" in bound else bound)
    names.update(h.strip().lower() for h in extra if h.strip())
    if not names:
        return None
    hosts = {name if _has_port(name) else f"{name}:{port}" for name in names}
    if port == 80:
        hosts.update(h[: -len(":80")] for h in list(hosts) if h.endswith(":80"))
    return frozenset(hosts)


def _has_port(name: str) -> bool:
    return bool(re.search(r":\d+$", name)) and not name.endswith("]")


def host_problem(header: str | None, allowed: frozenset[str] | None) -> str | None:
    if header is None or not header.strip():
        return "missing Host header"
    if allowed is not None and header.strip().lower() not in allowed:
        return f"Host {header.strip()[:100]!r} is not this endpoint"
    return None


def origin_problem(header: str | None, allowed: frozenset[str]) -> str | None:
    """A request with no Origin is not from a browser page; one with an Origin must be
    on the allow-list (empty by default: no page may call the endpoint)."""
    if header is None:
        return None
    if header.strip().rstrip("/").lower() in allowed:
        return None
    return f"Origin {header.strip()[:100]!r} is not allowed"


def normalize_origins(origins: Iterable[str]) -> frozenset[str]:
    return frozenset(o.strip().rstrip("/").lower() for o in origins if o.strip())


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


# A JSON string (unrolled loop: linear, no backtracking) and the structural brackets.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def json_too_deep(body: bytes, limit: int) -> bool:
    """Whether JSON text nests arrays/objects deeper than `limit`: checked before parsing,
    so no parser ever recurses on hostile input (Python's json raised RecursionError)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for bracket in _BRACKETS.findall(_STRING.sub(b"", body)):
        if bracket in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def encode_cursor(position: tuple[Phase, int]) -> str:
    phase, ordinal = position
    return base64.urlsafe_b64encode(f"{phase}:{ordinal}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Phase, int]:
    """ValueError for anything this endpoint did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("invalid cursor") from None
    phase, _, ordinal = raw.partition(":")
    if phase not in PHASES or not ordinal.isdigit() or len(ordinal) > 18:
        raise ValueError("invalid cursor")
    return ("active" if phase == "active" else "finished"), int(ordinal)
