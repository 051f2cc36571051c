"""Validation of the names people type: agents, versions, env vars, roles."""

from __future__ import annotations

import re

from .errors import BadInput, NotFound

ROLES: tuple[str, ...] = ("product", "security", "platform", "applied-ai", "operations")
RISKS: tuple[str, ...] = ("high", "medium", "low")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
_WORKFLOW = re.compile(r"^[^\s/]{1,200}$")


def shown(value: object, limit: int = 60) -> str:
    """A value as an error message may echo it: repr'd (no control characters reach the
    terminal) and cut short, since it may be a megabyte of garbage."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(value: object, pattern: re.Pattern[str]) -> str | None:
    """`value` if it is a string the pattern accepts; files can hold any TOML type."""
    return value if isinstance(value, str) and pattern.match(value) else None


def agent_name(value: object) -> str:
    if (ok := _text(value, _NAME)) is None:
        raise BadInput(
            f"invalid agent name {shown(value)}: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return ok


def version(value: object) -> str:
    if (ok := _text(value, _NAME)) is None:
        raise BadInput(f"invalid version {shown(value)}")
    return ok


def env_var(value: object) -> str:
    if (ok := _text(value, _ENV)) is None:
        raise BadInput(f"invalid environment variable name {shown(value)}")
    return ok


def workflow(value: object) -> str:
    if (ok := _text(value, _WORKFLOW)) is None or not ok.isprintable():
        raise BadInput(f"invalid workflow name {shown(value)}")
    return ok


def role(value: object) -> str:
    if not isinstance(value, str) or value not in ROLES:
        raise NotFound(f"unknown role {shown(value)}; roles: {', '.join(ROLES)}")
    return value


def risk(value: object) -> str:
    if not isinstance(value, str) or value not in RISKS:
        raise BadInput(f"invalid risk {shown(value)}; use {', '.join(RISKS)}")
    return value


def endpoint(value: object) -> str:
    from urllib.parse import urlsplit

    if not isinstance(value, str) or not value.isprintable() or len(value) > 2000:
        raise BadInput(f"invalid endpoint {shown(value)}: use http://host:port or https://host")
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInput(f"invalid endpoint {shown(value)}: use http://host:port or https://host")
    return value.rstrip("/")


def person(value: object) -> str:
    """People also arrive from --as and AGENTOPS_OPERATOR, and land in the audit log: no
    control characters, no padding, a sane length."""
    cleaned = value.strip() if isinstance(value, str) else ""
    if not cleaned or len(cleaned) > 200 or not cleaned.isprintable():
        raise BadInput(f"invalid person {shown(value)}")
    return cleaned


def tenant(value: object) -> str | None:
    """Optional; shown in the console and the audit log, so printable and short."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.isprintable() or len(value) > 200:
        raise BadInput(f"invalid tenant {shown(value)}")
    return value
