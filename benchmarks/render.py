"""The cached renderer beside prometheus_client's ``generate_latest`` on the same registry.

In one process, for 100, 1 000 and 5 000 targets shaped like the exporter's (every probe
on), with the process collectors in front as the exporter serves them:

- ``generate_latest`` over the registry that holds the store (what /metrics cost before);
- a cold render (every target rendered), a warm one (nothing changed), and one after a
  quarter of the targets changed (a PING every 60 s, scraped every 15 s);
- gzip: zlib over the whole body (what aiohttp would do) beside the cached deflate pieces;
- the longest event-loop turn while /metrics is served over loopback HTTP (a heartbeat task
  measures its own lateness; the scraper is a thread), plain and gzip, after a quarter of
  the targets changed: the body joined on the loop (before) beside the stream (now).

The output is checked equal to ``generate_latest``'s before anything is timed. Every loop
is bounded by a repeat count.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import statistics
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client import generate_latest as upstream

from apns_exporter.service.exposition import Exposition, Gzip, Store
from apns_exporter.service.family import Piece
from apns_exporter.web import scrape
from benchmarks.common import Mock, Workspace, log

NAME = "render"
SIZES = (100, 1000, 5000)
REPEATS = 5
SCRAPES = 5  # per way of serving, for the loop-turn figure
HEARTBEAT = 0.002  # seconds the heartbeat sleeps; its lateness beyond that is a loop turn
CHANGED_FRACTION = 0.25
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def build(n: int) -> tuple[Exposition, Callable[[int], None]]:
    """An exposition with ``n`` targets of about 60 series each, and a function changing some."""
    static = CollectorRegistry()
    ProcessCollector(registry=static)
    PlatformCollector(registry=static)
    store = Store()
    t = ("target", "apns_environment")
    info = store.gauge("bench_target_info", "Configured target.", [*t, "host", "port", "topic"])
    gauges = [store.gauge(f"bench_gauge_{i}", "A gauge.", t) for i in range(14)]
    reasons = store.counter("bench_failures", "Failures by reason.", [*t, "reason"])
    layers = store.gauge("bench_failing_layer", "Failing layer.", [*t, "layer"])
    rtt = store.histogram("bench_ping_rtt_seconds", "PING RTT.", t, BUCKETS)
    canary = store.histogram("bench_canary_duration_seconds", "Canary.", t, BUCKETS)
    for k in range(n):
        target = (f"target-{k:05d}", "production")
        info.labels(*target, "api.push.apple.com", "443", "com.example.app").set(1)
        for g in gauges:
            g.labels(*target).set(1.7e9 + k)
        for reason in ("dns", "connect", "tls", "http2", "timeout", "goaway", "protocol"):
            reasons.labels(*target, reason)
        for layer in ("dns", "tcp", "tls", "http2", "auth", "apns", "exporter"):
            layers.labels(*target, layer).set(0)
        rtt.labels(*target).observe(0.002)
        canary.labels(*target).observe(0.04)

    def change(count: int) -> None:
        for k in range(count):
            target = (f"target-{k:05d}", "production")
            rtt.labels(*target).observe(0.003)
            gauges[0].labels(*target).set(time.time())

    return Exposition(static, store), change


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def _median(fn: Callable[[], Any], before: Callable[[], None] | None = None) -> float:
    times = []
    for _ in range(REPEATS):
        if before is not None:
            before()
        times.append(_timed(fn)[0])
    return statistics.median(times)


def _gzip(exposition: Exposition) -> bytes:
    # What a gzip scrape costs: the pieces on the loop, their compression in a worker.
    return Gzip(exposition.gzip_level).compress(p for p in exposition.pieces() if p is not None)


def one_size(n: int) -> dict[str, Any]:
    """Every figure for one target count."""
    exposition, change = build(n)
    cold, body = _timed(exposition.render)
    # The process collectors move between two calls; the store's part must not differ.
    if exposition.store.render() != upstream(exposition.store):
        raise AssertionError("renderer output differs from generate_latest")
    changed = max(1, int(n * CHANGED_FRACTION))
    result: dict[str, Any] = {
        "targets": n,
        "series_per_target": exposition.store.series("target-00000"),
        "bytes": len(body),
        "generate_latest_seconds": _median(lambda: upstream(exposition.registry)),
        "cold_render_seconds": cold,
        "warm_render_seconds": _median(exposition.render),
        "changed_targets": changed,
        "changed_render_seconds": _median(exposition.render, lambda: change(changed)),
        "zlib_whole_body_seconds": _median(lambda: zlib.compress(body, 6)),
        "gzip_warm_seconds": _median(lambda: _gzip(exposition)),
        "gzip_changed_seconds": _median(lambda: _gzip(exposition), lambda: change(changed)),
    }
    pieces = [p for p in exposition.pieces() if p is not None]
    zipped = Gzip(exposition.gzip_level).compress(pieces)
    if gzip.decompress(zipped) != b"".join(p.text for p in pieces):
        raise AssertionError("cached gzip does not inflate to the body")
    result["gzip_bytes"] = len(zipped)
    result["speedup_changed_over_generate_latest"] = (
        result["generate_latest_seconds"] / result["changed_render_seconds"]
    )
    return result


async def _joined(exposition: Exposition, request: web.Request) -> web.Response:
    """/metrics as it was served before streaming: the body joined on the loop."""
    body = exposition.render()
    headers = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    if scrape.accepts_gzip(request.headers.get("Accept-Encoding", "")):
        body = await asyncio.to_thread(Gzip().compress, [Piece(body)])
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)


def _fetch(url: str, encoding: str) -> int:
    request = urllib.request.Request(url, headers={"Accept-Encoding": encoding})
    with urllib.request.urlopen(request, timeout=120) as response:
        return len(response.read())


async def _longest_turns(exposition: Exposition, change: Callable[[], None]) -> dict[str, Any]:
    """The longest loop turn and the wall time of scrapes, per way of serving."""
    app = web.Application()
    app.router.add_get("/joined", lambda r: _joined(exposition, r))
    app.router.add_get("/metrics", lambda r: scrape.serve(exposition, r))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    worst = 0.0
    stop = threading.Event()

    async def heartbeat() -> None:
        nonlocal worst
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(HEARTBEAT)
            worst = max(worst, time.perf_counter() - started - HEARTBEAT)

    beat = asyncio.create_task(heartbeat())
    out: dict[str, Any] = {}
    try:
        for path in ("joined", "metrics"):
            for encoding in ("identity", "gzip"):
                turns, walls = [], []
                for _ in range(SCRAPES):
                    change()
                    # Let the heartbeat settle, so its figure is this scrape's alone.
                    await asyncio.sleep(10 * HEARTBEAT)
                    worst = 0.0
                    started = time.perf_counter()
                    url = f"http://127.0.0.1:{port}/{path}"
                    await asyncio.to_thread(_fetch, url, encoding)
                    walls.append(time.perf_counter() - started)
                    turns.append(worst)
                way = "stream" if path == "metrics" else "joined"
                out[f"{way}_{encoding}_longest_turn_ms"] = 1000 * max(turns)
                out[f"{way}_{encoding}_scrape_seconds"] = statistics.median(walls)
    finally:
        stop.set()
        await beat
        await runner.cleanup()
    return out


def loop_turns(n: int) -> dict[str, Any]:
    """Longest loop turns while /metrics of ``n`` targets is served, joined and streamed."""
    exposition, change = build(n)
    exposition.render()
    # As the exporter does: the long-lived heap is kept out of full collections.
    gc.collect()
    gc.freeze()
    changed = max(1, int(n * CHANGED_FRACTION))
    try:
        return {"targets": n, **asyncio.run(_longest_turns(exposition, lambda: change(changed)))}
    finally:
        gc.unfreeze()


def run(ws: Workspace | None = None, mock: Mock | None = None) -> dict[str, Any]:
    """Every size; the workspace and mock are not needed (all in this process)."""
    sizes = []
    for n in SIZES:
        log(f"render: {n} targets")
        sizes.append(one_size(n))
        r = sizes[-1]
        log(
            f"render: {n} targets, generate_latest {r['generate_latest_seconds']:.3f}s, "
            f"changed {r['changed_render_seconds']:.4f}s, gzip {r['gzip_changed_seconds']:.4f}s"
        )
    turns = []
    for n in SIZES:
        turns.append(loop_turns(n))
        log(f"render: {n} targets, longest loop turn {turns[-1]}")
    return {
        "repeats": REPEATS,
        "changed_fraction": CHANGED_FRACTION,
        "sizes": sizes,
        "loop_turns": turns,
    }


if __name__ == "__main__":
    import json

    # python -m benchmarks.render [N ...]: only the loop-turn figure, for these sizes.
    if len(sys.argv) > 1:
        print(json.dumps([loop_turns(int(n)) for n in sys.argv[1:]], indent=2))
    else:
        print(json.dumps(run(), indent=2))
