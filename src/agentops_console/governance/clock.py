"""Timestamps as the DB stores them: ISO-8601 UTC text, which sorts in time order."""

from __future__ import annotations

from datetime import UTC, datetime

from .errors import BadInput


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Microsecond precision keeps rows written in the same second in order."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def now_iso() -> str:
    return iso(utcnow())


def parse_ts(text: str) -> datetime:
    """An operator-given time; a bare time without zone is taken as UTC."""
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadInput(f"invalid time {text!r}: use ISO 8601, e.g. 2025-05-01T09:30:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
