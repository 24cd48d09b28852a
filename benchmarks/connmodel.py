"""Overhead of the connection model: a kept connection versus a new connection per probe.

The same exporter, the same 20 targets and the same probe rate (one probe per target every
200 ms), run twice against the same mock:

- **kept**: the mock leaves connections open, as APNs does; the exporter reuses one per
  target (its design).
- **per probe**: the mock closes every connection that has been idle for 50 ms (GOAWAY, then
  close: the ``idle_close`` fault), so each probe has to dial, handshake TLS, exchange HTTP/2
  SETTINGS and (for a canary) have its JWT verified afresh. This is the exporter's own
  reconnect path, i.e. what connect-per-probe costs *this* client; blackbox_exporter in
  ``cost.json`` is the same model in Go.

Measured for canary pushes and for PINGs: exporter CPU per 1000 probes, connections opened
per 1000 probes (counted by the mock), the mock's CPU per probe, and per-dial set-up time.
"""

from __future__ import annotations

from typing import Any

from benchmarks import probing
from benchmarks.common import Mock, Workspace, log

NAME = "connection_model"
WINDOW_SECONDS = 12.0
PER_PROBE = {"name": "bench-connection-per-probe", "idle_close": {"after": 0.05, "goaway": True}}


def _pair(ws: Workspace, mock: Mock, kind: str, counter: str) -> dict[str, Any]:
    blocks = probing.targets(ws, mock, kind)
    mock.scenario({"name": "healthy"})
    log(f"connection model: {kind}, kept connection")
    kept = probing.measure(ws, mock, f"conn-{kind}-kept", blocks, counter, window=WINDOW_SECONDS)
    mock.scenario(PER_PROBE)
    log(f"connection model: {kind}, connection per probe")
    try:
        fresh = probing.measure(
            ws, mock, f"conn-{kind}-fresh", blocks, counter, window=WINDOW_SECONDS
        )
    finally:
        mock.scenario({"name": "healthy"})
    return {
        "kept": kept,
        "per_probe": fresh,
        "cpu_ratio_per_probe_over_kept": (
            fresh["cpu_seconds_per_1000"] / kept["cpu_seconds_per_1000"]
            if kept["cpu_seconds_per_1000"] and fresh["cpu_seconds_per_1000"]
            else None
        ),
        "mock_cpu_ratio_per_probe_over_kept": (
            fresh["mock_cpu_ms_per_probe"] / kept["mock_cpu_ms_per_probe"]
            if kept["mock_cpu_ms_per_probe"] and fresh["mock_cpu_ms_per_probe"]
            else None
        ),
    }


def run(ws: Workspace, mock: Mock) -> dict[str, Any]:
    """Both models, for canary pushes and for PINGs."""
    return {
        "method": {
            "targets": probing.TARGETS,
            "interval_ms": probing.INTERVAL_MS,
            "window_seconds": WINDOW_SECONDS,
            "per_probe_fault": PER_PROBE,
        },
        "canary": _pair(ws, mock, "canary", "pushes"),
        "ping": _pair(ws, mock, "ping", "pings"),
    }
