"""The goals table of docs/performance.md, computed from results files (benchmarks/goals.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import goals, tables


def _gap(p99: float) -> dict[str, Any]:
    return {"n": 100, "median": 1.0, "p99": p99, "max": p99 + 5, "over_limit_fraction": 0.0}


def _scale_row(**overrides: Any) -> dict[str, Any]:
    row = {
        "targets": 10_000,
        "ping_interval": "10s",
        "canary_interval": "60s",
        "ready_seconds": 30.0,
        "first_round_seconds": 110.0,
        "first_round_budget_seconds": 120.0,
        "targets_up_after_first_round": 10_000,
        "ping_gap_quiet_ms": _gap(40.0),
        "ping_gap_scrapes_ms": _gap(250.0),
        "ping_lag_quiet_ms": {"p99": 41.0},
        "ping_lag_scrapes_ms": {"p99": 251.0},
        "scrape_quiet_seconds_median": 0.2,
        "scrape_quiet_seconds_max": 0.9,
        "scrape_seconds_median": 0.3,
        "scrape_seconds_max": 1.8,
        "rss_kib_per_target": 150.0,
        "series_per_target": 61,
        "series_inventory_only_target": 4,
    }
    return {**row, **overrides}


def _statuses(results: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The goals table read back as figure -> status (the last cell)."""
    monkeypatch.setattr(tables, "RESULTS", results)
    lines = goals.goals().splitlines()[2:]
    return {
        cells[0]: cells[-1]
        for cells in ([c.strip() for c in ln.strip("|").split("|")] for ln in lines)
    }


def _write(results: Path, name: str, data: dict[str, Any]) -> None:
    (results / f"{name}.json").write_text(json.dumps(data))


def test_each_goal_is_met_or_not_from_its_own_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each row's verdict follows its figure against its threshold, row by row."""
    small = {"targets": 100, **{k: v for k, v in _scale_row().items() if k != "targets"}}
    _write(tmp_path, "scale", {"rows": [small, _scale_row()]})
    canary = {"cpu_ms_per_probe": 0.5}
    _write(
        tmp_path,
        "cost",
        {
            "apns_exporter": {"canary": canary, "ping": {"cpu_ms_per_probe": 0.14}},
            "blackbox_exporter": {"cpu_ms_per_probe": 2.4},
        },
    )
    _write(
        tmp_path,
        "latency",
        {
            "apns_exporter": {"error_vs_observed_ms": {"median": 1.9}},
            "h2load": {"error_vs_observed_ms": {"median": 1.3}},
        },
    )
    got = _statuses(tmp_path, monkeypatch)
    assert got["all up after start (10000 targets)"] == "met"
    assert got["PING gap, quiet (10000 targets)"] == "met"
    assert got["PING gap, during back-to-back scrapes (10000 targets)"] == "**not met**"
    assert got["/metrics scrape (10000 targets)"] == "met"
    assert got["series per full target (inventory_only)"] == "**not met**"
    assert got["CPU per canary, kept connection"] == "**not met**"  # 1/4.8 of blackbox
    assert got["CPU per PING, kept connection"] == "met"
    assert got["canary latency error, median"] == "**not met**"  # 0.6 ms over h2load
    assert got["steady-state RSS per target"] == "not measured"


def test_late_first_round_and_missing_results_are_reported_not_met_or_not_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A late first round is not met, absent results "not measured"; RSS counts at 10 000 only."""
    _write(tmp_path, "scale", {"rows": [_scale_row(first_round_seconds=125.0)]})
    _write(tmp_path, "steady", {"kib_per_target": 96.0, "method": {"targets": 1000}})
    got = _statuses(tmp_path, monkeypatch)
    assert got["all up after start (10000 targets)"] == "**not met**"
    assert got["CPU per PING, kept connection"] == "not measured"
    assert got["canary latency error, median"] == "not measured"
    # Under the bound, but measured at a tenth of the size the goal names.
    assert got["steady-state RSS per target"] == "**not met**"
    _write(tmp_path, "steady", {"kib_per_target": 96.0, "method": {"targets": 10_000}})
    assert _statuses(tmp_path, monkeypatch)["steady-state RSS per target"] == "met"
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    assert "96 KiB per target at 10000 targets" in goals.goals()
