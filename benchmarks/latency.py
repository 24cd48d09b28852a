"""Latency accuracy: what each client reports for a push, minus what the server observed.

The mock injects a normal delay (mean 40 ms, sd 10 ms, fixed seed) before answering each push.
Its timing tap (benchmarks/mockhost.py) records, per request, when the request was complete
(``recv``), the delay it drew (``delay``) and when the response went to the socket (``sent``).
The ground truth for one push is ``sent - recv``: the time the server really took. Each
client's figure minus that is its measurement error. Clients, one after the other on the same
mock, all paced at one push per ``INTERVAL``:

- apns-exporter: one target, one device token, canary every INTERVAL on its kept connection.
  Its figure is the exact per-push value of ``apns_canary_duration_seconds``: the driver scrapes
  /metrics half-way between pushes (phase-locked to the mock's clock) and takes the increase
  of ``_sum`` whenever ``_count`` rose by exactly one.
- blackbox_exporter: http prober, POST over HTTP/2, new connection per probe. Its figures are
  ``probe_http_duration_seconds{phase="processing"}`` (request on the wire to first response
  byte) and ``probe_duration_seconds`` (the whole probe, including connect and TLS).
- h2load: ``-c 1 -m 1 --rps``, the same pushes on one connection; per-request durations from
  its ``--log-file``. This is the raw floor: a C client with no exporter around it.
"""

from __future__ import annotations

import math
import time
from typing import Any

from benchmarks import tools
from benchmarks.common import (
    BenchmarkError,
    Mock,
    Workspace,
    log,
    samples,
    summary,
    total,
    wait_until,
)

NAME = "latency"
PUSHES = 120
INTERVAL = 0.2  # seconds between pushes, for every client
WARMUP = 3  # first pushes of each client left out (connection set-up, first JWT check)
LATENCY = {"distribution": "normal", "mean": 0.040, "stddev": 0.010}
SEED = 20240601


def _scenario() -> dict[str, Any]:
    return {"name": "bench-latency", "latency": LATENCY, "seed": SEED}


def _errors(measured: list[float], truth: list[dict[str, Any]]) -> dict[str, Any]:
    """Error statistics (ms) of measured - observed, and measured - injected, pairwise."""
    observed = [r["sent"] - r["recv"] for r in truth]
    injected = [r["delay"] for r in truth]
    err = [m - o for m, o in zip(measured, observed, strict=True)]
    err_injected = [m - i for m, i in zip(measured, injected, strict=True)]
    return {
        "n": len(err),
        "error_vs_observed_ms": summary(err, 1000),
        "abs_error_vs_observed_ms": summary([abs(e) for e in err], 1000),
        "error_vs_injected_ms": summary(err_injected, 1000),
        "measured_ms": summary(measured, 1000),
        "observed_ms": summary(observed, 1000),
        "mock_overshoot_ms": summary(
            [o - i for o, i in zip(observed, injected, strict=True)], 1000
        ),
    }


def _exporter(ws: Workspace, mock: Mock) -> dict[str, Any]:
    mock.scenario(_scenario())
    mock.tap(True)
    interval_ms = int(INTERVAL * 1000)
    config = ws.write_config(
        "latency",
        [
            ws.target_yaml(
                "latency",
                mock.port,
                ping="1h",
                canary=f"{interval_ms}ms",
                canary_timeout=f"{interval_ms}ms",
            )
        ],
    )
    exporter = ws.start_exporter("exporter-latency", config)
    per_push: dict[int, float] = {}
    try:
        first = wait_until(lambda: mock.timings(), 30, "the exporter's first canary push")[0]
        # The scheduler runs pushes at start + k * INTERVAL (no drift), on the same monotonic
        # clock as the mock's tap: scrape half-way between two pushes, never during one.
        anchor = first["recv"] + INTERVAL / 2 + 0.03
        last_count, last_sum = 0.0, 0.0
        deadline = time.monotonic() + PUSHES * INTERVAL * 2 + 30
        k = 0
        while len(per_push) < PUSHES and time.monotonic() < deadline:
            k += 1
            pause = anchor + k * INTERVAL - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            parsed = samples(exporter.scrape().body.decode())
            count = total(parsed, "apns_canary_duration_seconds_count")
            value = total(parsed, "apns_canary_duration_seconds_sum")
            if count == last_count + 1:
                per_push[int(count) - 1] = value - last_sum
            last_count, last_sum = count, value
        cpu = exporter.proc.cpu()
    finally:
        exporter.proc.stop()
    truth = mock.timings()
    indices = sorted(i for i in per_push if WARMUP <= i < len(truth))
    if len(indices) < PUSHES // 2:
        raise BenchmarkError(f"only {len(indices)} exporter pushes could be paired")
    result = _errors([per_push[i] for i in indices], [truth[i] for i in indices])
    result["pushes_sent"] = len(truth)
    result["pushes_paired"] = len(indices)
    result["figure"] = "apns_canary_duration_seconds (exact per push, from _sum/_count deltas)"
    result["exporter_cpu_seconds_total"] = cpu
    return result


