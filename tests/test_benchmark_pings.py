"""The scale benchmark's readings of the mock's PING record (benchmarks/pings.py)."""

from __future__ import annotations

import pytest

from benchmarks import pings

EVERYWHERE = {"all": (0.0, 1e9)}


def test_gap_is_arrival_minus_previous_arrival_plus_interval() -> None:
    """Each gap is the PING's arrival minus its connection's previous arrival plus the interval."""
    record = [(1, 100.0), (1, 110.0), (1, 120.25), (1, 130.0)]
    assert pings.gaps(record, 10.0, EVERYWHERE)["all"] == pytest.approx([0.0, 0.25, -0.25])


def test_gaps_never_pair_pings_of_different_connections() -> None:
    """Interleaved connections are paired per connection, and a lone PING yields no gap."""
    record = [(1, 100.0), (2, 103.0), (1, 110.5), (2, 113.0), (3, 105.0)]
    assert sorted(pings.gaps(record, 10.0, EVERYWHERE)["all"]) == pytest.approx([0.0, 0.5])


def test_gaps_are_filed_by_the_window_holding_the_later_arrival() -> None:
    """A gap belongs to the window in which its PING arrived, not the one before."""
    record = [(1, 0.0), (1, 10.0), (1, 20.3), (1, 30.3)]
    windows = {"quiet": (0.0, 15.0), "scrapes": (15.0, 35.0)}
    got = pings.gaps(record, 10.0, windows)
    assert got["quiet"] == pytest.approx([0.0])
    assert got["scrapes"] == pytest.approx([0.3, 0.0])


def test_fixed_grid_lag_and_gap_differ_after_a_late_ping() -> None:
    """A late PING on a fixed grid lags once, while the gap shows it late then the next early."""
    record = [(7, 0.0), (7, 10.2), (7, 20.0)]
    assert pings.lags(record, 10.0, EVERYWHERE)["all"] == pytest.approx([0.0, 0.2, 0.0])
    assert pings.gaps(record, 10.0, EVERYWHERE)["all"] == pytest.approx([0.2, -0.2])


def test_gap_summary_reports_milliseconds_and_the_share_over_the_limit() -> None:
    """The summary is in ms, and counts the share of gaps strictly over 100 ms."""
    out = pings.gap_summary([0.0, 0.05, 0.1, 0.15])
    assert out["n"] == 4
    assert out["max"] == pytest.approx(150.0)
    assert out["over_limit_fraction"] == pytest.approx(0.25)
    assert pings.gap_summary([]) == {"n": 0}
