"""How numbers and times read on screen: short, fixed-width friendly, deterministic."""

from __future__ import annotations

from datetime import datetime


def age(since: datetime | None, now: datetime) -> str:
    """`42s`, `7m05s`, `3h12m`, `2d04h`; never negative (clocks of two hosts disagree)."""
    if since is None:
        return "-"
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def usd(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"${value:,.0f}"
    if value >= 1:
        return f"${value:.2f}"
    return f"${value:.4f}"


def cost_vs_budget(cost: float, limit: float | None) -> str:
    """`$0.4200/$2.00 21%` so an operator sees at once how close a session is to its stop."""
    if limit is None or limit <= 0:
        return usd(cost)
    return f"{usd(cost)}/{usd(limit)} {cost / limit:.0%}"


def count(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return str(value)


def clock_time(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%H:%M:%S")


def millis(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 10_000:
        return f"{value / 1000:.1f}s"
    return f"{value:.0f}ms"
