"""One table shape for every bench: the project's number beside a baseline measured in the
same run, their ratio, the target and whether it is met.

A box shared with other work drifts by tens of percent between runs, so targets are
ratios against a baseline taken in the same run wherever one exists; an absolute limit can
sit beside the ratio. `rounds` gives the median of per-round medians, the figure each row
should carry.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Figure:
    """One row. Targets left as None are not checked; a row without any is informational.

    `ratio` is value / baseline, unless `ratio_override` is given (a median of per-round
    ratios is steadier than the ratio of two medians on a noisy box).
    """

    name: str
    value: float
    unit: str = "µs"
    baseline: float | None = None
    baseline_name: str = ""
    max_ratio: float | None = None
    min_ratio: float | None = None
    max_value: float | None = None
    min_value: float | None = None
    ratio_override: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.ratio_override is not None:
            return self.ratio_override
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def target(self) -> str:
        parts: list[str] = []
        if self.max_ratio is not None:
            parts.append(f"≤ {self.max_ratio:g}×")
        if self.min_ratio is not None:
            parts.append(f"≥ {self.min_ratio:g}×")
        if self.max_value is not None:
            parts.append(f"≤ {_number(self.max_value)} {self.unit}")
        if self.min_value is not None:
            parts.append(f"≥ {_number(self.min_value)} {self.unit}")
        return ", ".join(parts) or "—"

    @property
    def ok(self) -> bool | None:
        """True or False against the targets; None when the row sets none."""
        checks: list[bool] = []
        ratio = self.ratio
        if self.max_ratio is not None:
            checks.append(ratio is not None and ratio <= self.max_ratio)
        if self.min_ratio is not None:
            checks.append(ratio is not None and ratio >= self.min_ratio)
        if self.max_value is not None:
            checks.append(self.value <= self.max_value)
        if self.min_value is not None:
            checks.append(self.value >= self.min_value)
        return all(checks) if checks else None


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def render(title: str, figures: Sequence[Figure]) -> str:
    """The table as text: measure, value, baseline (named), ratio, target, ok."""
    header = ("measure", "value", "baseline", "ratio", "target", "ok")
    rows: list[tuple[str, ...]] = []
    for f in figures:
        ratio = f.ratio
        ok = f.ok
        rows.append(
            (
                f.name,
                f"{_number(f.value)} {f.unit}",
                f"{_number(f.baseline)} {f.unit} {f.baseline_name}".rstrip()
                if f.baseline is not None
                else "—",
                f"{ratio:.2f}×" if ratio is not None else "—",
                f.target,
                "—" if ok is None else ("ok" if ok else "NOT OK"),
            )
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    align: list[Callable[[str, int], str]] = [
        str.ljust,
        str.rjust,
        str.ljust,
        str.rjust,
        str.ljust,
        str.ljust,
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(align[i](c, widths[i]) for i, c in enumerate(cells)).rstrip()

    out = [title, line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def print_table(title: str, figures: Sequence[Figure]) -> bool:
    """Print the table; True when every checked row is ok."""
    print(render(title, figures), flush=True)
    return all(f.ok is not False for f in figures)


def median_of_rounds(rounds: Sequence[Sequence[float]]) -> float:
    """The median of each round's median: one slow round (another process woke up) moves
    it far less than it moves a mean or a pooled median."""
    return statistics.median(statistics.median(r) for r in rounds if r)


def spread(values: Sequence[float], digits: int = 1) -> str:
    """`median (min to max)` of a row's rounds, for the line printed beside the table."""
    return (
        f"{statistics.median(values):.{digits}f}"
        f" ({min(values):.{digits}f}–{max(values):.{digits}f})"
    )
