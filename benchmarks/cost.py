"""Cost per probe: CPU seconds per 1000 canary pushes and per 1000 PINGs, beside the yardsticks.

- apns-exporter (subprocess ``python -m apns_exporter``): 20 targets, each pushing a canary
  (or sending a PING) every 200 ms on its kept connection, i.e. ~100 probes/s; CPU from
  /proc/<pid>/stat over a 20 s window after a warm-up; probes counted by the mock.
  Also: its idle CPU with the same 20 targets and nothing due, and the CPU of one scrape.
- blackbox_exporter: sequential /probe requests (the same push over HTTP/2); every probe
  opens a new TCP+TLS connection, because that is how blackbox works. Its CPU includes
  answering the /probe HTTP request, which is part of its per-probe model.
- h2load: the same pushes on one connection, ``-c 1 -m 1``; CPU from wait4(). The floor.

The mock's own CPU per probe is reported too: a connection per probe costs the server.

Variants: the same canary and PING runs with uvloop as the event loop, with jh2 in place of
h2 (benchmarks/jh2host.py), and both, each as a ratio to the shipped asyncio + h2 of the
same run. ``BENCH_COST_SMALL=1`` shrinks everything to check that the benchmark works.
"""

from __future__ import annotations

import importlib.util
import os
import time
from typing import Any

from benchmarks import probing, tools
from benchmarks.common import Mock, Workspace, log

NAME = "cost"
SMALL = os.environ.get("BENCH_COST_SMALL") == "1"
BLACKBOX_PROBES = 50 if SMALL else 500
H2LOAD_REQUESTS = 500 if SMALL else 5000
SCRAPES = 10 if SMALL else 100
IDLE_SECONDS = 2.0 if SMALL else 10.0
TARGETS = 4 if SMALL else probing.TARGETS
WINDOW_SECONDS = 3.0 if SMALL else probing.WINDOW_SECONDS
# name -> (event loop, HTTP/2 library), measured beside the shipped asyncio + h2.
VARIANTS = {
    "uvloop": ("uvloop", "h2"),
    "jh2": ("asyncio", "jh2"),
    "uvloop+jh2": ("uvloop", "jh2"),
}


