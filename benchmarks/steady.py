"""Steady-state memory: RSS per target with full histories and thousands of pushes carried.

The same figure minutes after start is reported beside it, for comparison.

``python -m benchmarks steady`` runs the default size; ``python -m benchmarks.steady
--targets 10000`` the full one (see ``--help`` for the other bounds). Method:

- an empty exporter (one ``inventory_only`` target: a credential, no traffic) is started and
  its RSS read from ``/proc/<pid>/status`` once it is ready and idle: the baseline;
- then N targets against the mock (its own process), each with one kept connection, a PING
  and a canary push every ``interval`` (so each probe's result history fills within seconds);
- RSS is sampled every few seconds with the mock's request count, until every connection has
  carried ``pushes`` requests on average, or ``max_seconds`` passed;
- reported per target as (RSS at N - baseline RSS) / N, at ``early_seconds`` after the first
  round ("minutes after start") and at the end ("steady state"), with the whole curve.

Every loop is bounded in count and in time; only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

from benchmarks.common import (
    BenchmarkError,
    Exporter,
    Mock,
    Workspace,
    log,
    request,
    write_result,
)

NAME = "steady"
TARGETS = 1000
# At 1000 targets the mock's pace allows a push per second per target: 1000 pushes per
# connection take about 17 minutes. Past that nothing per push is kept any more, so more
# pushes only confirm the plateau; raise --pushes and --max-seconds to see it longer.
PUSHES = 1000  # requests per connection, on average, before the steady sample
MAX_SECONDS = 1200.0
EARLY_SECONDS = 120.0  # after the first round: what "minutes after start" measured
SAMPLE_SECONDS = 5.0
MAX_SAMPLES = 2000
PUSH_RATE = 2000.0  # canary pushes plus PINGs per second the one-process mock answers
# The canary timeout equals the interval (config rule). At 250 ms on a busy 2-core machine
# (load 4.6) 50 targets opened 1261 connections in 150 s, as timeouts replaced them: that
# measures churn, not the steady state.
MIN_INTERVAL = 1.0
IDLE_SECONDS = 3.0  # an exporter is idle once a window this long costs under 0.1 CPU s


def interval_for(n: int) -> float:
    """The PING and canary interval that keeps N targets within the mock's pace."""
    return max(MIN_INTERVAL, round(2 * n / PUSH_RATE, 2))


def _idle(exporter: Exporter, budget: float) -> None:
    """Wait (bounded) until the exporter spends under a tenth of a core second per window."""
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        before = exporter.proc.cpu()
        time.sleep(IDLE_SECONDS)
        if exporter.proc.cpu() - before < 0.1:
            return


def _rss_kib(exporter: Exporter) -> float:
    return 1024 * exporter.proc.memory()["rss_mib"]


def _history_length(exporter: Exporter, target: str) -> int:
    """How many results /probes shows for ``target`` (the whole recent window)."""
    page = request(f"{exporter.url}/probes?target={target}&limit=100").body.decode()
    recent = page.partition("##### Earlier failures")[0]
    return len(re.findall(r"^=== ", recent, flags=re.MULTILINE))


def _baseline(ws: Workspace, mock: Mock) -> float:
    empty = ws.target_yaml("empty", mock.port, inventory_only=True)
    config = ws.write_config("steady-empty", [empty])
    exporter = ws.start_exporter("exporter-steady-empty", config)
    try:
        _idle(exporter, 30.0)
        return _rss_kib(exporter)
    finally:
        exporter.proc.stop(timeout=60)


def _first_round(exporter: Exporter, mock: Mock, n: int, base: int, budget: float) -> float:
    """Seconds until the mock has answered a push per target and holds N connections."""
    started, deadline = time.monotonic(), time.monotonic() + budget
    while time.monotonic() < deadline:
        if not exporter.proc.alive():
            raise BenchmarkError(f"the exporter exited:\n{exporter.proc.log_tail()}")
        counts = mock.count()
        if counts["active_connections"] >= n and counts["requests"] - base >= n:
            return time.monotonic() - started
        time.sleep(1.0)
    raise BenchmarkError(f"{n} targets: no first round within {budget:g}s")


def run(
    ws: Workspace,
    mock: Mock,
    targets: int = TARGETS,
    pushes: int = PUSHES,
    max_seconds: float = MAX_SECONDS,
    early_seconds: float = EARLY_SECONDS,
) -> dict[str, Any]:
    """The empty baseline, then N targets until ``pushes`` per connection or ``max_seconds``."""
    mock.scenario({"name": "healthy"})
    baseline = _baseline(ws, mock)
    log(f"steady: empty exporter {baseline:.0f} KiB")
    every = interval_for(targets)
    every_ms = f"{round(every * 1000)}ms"
    blocks = [
        ws.target_yaml(
            f"t{i:05d}", mock.port, ping=every_ms, canary=every_ms, canary_timeout=every_ms
        )
        for i in range(targets)
    ]
    config = ws.write_config(f"steady-{targets}", blocks)
    base = mock.count()
    exporter = ws.start_exporter(
        f"exporter-steady-{targets}", config, ready_timeout=60 + 0.1 * targets
    )
    samples: list[dict[str, float]] = []
    early: dict[str, float] | None = None
    try:
        first_round = _first_round(exporter, mock, targets, base["requests"], 60 + 0.05 * targets)
        started = time.monotonic()
        deadline = started + max_seconds
        while len(samples) < MAX_SAMPLES:
            time.sleep(SAMPLE_SECONDS)
            if not exporter.proc.alive():
                raise BenchmarkError(f"the exporter exited:\n{exporter.proc.log_tail()}")
            counts = mock.count()
            per_connection = (counts["requests"] - base["requests"]) / targets
            rss = _rss_kib(exporter)
            row = {
                "seconds": round(time.monotonic() - started, 1),
                "rss_kib": round(rss),
                "kib_per_target": round((rss - baseline) / targets, 2),
                "requests_per_connection": round(per_connection),
                "connections_opened": counts["connections"] - base["connections"],
            }
            samples.append(row)
            if early is None and row["seconds"] >= early_seconds:
                early = row
                log(f"steady: early {row}")
            if per_connection >= pushes or time.monotonic() >= deadline:
                break
        history = _history_length(exporter, "t00000")
        end = samples[-1]
        log(f"steady: end {end}")
    finally:
        exporter.proc.stop(timeout=120)
    return {
        "method": {
            "targets": targets,
            "interval_seconds": every,
            "pushes_per_connection_goal": pushes,
            "max_seconds": max_seconds,
            "early_seconds": early_seconds,
            "sample_seconds": SAMPLE_SECONDS,
            "rss": "VmRSS from /proc/<pid>/status; per target = (RSS - empty exporter) / N",
        },
        "baseline_rss_kib": round(baseline),
        "first_round_seconds": round(first_round, 1),
        "early": early,
        "steady": end,
        "goal_reached": end["requests_per_connection"] >= pushes,
        "history_length_first_target": history,
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.steady", description=__doc__)
    parser.add_argument("--targets", type=int, default=TARGETS)
    parser.add_argument("--pushes", type=int, default=PUSHES, help="per connection, on average")
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS)
    parser.add_argument("--early-seconds", type=float, default=EARLY_SECONDS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    ws = Workspace()
    mock = ws.start_mock()
    try:
        data = run(ws, mock, args.targets, args.pushes, args.max_seconds, args.early_seconds)
        data["wall_seconds"] = round(time.monotonic() - started, 1)
        log(f"steady: wrote {write_result(NAME, data)}")
    finally:
        mock.proc.stop()
        ws.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
