"""The HTTP face of the exporter: /, /metrics, /-/healthy and /-/ready on aiohttp."""

from __future__ import annotations

import html
import time

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from apns_exporter import __version__
from apns_exporter.exporter import Exporter
from apns_exporter.probes import ProbeKind

EXPORTER_KEY = web.AppKey("exporter", Exporter)
TELEMETRY_PATH_KEY = web.AppKey("telemetry_path", str)


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
        cells = [html.escape(name), html.escape(str(state.config.environment)),
                 html.escape(f"{state.config.host}:{state.config.port}")]
        for kind in (ProbeKind.CANARY, ProbeKind.PING):
            result = exporter.scheduler.latest(name, kind)
            if result is None:
                cells.append("not run yet" if kind is ProbeKind.PING or state.config.canary
                             else "not configured")
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
