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


def tokens(
    tokens_in: int, tokens_out: int, cache_read: int = 0, cache_write: int = 0, reasoning: int = 0
) -> str:
    """`1200/300` and, when the provider bills parts apart, `c800 w100 r120`: cached input
    read, cache writes and reasoning are what make two calls of one size cost differently."""
    if not (tokens_in or tokens_out):
        return ""
    parts = [
        f"{tag}{count(value)}"
        for tag, value in (("c", cache_read), ("w", cache_write), ("r", reasoning))
        if value
    ]
    text = f"{count(tokens_in)}/{count(tokens_out)}"
    return f"{text} {' '.join(parts)}" if parts else text


def cost_split(parts: dict[str, float]) -> str:
    """`input $0.0012  cached $0.0001  output $0.0030`: only the parts that cost something."""
    labels = {"cache_read": "cached", "cache_write": "cache writes", "request": "per request"}
    return "  ".join(
        f"{labels.get(name, name)} {usd(value)}" for name, value in parts.items() if value
    )
