"""Validation of the names people type: agents, versions, env vars, roles."""

from __future__ import annotations

import re

from .errors import BadInput, NotFound

ROLES: tuple[str, ...] = ("product", "security", "platform", "applied-ai", "operations")
RISKS: tuple[str, ...] = ("high", "medium", "low")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
_WORKFLOW = re.compile(r"^[^\s/]{1,200}$")


def agent_name(value: str) -> str:
    if not _NAME.match(value):
        raise BadInput(
            f"invalid agent name {value!r}: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def version(value: str) -> str:
    if not _NAME.match(value):
        raise BadInput(f"invalid version {value!r}")
    return value


def env_var(value: str) -> str:
    if not _ENV.match(value):
        raise BadInput(f"invalid environment variable name {value!r}")
    return value


def workflow(value: str) -> str:
    if not _WORKFLOW.match(value):
        raise BadInput(f"invalid workflow name {value!r}")
    return value


def role(value: str) -> str:
    if value not in ROLES:
        raise NotFound(f"unknown role {value!r}; roles: {', '.join(ROLES)}")
    return value


def risk(value: str) -> str:
    if value not in RISKS:
        raise BadInput(f"invalid risk {value!r}; use {', '.join(RISKS)}")
    return value


def endpoint(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInput(f"invalid endpoint {value!r}: use http://host:port or https://host")
    return value.rstrip("/")


def person(value: str) -> str:
    cleaned = value.strip()
    if not cleaned or len(cleaned) > 200 or any(ch in cleaned for ch in "\r\n\t"):
        raise BadInput(f"invalid person {value!r}")
    return cleaned
