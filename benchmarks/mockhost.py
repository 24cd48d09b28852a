"""The mock APNs in a process of its own, with a per-request timing tap for ground truth.

Run as ``python -m benchmarks.mockhost PKI_DIR``. It serves the mock on 127.0.0.1 (a free
port), plus the mock's admin API with three extra routes, and prints one JSON line
``{"port": ..., "admin": ...}`` once both listen. SIGTERM stops it.

The tap wraps two methods of the mock's server-side channel from the outside (the package is
not changed): ``_process`` (a request has been fully received and validated; the injected
delay is drawn here) and ``_respond`` (the response headers are handed to the socket). For
each request it keeps ``recv`` and ``sent`` (``time.monotonic()``, the same clock the driver
and the exporter's event loop use) and the injected ``delay``. ``sent - recv`` is what the
server itself observed; a client's measured latency minus that is the client's error.

Extra admin routes::

    PUT  /bench/tap        {"on": bool}   start (clearing old records) or stop recording
    GET  /bench/timings                   the records, oldest first
    GET  /bench/count                     {"records": n, "requests": n, "connections": n}
    GET  /bench/pings                     [[connection, arrived], ...]: each client PING's
                                          arrival while the tap is on (``time.monotonic()``)
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import h2.events
from aiohttp import web

from apns_exporter.mock import faults as mock_faults
from apns_exporter.mock import handler as mock_handler
from apns_exporter.mock import material
from apns_exporter.mock.admin import create_app
from apns_exporter.mock.server import MockAPNs

RECORD_LIMIT = 200_000
BACKLOG = 4096


class Tap:
    """Per-request server-side timestamps, recorded only while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.last_delay: float | None = None
        self.pending: dict[tuple[int, int], list[Any]] = {}
        self.records: list[list[Any]] = []
        self.pings: list[tuple[int, float]] = []

    def install(self) -> None:
        """Wrap the mock handler's request and response paths."""
        tap = self
        process = mock_handler.ConnectionHandler._process
        respond = mock_handler.ConnectionHandler._respond
        draw = mock_faults.FaultInjector.delay
        dispatch = mock_handler.ConnectionHandler._dispatch

        def _dispatch(self: mock_handler.ConnectionHandler, event: Any) -> None:
            ping = isinstance(event, h2.events.PingReceived)
            if tap.on and ping and len(tap.pings) < RECORD_LIMIT:
                tap.pings.append((id(self), time.monotonic()))
            dispatch(self, event)

        def delay(self: mock_faults.FaultInjector) -> float:
            value = draw(self)
            tap.last_delay = value
            return value

        def _process(self: mock_handler.ConnectionHandler, request: Any) -> None:
            if not tap.on:
                process(self, request)
                return
            # [recv, delay, sent, status]; registered first because a zero delay answers inline.
            entry: list[Any] = [time.monotonic(), None, None, None]
            tap.pending[(id(self), request.stream_id)] = entry
            tap.last_delay = None
            process(self, request)
            entry[1] = tap.last_delay

        def _respond(
            self: mock_handler.ConnectionHandler, request: Any, verdict: Any, apns_id: str
        ) -> None:
            before = self.responses
            respond(self, request, verdict, apns_id)
            entry = tap.pending.pop((id(self), request.stream_id), None)
            if entry is not None and self.responses > before and len(tap.records) < RECORD_LIMIT:
                entry[2] = time.monotonic()
                entry[3] = verdict.status
                tap.records.append(entry)

        mock_faults.FaultInjector.delay = delay  # type: ignore[method-assign]
        mock_handler.ConnectionHandler._process = _process  # type: ignore[method-assign]
        mock_handler.ConnectionHandler._respond = _respond  # type: ignore[method-assign]
        mock_handler.ConnectionHandler._dispatch = _dispatch  # type: ignore[method-assign]


def _larger_backlog() -> None:
    # asyncio's default listen backlog (100) drops SYNs when thousands of targets dial at
    # once; Apple's front ends do not. A benchmark-only change of the mock's environment.
    start_server = asyncio.start_server

    async def patched(*args: Any, **kwargs: Any) -> asyncio.Server:
        kwargs.setdefault("backlog", BACKLOG)
        return await start_server(*args, **kwargs)

    asyncio.start_server = patched


async def main(pki_dir: Path) -> None:
    """Serve until SIGTERM."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    _larger_backlog()
    tap = Tap()
    tap.install()
    mat = material.load(pki_dir)
    mock = MockAPNs(mat.server, handshake_timeout=60.0)
    mock.add_signing_key(mat.key_id, mat.team_id, mat.signing_key.public_key)
    for token in mat.device_tokens[:1]:
        mock.devices.register(token, mat.topic)
    app = create_app(mock)

    async def set_tap(request: web.Request) -> web.Response:
        body = await request.json()
        tap.on = bool(body.get("on"))
        if tap.on:
            tap.records.clear()
            tap.pending.clear()
            tap.pings.clear()
        return web.json_response({"on": tap.on})

    async def timings(request: web.Request) -> web.Response:
        keys = ("recv", "delay", "sent", "status")
        return web.json_response(
            {"records": [dict(zip(keys, r, strict=True)) for r in tap.records]}
        )

    async def count(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "records": len(tap.records),
                "requests": mock.stats.requests,
                "connections": mock.stats.connections,
                "active_connections": mock.stats.active_connections,
            }
        )

    app.router.add_put("/bench/tap", set_tap)
    app.router.add_get("/bench/timings", timings)
    app.router.add_get("/bench/count", count)

    async def pings(request: web.Request) -> web.Response:
        return web.json_response({"pings": tap.pings})

    app.router.add_get("/bench/pings", pings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    await mock.start("127.0.0.1", 0)
    admin_port = runner.addresses[0][1]
    print(json.dumps({"port": mock.port, "admin": admin_port}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await mock.stop()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