def _blackbox(ws: Workspace, mock: Mock, token: str) -> dict[str, Any]:
    mock.scenario(_scenario())
    bb = tools.start_blackbox(ws, mock.port, token)
    probes: list[dict[str, float]] = []
    try:
        bb.probe()  # Go's first request pays for loading the CA file and warming up
        mock.tap(True)
        next_at = time.monotonic()
        for _ in range(PUSHES + WARMUP):
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            next_at += INTERVAL
            probes.append(bb.probe())
    finally:
        bb.proc.stop()
    truth = mock.timings()
    if len(truth) != len(probes):
        raise BenchmarkError(f"blackbox: {len(probes)} probes but the mock saw {len(truth)}")
    pairs = [
        (p, t)
        for p, t in list(zip(probes, truth, strict=True))[WARMUP:]
        if p["success"] == 1 and not math.isnan(p["processing"])
    ]
    processing = _errors([p["processing"] for p, _ in pairs], [t for _, t in pairs])
    duration = _errors([p["duration"] for p, _ in pairs], [t for _, t in pairs])
    return {
        "n": len(pairs),
        "failed_probes": sum(1 for p in probes if p["success"] != 1),
        "http_version": probes[-1]["http_version"] if probes else None,
        "processing": processing | {"figure": 'probe_http_duration_seconds{phase="processing"}'},
        "probe_duration": duration | {"figure": "probe_duration_seconds"},
        "connect_tls_ms": summary([p["connect"] + p["tls"] for p, _ in pairs], 1000),
    }


def _h2load(ws: Workspace, mock: Mock, token: str) -> dict[str, Any]:
    mock.scenario(_scenario())
    mock.tap(True)
    run = tools.run_h2load(ws, mock.port, token, PUSHES + WARMUP, rps=round(1 / INTERVAL))
    truth = mock.timings()
    if len(truth) != len(run.durations):
        raise BenchmarkError(f"h2load: {len(run.durations)} requests but mock saw {len(truth)}")
    result = _errors(run.durations[WARMUP:], truth[WARMUP:])
    result["figure"] = "h2load --log-file per-request duration (request sent to response end)"
    return result


def _h2load_warm(ws: Workspace, mock: Mock, token: str) -> dict[str, Any]:
    """The same pushes back to back with no delay: the floor when nothing sits idle."""
    mock.scenario({"name": "healthy"})
    mock.tap(True)
    run = tools.run_h2load(ws, mock.port, token, PUSHES + WARMUP)
    truth = mock.timings()
    if len(truth) != len(run.durations):
        raise BenchmarkError(f"h2load: {len(run.durations)} requests but mock saw {len(truth)}")
    result = _errors(run.durations[WARMUP:], truth[WARMUP:])
    result["figure"] = "h2load, unpaced, no injected delay: client and server never go idle"
    return result


def run(ws: Workspace, mock: Mock) -> dict[str, Any]:
    """Run all three clients against the same mock and delay distribution."""
    token = tools.mint_jwt(ws)
    log("latency: apns-exporter")
    ours = _exporter(ws, mock)
    log("latency: blackbox_exporter")
    blackbox = _blackbox(ws, mock, token) if tools.available(tools.BLACKBOX) else None
    log("latency: h2load")
    h2load = _h2load(ws, mock, token) if tools.available(tools.H2LOAD) else None
    h2load_warm = _h2load_warm(ws, mock, token) if tools.available(tools.H2LOAD) else None
    mock.scenario({"name": "healthy"})
    mock.tap(False)
    return {
        "method": {
            "pushes_per_client": PUSHES,
            "interval_seconds": INTERVAL,
            "warmup_pushes_dropped": WARMUP,
            "injected_delay": LATENCY | {"seed": SEED},
            "ground_truth": "mock tap: response handed to the socket minus request fully received",
            "error": "client figure minus ground truth, per push (positive = client reads high)",
        },
        "apns_exporter": ours,
        "blackbox_exporter": blackbox,
        "h2load": h2load,
        "h2load_back_to_back": h2load_warm,
        "exporter_minus_h2load_median_ms": (
            ours["error_vs_observed_ms"]["median"] - h2load["error_vs_observed_ms"]["median"]
            if h2load
            else None
        ),
        "versions": {
            "blackbox_exporter": tools.blackbox_version(),
            "h2load": tools.h2load_version(),
        },
        "target_ms": 0.5,
        "meets_target": ours["error_vs_observed_ms"]["median"] < 0.5
        and ours["error_vs_observed_ms"]["p99"] < 0.5,
        "percentile_note": f"p99 of {ours['n']} samples sits next to the maximum",
    }
