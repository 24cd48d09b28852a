"""How late PINGs reached the mock, from its record of each PING's arrival per connection.

Two readings of the same record ``[(connection, arrived), ...]`` (``time.monotonic()``):

- ``lags``, fixed grid: the scheduler keeps start + k * interval, so per connection each
  arrival minus k intervals is constant on an idle machine; its excess over that
  connection's earliest such offset is how late the PING came. It assumes the grid.
- ``gaps``, grid-free: per connection, each PING's arrival minus (the previous PING's
  arrival on the same connection + the interval). It assumes nothing about the scheduler:
  0 when PINGs keep their interval, positive when one came late (or a slot was skipped),
  negative when one came early (the PING after a late one on a fixed grid).

Each value is filed under every window (name -> (start, end)) that holds its arrival.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable

from benchmarks.common import summary

GAP_LIMIT_MS = 100.0

Windows = dict[str, tuple[float, float]]


def _by_connection(pings: Iterable[tuple[int, float]]) -> list[list[float]]:
    by_conn: dict[int, list[float]] = defaultdict(list)
    for conn, when in pings:
        by_conn[conn].append(when)
    return [sorted(times) for times in by_conn.values()]


def _file(out: dict[str, list[float]], windows: Windows, when: float, value: float) -> None:
    for name, (start, end) in windows.items():
        if start <= when <= end:
            out[name].append(value)


def lags(
    pings: Iterable[tuple[int, float]], interval: float, windows: Windows
) -> dict[str, list[float]]:
    """Fixed-grid lag (seconds) of each PING, by window (see the module docstring)."""
    out: dict[str, list[float]] = {name: [] for name in windows}
    for times in _by_connection(pings):
        if len(times) < 2:
            continue
        offsets = [t - round((t - times[0]) / interval) * interval for t in times]
        base = min(offsets)
        for t, offset in zip(times, offsets, strict=True):
            _file(out, windows, t, offset - base)
    return out


def gaps(
    pings: Iterable[tuple[int, float]], interval: float, windows: Windows
) -> dict[str, list[float]]:
    """Grid-free gap (seconds) of each PING after its connection's previous one, by window."""
    out: dict[str, list[float]] = {name: [] for name in windows}
    for times in _by_connection(pings):
        for previous, arrived in itertools.pairwise(times):
            _file(out, windows, arrived, arrived - (previous + interval))
    return out


def gap_summary(values: list[float], limit_ms: float = GAP_LIMIT_MS) -> dict[str, float | int]:
    """n, median, p99, max... of gaps in ms, and the share of gaps over ``limit_ms``."""
    out = summary(values, 1000)
    if values:
        out["over_limit_fraction"] = sum(1 for v in values if v * 1000 > limit_ms) / len(values)
        out["limit_ms"] = limit_ms
    return out
