"""Event-time windows on integer milliseconds, aligned to the epoch.

An event updates one bucket per bucket width (the gcd of a window's size and step); a hopping
window is the sum of the buckets it covers, built only when a snapshot is. Intervals are
half-open: a window [start, end) holds start and not end.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration_ms(text: str | float | int) -> int:
    """``"15m"`` → 900000; a bare number is seconds (the unit of every ``*_SECONDS`` setting)."""
    if isinstance(text, (int, float)):
        return int(round(float(text) * 1000))
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 1h, 1d)")
    number, unit = match.groups()
    return int(round(float(number) * _UNIT_MS[unit or "s"]))


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A named window: ``step_ms == size_ms`` is tumbling."""

    name: str
    size_ms: int
    step_ms: int

    @property
    def bucket_ms(self) -> int:
        return math.gcd(self.size_ms, self.step_ms)

    def rolling(self, watermark_ms: int) -> tuple[int, int]:
        """The rolling view: the window whose end is the first step boundary after the watermark."""
        end = (watermark_ms // self.step_ms + 1) * self.step_ms
        return end - self.size_ms, end

    def ends_between(self, after_ms: int, upto_ms: int, lo_ms: int, hi_ms: int) -> list[int]:
        """Ends E of windows with after < E <= upto that overlap the data span [lo, hi)."""
        first = max(after_ms + 1, lo_ms + 1)
        last = min(upto_ms, hi_ms - 1 + self.size_ms)
        if first > last:
            return []
        start = -(-first // self.step_ms) * self.step_ms
        return list(range(start, last + 1, self.step_ms))


def parse_windows(text: str) -> tuple[WindowSpec, ...]:
    """``"15m:15m:1m,1h:1h:5m"`` → specs; the name is free text, size and step are durations."""
    specs = []
    for part in text.split(","):
        if not part.strip():
            continue
        fields = [f.strip() for f in part.split(":")]
        if len(fields) != 3:
            raise ValueError(f"window {part!r}: expected name:size:step, e.g. 15m:15m:1m")
        name, size, step = fields[0], parse_duration_ms(fields[1]), parse_duration_ms(fields[2])
        if size <= 0 or step <= 0 or step > size:
            raise ValueError(f"window {name!r}: size and step must be > 0 and step <= size")
        specs.append(WindowSpec(name, size, step))
    if not specs or len({s.name for s in specs}) != len(specs):
        raise ValueError("windows: give at least one, with distinct names")
    return tuple(specs)


def bucket_start(event_ms: int, bucket_ms: int) -> int:
    return event_ms - event_ms % bucket_ms


def bucket_widths(specs: tuple[WindowSpec, ...]) -> tuple[int, ...]:
    """The distinct bucket widths an event must update, one bucket each."""
    return tuple(sorted({s.bucket_ms for s in specs}))


def bucket_retention_ms(specs: tuple[WindowSpec, ...], width_ms: int) -> int:
    """How long after its start a bucket can still be part of an unclosed window."""
    return max(s.size_ms for s in specs if s.bucket_ms == width_ms)