def _idle_and_scrape(ws: Workspace, mock: Mock) -> dict[str, Any]:
    config = ws.write_config("cost-idle", probing.targets(ws, mock, "idle", TARGETS))
    exporter = ws.start_exporter("exporter-idle", config)
    try:
        time.sleep(probing.WARMUP_SECONDS)
        cpu0 = exporter.proc.cpu()
        time.sleep(IDLE_SECONDS)
        cpu1 = exporter.proc.cpu()
        seconds, size = [], 0
        for _ in range(SCRAPES):
            resp = exporter.scrape()
            seconds.append(resp.seconds)
            size = len(resp.body)
        cpu2 = exporter.proc.cpu()
        memory = exporter.proc.memory()
    finally:
        exporter.proc.stop()
    idle = (cpu1 - cpu0) / IDLE_SECONDS
    return {
        "targets": TARGETS,
        "idle_cpu_percent_of_one_core": 100 * idle,
        "scrapes": SCRAPES,
        "cpu_ms_per_scrape": 1000 * (cpu2 - cpu1) / SCRAPES,
        "scrape_ms_median": 1000 * sorted(seconds)[len(seconds) // 2],
        "scrape_bytes": size,
        "exporter_memory": memory,
    }


def _blackbox(ws: Workspace, mock: Mock, token: str) -> dict[str, Any]:
    bb = tools.start_blackbox(ws, mock.port, token)
    try:
        bb.probe()
        conns0 = mock.stats()["connections"]
        cpu0, mock_cpu0, t0 = bb.proc.cpu(), mock.proc.cpu(), time.monotonic()
        ok = sum(1 for _ in range(BLACKBOX_PROBES) if bb.probe()["success"] == 1)
        cpu1, mock_cpu1, elapsed = bb.proc.cpu(), mock.proc.cpu(), time.monotonic() - t0
        conns = mock.stats()["connections"] - conns0
        memory = bb.proc.memory()
    finally:
        bb.proc.stop()
    cpu = cpu1 - cpu0
    return {
        "probes": BLACKBOX_PROBES,
        "successful": ok,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "cpu_seconds_per_1000": 1000 * cpu / BLACKBOX_PROBES,
        "cpu_ms_per_probe": 1000 * cpu / BLACKBOX_PROBES,
        "connections_opened": conns,
        "connections_per_1000": 1000 * conns / BLACKBOX_PROBES,
        "mock_cpu_ms_per_probe": 1000 * (mock_cpu1 - mock_cpu0) / BLACKBOX_PROBES,
        "memory": memory,
    }


def _h2load(ws: Workspace, mock: Mock, token: str) -> dict[str, Any]:
    conns0, mock_cpu0 = mock.stats()["connections"], mock.proc.cpu()
    run = tools.run_h2load(ws, mock.port, token, H2LOAD_REQUESTS)
    mock_cpu = mock.proc.cpu() - mock_cpu0
    ok = sum(1 for s in run.statuses if s == 200)
    return {
        "requests": H2LOAD_REQUESTS,
        "successful": ok,
        "seconds": run.wall_seconds,
        "cpu_seconds": run.cpu_seconds,
        "cpu_seconds_per_1000": 1000 * run.cpu_seconds / H2LOAD_REQUESTS,
        "cpu_ms_per_probe": 1000 * run.cpu_seconds / H2LOAD_REQUESTS,
        "connections_opened": mock.stats()["connections"] - conns0,
        "mock_cpu_ms_per_probe": 1000 * mock_cpu / H2LOAD_REQUESTS,
        "note": "unpaced: as fast as the mock answers; CPU includes h2load start-up",
    }


def _measure(ws: Workspace, mock: Mock, kind: str, event_loop: str, http2: str) -> dict[str, Any]:
    probe = "pushes" if kind == "canary" else "pings"
    return probing.measure(
        ws,
        mock,
        f"cost-{kind}-{event_loop}-{http2}",
        probing.targets(ws, mock, kind, TARGETS),
        probe,
        window=WINDOW_SECONDS,
        event_loop=event_loop,
        http2=http2,
    )


def _variants(
    ws: Workspace, mock: Mock, canary: dict[str, Any], ping: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Each variant's canary and PING runs, and their CPU per probe over the shipped one's."""
    found: dict[str, dict[str, Any]] = {}
    for name, (event_loop, http2) in VARIANTS.items():
        missing = [m for m in (event_loop, http2) if importlib.util.find_spec(m) is None]
        if missing:
            found[name] = {"skipped": f"not installed: {', '.join(missing)}"}
            continue
        log(f"cost: variant {name}")
        runs = {k: _measure(ws, mock, k, event_loop, http2) for k in ("canary", "ping")}
        found[name] = {
            **runs,
            "event_loop": event_loop,
            "http2": http2,
            "canary_over_shipped": _ratio(runs["canary"], canary),
            "ping_over_shipped": _ratio(runs["ping"], ping),
        }
    return found


def _ratio(variant: dict[str, Any], shipped: dict[str, Any]) -> float | None:
    a, b = variant["cpu_seconds_per_1000"], shipped["cpu_seconds_per_1000"]
    return a / b if a and b else None


def run(ws: Workspace, mock: Mock) -> dict[str, Any]:
    """Measure all of it against the healthy mock (no injected delay)."""
    mock.scenario({"name": "healthy"})
    token = tools.mint_jwt(ws)
    log("cost: apns-exporter canary pushes")
    canary = _measure(ws, mock, "canary", "asyncio", "h2")
    log("cost: apns-exporter PINGs")
    ping = _measure(ws, mock, "ping", "asyncio", "h2")
    variants = _variants(ws, mock, canary, ping)
    log("cost: apns-exporter idle and scrapes")
    idle = _idle_and_scrape(ws, mock)
    log("cost: blackbox_exporter")
    blackbox = _blackbox(ws, mock, token) if tools.available(tools.BLACKBOX) else None
    log("cost: h2load")
    h2load = _h2load(ws, mock, token) if tools.available(tools.H2LOAD) else None
    ratios: dict[str, float] = {}
    if blackbox and canary["cpu_seconds_per_1000"]:
        ratios["blackbox_per_probe_over_exporter_canary"] = (
            blackbox["cpu_seconds_per_1000"] / canary["cpu_seconds_per_1000"]
        )
    if h2load and canary["cpu_seconds_per_1000"]:
        ratios["exporter_canary_over_h2load"] = (
            canary["cpu_seconds_per_1000"] / h2load["cpu_seconds_per_1000"]
        )
    for variant in variants.values():
        if blackbox and variant.get("canary"):
            variant["blackbox_per_probe_over_canary"] = (
                blackbox["cpu_seconds_per_1000"] / variant["canary"]["cpu_seconds_per_1000"]
            )
    return {
        "apns_exporter": {"canary": canary, "ping": ping, "idle": idle},
        "variants": variants,
        "blackbox_exporter": blackbox,
        "h2load": h2load,
        "ratios": ratios,
        "versions": {
            "blackbox_exporter": tools.blackbox_version(),
            "h2load": tools.h2load_version(),
        },
    }
