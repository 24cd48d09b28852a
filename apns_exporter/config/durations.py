"""Prometheus-style durations ("500ms", "1h30m") to and from float seconds."""

from __future__ import annotations

import math
import re

# Prometheus' model.ParseDuration units, largest first; a duration lists each at most once.
_UNITS = {
    "y": 365 * 86400.0,
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}
_PATTERN = re.compile("".join(rf"(?:(?P<{u}>[0-9]+){u})?" for u in _UNITS))
EXAMPLES = "500ms, 10s, 5m, 1h30m, or a number of seconds"


def parse_duration(value: object) -> float:
    """Seconds from a duration string or a plain number; ValueError says what is accepted."""
    # bool is an int subclass, and `interval: yes` is a typo, not one second.
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError(f"duration must be finite (use {EXAMPLES})")
        return seconds
    if not isinstance(value, str):
        raise ValueError(f"expected a duration ({EXAMPLES})")
    match = _PATTERN.fullmatch(value.strip())
    if not value.strip() or match is None:
        if _is_number(value):
            raise ValueError(
                f"invalid duration {value!r}: a number in quotes is a string, and a duration "
                f"string needs a unit; write {format_duration(float(value))}, "
                f"or {value.strip()} without quotes"
            )
        raise ValueError(f"invalid duration {value!r} (use {EXAMPLES})")
    return sum(int(n) * _UNITS[u] for u, n in match.groupdict().items() if n is not None)


def format_duration(seconds: float) -> str:
    """The shortest Prometheus-style spelling of ``seconds`` ("1h30m", "500ms"), for messages."""
    millis = round(seconds * 1000)
    if seconds == 0:
        return "0s"
    # Negative or sub-millisecond values have no Prometheus spelling; show plain seconds.
    if millis <= 0 or not math.isclose(millis, seconds * 1000, rel_tol=1e-12, abs_tol=1e-6):
        return f"{seconds:g}s"
    parts = []
    for unit, size in _UNITS.items():
        count, millis = divmod(millis, round(size * 1000))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
