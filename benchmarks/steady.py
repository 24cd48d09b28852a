"""Steady-state memory: RSS per target with full histories and thousands of pushes carried.

The same figure minutes after start is reported beside it, for comparison.

``python -m benchmarks steady`` runs 10 000 targets (``python -m benchmarks.steady
--targets 1000`` a smaller size; see ``--help`` for the other bounds). Method:

- an empty exporter (one ``inventory_only`` target: a credential, no traffic) is started and
  its RSS read from ``/proc/<pid>/status`` once it is ready and idle: the baseline;
- then N targets against the mock (its own process), each with one kept connection, a PING
  every 10 s and a canary every 60 s, until each target's result history is full;
- RSS is sampled every few seconds with the mock's request count, for ``max_seconds`` (or
  until every connection has carried ``pushes`` requests on average, when asked);
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
# The size and pace of the goal: 10 000 targets, a PING every 10 s and a canary every 60 s.
TARGETS = 10_000
PING_SECONDS = 10.0
CANARY_SECONDS = 60.0
# Each target's result history is bounded in bytes (about 28 ordinary results): at this pace
# it is full within five minutes of the first round, the steady state of the heap. What
# grew per push before (h2's closed streams) keeps nothing now, which
# tests/client/test_closed_streams.py pins over 2000 pushes; --pushes can still ask for more.
PUSHES = 0  # requests per connection, on average, before the steady sample (0: no floor)
MAX_SECONDS = 360.0
EARLY_SECONDS = 120.0  # after the first round: what "minutes after start" measured
SAMPLE_SECONDS = 5.0
MAX_SAMPLES = 2000
IDLE_SECONDS = 3.0  # an exporter is idle once a window this long costs under 0.1 CPU s


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
    blocks = [
        ws.target_yaml(
            f"t{i:05d}", mock.port, ping=f"{PING_SECONDS:g}s", canary=f"{CANARY_SECONDS:g}s"
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
            if (pushes and per_connection >= pushes) or time.monotonic() >= deadline:
                break
        history = _history_length(exporter, "t00000")
        end = samples[-1]
        log(f"steady: end {end}")
    finally:
        exporter.proc.stop(timeout=120)
    return {
        "method": {
            "targets": targets,
            "ping_seconds": PING_SECONDS,
            "canary_seconds": CANARY_SECONDS,
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
        "kib_per_target": end["kib_per_target"],
        "pushes_goal_reached": end["requests_per_connection"] >= pushes,
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
