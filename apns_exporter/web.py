"""The HTTP face of the exporter: /, /metrics, /-/healthy and /-/ready on aiohttp."""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from apns_exporter import __version__
from apns_exporter.exporter import Exporter
from apns_exporter.probes import ProbeKind

log = logging.getLogger(__name__)

# Scrapers hold keep-alive connections; do not let them delay shutdown past a few seconds.
SHUTDOWN_GRACE_SECONDS = 2.0

EXPORTER_KEY = web.AppKey("exporter", Exporter)
TELEMETRY_PATH_KEY = web.AppKey("telemetry_path", str)


def parse_listen_address(value: str) -> tuple[str | None, int]:
    """Split ``[host]:port`` (IPv6 in brackets); an empty host means every interface."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--web.listen-address {value!r}: expected [HOST]:PORT, e.g. :10054")
    host = host.strip("[]")
    return (host or None), int(port)


def make_app(exporter: Exporter, *, telemetry_path: str = "/metrics") -> web.Application:
    """Build the aiohttp application serving one exporter."""
    app = web.Application()
    app[EXPORTER_KEY] = exporter
    app[TELEMETRY_PATH_KEY] = telemetry_path
    app.router.add_get(telemetry_path, make_aiohttp_handler(exporter.metrics.registry))
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/", landing)
    return app


async def healthy(request: web.Request) -> web.Response:
    """Liveness: the process serves HTTP, whatever the state of APNs."""
    return web.Response(text="Healthy\n")


async def ready(request: web.Request) -> web.Response:
    """Readiness: the config is loaded and the probes are scheduled."""
    if request.app[EXPORTER_KEY].ready:
        return web.Response(text="Ready\n")
    return web.Response(status=503, text="Not ready: the scheduler is not running\n")


async def landing(request: web.Request) -> web.Response:
    """A small HTML page listing targets and their latest probe results."""
    exporter = request.app[EXPORTER_KEY]
    path = html.escape(request.app[TELEMETRY_PATH_KEY])
    rows = []
    now = time.time()
    for name, state in exporter.targets.items():
        cells = [
            html.escape(name),
            html.escape(str(state.config.environment)),
            html.escape(f"{state.config.host}:{state.config.port}"),
        ]
        for kind in (ProbeKind.CANARY, ProbeKind.PING):
            result = exporter.scheduler.latest(name, kind)
            if result is None:
                cells.append(
                    "not run yet"
                    if kind is ProbeKind.PING or state.config.canary
                    else "not configured"
                )
            else:
                status = "OK" if result.ok else "FAILED"
                age = now - result.started_at
                cells.append(f"{status} ({age:.0f}s ago): {html.escape(result.message)}")
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>APNs Exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;text-align:left}}
tr:nth-child(even){{background:#f4f4f4}}</style></head>
<body><h1>APNs Exporter</h1>
<p>Version {html.escape(__version__)}. Probes run on their own schedule; see
<a href="{path}">Metrics</a>.</p>
<table><thead><tr><th>Target</th><th>Environment</th><th>Endpoint</th>
<th>Last canary</th><th>Last PING</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
<p><a href="{path}">Metrics</a> · <a href="/-/healthy">Health</a> ·
<a href="/-/ready">Readiness</a></p></body></html>
"""
    return web.Response(text=body, content_type="text/html")


async def serve(
    exporter: Exporter,
    listen: tuple[str | None, int],
    telemetry_path: str,
    stop: asyncio.Event,
    on_listening: Callable[[str], None] | None = None,
) -> int:
    """Run the exporter and its web server until ``stop`` is set."""
    await exporter.start()
    runner = web.AppRunner(
        make_app(exporter, telemetry_path=telemetry_path),
        access_log=None,
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, listen[0], listen[1])
        try:
            await site.start()
        except OSError as exc:
            log.error("cannot listen on %s:%s: %s", listen[0] or "*", listen[1], exc.strerror)
            return 1
        url = _site_url(runner)
        log.info("listening on %s", url)
        if on_listening is not None:
            on_listening(url)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
        await exporter.stop()
    return 0


def _site_url(runner: web.AppRunner) -> str:
    host, port = runner.addresses[0][:2]
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
