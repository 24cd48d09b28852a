"""Run the exporter as a subprocess for a fixed window and count what it cost per probe."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from apns_exporter.service.exporter import STAGGER_SECONDS
from benchmarks.common import Mock, Workspace, total

# Enough targets that a short window holds thousands of probes, few enough that the first
# round of connections is over within the warm-up.
TARGETS = 20
INTERVAL_MS = 200
# The exporter spreads every network probe's first run over up to STAGGER_SECONDS, the hourly
# ones (the TLS-chain check, the idle PING) too: the warm-up waits for all of them, so that
# their handshakes are not counted as the cost of the probes being measured.
WARMUP_SECONDS = STAGGER_SECONDS + 3.0
WINDOW_SECONDS = 15.0


def targets(ws: Workspace, mock: Mock, kind: str, count: int = TARGETS) -> list[str]:
    """``count`` targets that each push a canary (kind "canary") or PING every INTERVAL_MS."""
    every = f"{INTERVAL_MS}ms"
    if kind == "canary":
        return [
            ws.target_yaml(f"t{i}", mock.port, ping="1h", canary=every, canary_timeout=every)
            for i in range(count)
        ]
    if kind == "ping":
        return [ws.target_yaml(f"t{i}", mock.port, ping=every) for i in range(count)]
    if kind == "idle":
        return [ws.target_yaml(f"t{i}", mock.port, ping="1h", canary="1h") for i in range(count)]
    raise ValueError(kind)


def _mock_counts(mock: Mock) -> dict[str, int]:
    stats = mock.stats()
    ok = sum(r["count"] for r in stats["responses"] if r["status"] == 200)
    return {
        "pushes": int(stats["requests"]),
        "pushes_ok": ok,
        "pings": int(stats["pings"]),
        "connections": int(stats["connections"]),
        "goaways": int(stats["goaways"]),
    }


def measure(
    ws: Workspace,
    mock: Mock,
    name: str,
    target_blocks: Sequence[str],
    probe: str,
    *,
    window: float = WINDOW_SECONDS,
    event_loop: str = "asyncio",
    http2: str = "h2",
) -> dict[str, Any]:
    """Start the exporter, let it warm up, then measure CPU and probes over ``window``.

    ``probe`` is "pushes" or "pings": which mock counter counts the probes.
    """
    config = ws.write_config(name, target_blocks)
    exporter = ws.start_exporter(name, config, event_loop=event_loop, http2=http2)
    try:
        time.sleep(WARMUP_SECONDS)
        before, cpu0, mock_cpu0 = _mock_counts(mock), exporter.proc.cpu(), mock.proc.cpu()
        t0 = time.monotonic()
        time.sleep(window)
        cpu1, mock_cpu1 = exporter.proc.cpu(), mock.proc.cpu()
        elapsed = time.monotonic() - t0
        after = _mock_counts(mock)
        memory = exporter.proc.memory()
        # Scraped only after the CPU window closed, so the scrape is not in the figures.
        parsed = exporter.metrics()
    finally:
        exporter.proc.stop()
    delta = {k: after[k] - before[k] for k in after}
    probes = delta[probe]
    cpu = cpu1 - cpu0
    return {
        "targets": len(target_blocks),
        "event_loop": event_loop,
        "http2": http2,
        "interval_ms": INTERVAL_MS,
        "window_seconds": round(elapsed, 2),
        "probes": probes,
        "probes_per_second": probes / elapsed,
        "cpu_seconds": cpu,
        "cpu_seconds_per_1000": 1000 * cpu / probes if probes else None,
        "cpu_ms_per_probe": 1000 * cpu / probes if probes else None,
        "cpu_percent_of_one_core": 100 * cpu / elapsed,
        "connections_opened": delta["connections"],
        "connections_per_1000": 1000 * delta["connections"] / probes if probes else None,
        "mock_cpu_ms_per_probe": 1000 * (mock_cpu1 - mock_cpu0) / probes if probes else None,
        "mock_delta": delta,
        "exporter_memory": memory,
        "exporter_totals": {
            "apns_canary_pushes_total": total(parsed, "apns_canary_pushes_total"),
            "apns_connection_attempts_total": total(parsed, "apns_connection_attempts_total"),
            "apns_connection_failures_total": total(parsed, "apns_connection_failures_total"),
            "apns_goaway_received_total": total(parsed, "apns_goaway_received_total"),
            "apns_ping_failures_total": total(parsed, "apns_ping_failures_total"),
            "apns_canary_request_errors_total": total(parsed, "apns_canary_request_errors_total"),
            "apns_up_sum": total(parsed, "apns_up"),
        },
        "connection_setup_ms_mean": _setup_ms(parsed),
        "canary_duration_ms_mean": _mean_ms(parsed, "apns_canary_duration_seconds"),
        "ping_rtt_ms_mean": _mean_ms(parsed, "apns_ping_rtt_seconds"),
    }


def _mean_ms(parsed: dict[Any, float], histogram: str) -> float | None:
    count = total(parsed, f"{histogram}_count")
    return 1000 * total(parsed, f"{histogram}_sum") / count if count else None


def _setup_ms(parsed: dict[Any, float]) -> float | None:
    """Mean time to open one connection: all phases summed, divided by the number of dials."""
    name = "apns_connection_setup_duration_seconds"
    dials = sum(
        v
        for (n, labels), v in parsed.items()
        if n == f"{name}_count" and ("phase", "tls") in labels
    )
    return 1000 * total(parsed, f"{name}_sum") / dials if dials else None
