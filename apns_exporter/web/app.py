"""The HTTP face of the exporter: /, /metrics, /-/healthy and /-/ready on aiohttp.

Web serves pages and answers requests; it never writes the service's state. The process
entry point (:mod:`apns_exporter.commands.serve`) starts these sites.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Collection

from aiohttp import web

from apns_exporter.errors import ConfigError
from apns_exporter.service.exporter import Exporter
from apns_exporter.service.journal import HISTORY_LIMIT
from apns_exporter.web import errorlog, headers, lifecycle, pages, scrape, webconfig
from apns_exporter.web.limits import ConnectionGuard, ConnectionLimits
from apns_exporter.web.webconfig import WebConfigWatcher

log = logging.getLogger(__name__)

# Scrapers hold keep-alive connections; do not let them delay shutdown past a few seconds.
SHUTDOWN_GRACE_SECONDS = 2.0
# Nothing the exporter serves takes a body bigger than this (reload has none at all).
MAX_REQUEST_BYTES = 64 * 1024

EXPORTER_KEY = web.AppKey("exporter", Exporter)
TELEMETRY_PATH_KEY = web.AppKey("telemetry_path", str)
RUNBOOK_URL_KEY = web.AppKey("runbook_url", str)
RELOAD_KEY = web.AppKey("reload", lifecycle.ReloadGate)
ALLOWED_HOSTS_KEY: web.AppKey[frozenset[str]] = web.AppKey("allowed_hosts")


def parse_listen_address(value: str) -> tuple[str | None, int]:
    """Split ``[host]:port`` (IPv6 in brackets); an empty host means every interface."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--web.listen-address {value!r}: expected [HOST]:PORT, e.g. :10054")
    host = host.strip("[]")
    return (host or None), int(port)


def make_app(
    exporter: Exporter,
    *,
    telemetry_path: str = "/metrics",
    web_config: WebConfigWatcher | None = None,
    runbook_url: str | None = None,
    allowed_hosts: Collection[str] = (),
) -> web.Application:
    """Build the aiohttp application serving one exporter (TLS and auth per web config).

    ``allowed_hosts``: DNS names a browser may use for ``POST /-/reload`` (IP addresses and
    localhost always may).
    """
    middlewares = [webconfig.middleware(web_config)] if web_config is not None else []
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=middlewares)
    if web_config is not None:
        app.on_response_prepare.append(webconfig.header_hook(web_config))
    app[EXPORTER_KEY] = exporter
    app[TELEMETRY_PATH_KEY] = telemetry_path
    app[RUNBOOK_URL_KEY] = runbook_url or ""
    app[ALLOWED_HOSTS_KEY] = frozenset(h.lower().rstrip(".") for h in allowed_hosts)
    app[RELOAD_KEY] = lifecycle.ReloadGate(exporter.reload_file)
    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_route("*", "/-/reload", reload)
    app.router.add_get("/config", show_config)
    app.router.add_get("/probes", show_probes)
    app.router.add_get("/", landing)
    return app


async def metrics(request: web.Request) -> web.StreamResponse:
    """The kept-rendered exposition, negotiated (OpenMetrics or text), gzip on request."""
    return await scrape.serve(request.app[EXPORTER_KEY].metrics.exposition, request)


async def healthy(request: web.Request) -> web.Response:
    """Liveness: the process serves HTTP, whatever the state of APNs."""
    return web.Response(text="Healthy\n")


async def ready(request: web.Request) -> web.Response:
    """Readiness: the config is loaded and the probes are scheduled."""
    if request.app[EXPORTER_KEY].ready:
        return web.Response(text="Ready\n")
    return web.Response(status=503, text="Not ready: the scheduler is not running\n")


async def reload(request: web.Request) -> web.Response:
    """POST re-reads the config file; a bad file is reported and never applied."""
    if request.method != "POST":
        raise web.HTTPMethodNotAllowed(request.method, ["POST"], text="Use POST.\n")
    allowed: frozenset[str] = request.app[ALLOWED_HOSTS_KEY]
    refused = lifecycle.cross_site(request, allowed)
    if refused is not None:
        log.warning("refused POST /-/reload from %s: %s", request.remote, refused)
        return web.Response(status=403, text=f"Forbidden: cross-site reload ({refused})\n")
    try:
        await request.app[RELOAD_KEY].reload()
    except ConfigError as exc:
        return web.Response(status=500, text=f"failed to reload config: {exc}\n")
    notes = request.app[EXPORTER_KEY].restart_needed
    return web.Response(text="Reloaded\n" + "".join(f"Needs a restart: {n}\n" for n in notes))


async def show_config(request: web.Request) -> web.Response:
    """The effective configuration, secrets masked."""
    return web.Response(text=pages.config_yaml(request.app[EXPORTER_KEY].config))


async def show_probes(request: web.Request) -> web.Response:
    """Recent probe results and logs of one target, as text."""
    exporter = request.app[EXPORTER_KEY]
    target = request.query.get("target", "")
    if target not in exporter.targets:
        names = ", ".join(sorted(exporter.targets)) or "none configured"
        return web.Response(
            status=404, text=f"Unknown target {target[:100]!r}; known targets: {names}\n"
        )
    try:
        limit = max(1, min(HISTORY_LIMIT, int(request.query.get("limit", "20"))))
    except ValueError:
        return web.Response(status=400, text="limit must be a whole number\n")
    return web.Response(text=pages.probe_log(exporter, target, limit))


async def landing(request: web.Request) -> web.Response:
    """A small HTML page listing targets and their latest probe results."""
    body = pages.landing(
        request.app[EXPORTER_KEY], request.app[TELEMETRY_PATH_KEY], request.app[RUNBOOK_URL_KEY]
    )
    return web.Response(text=body, content_type="text/html")


class Site:
    """One aiohttp application listening on one address; the exporter starts and stops it."""

    def __init__(
        self,
        app: web.Application,
        listen: tuple[str | None, int],
        *,
        what: str,
        ssl_context: ssl.SSLContext | None = None,
        on_started: Callable[[str], None] | None = None,
        limits: ConnectionLimits | None = None,
    ) -> None:
        errorlog.install()
        self.guard = ConnectionGuard(limits or ConnectionLimits())
        # First, so a request waiting for bcrypt already counts as busy, not idle.
        app.middlewares.insert(0, self.guard.middleware)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_SECONDS)
        self.url = ""
        self._server: asyncio.Server | None = None
        self._listen = listen
        self._what = what
        self._ssl_context = ssl_context
        self._on_started = on_started

    async def start(self) -> None:
        """Listen; a taken or forbidden address is logged and raised as OSError."""
        await self.runner.setup()
        assert self.runner.server is not None
        headers.harden(self.runner.server, self.runner.app)
        host, port = self._listen
        try:
            self._server = await self.guard.listen(self.runner, host, port, self._ssl_context)
        except OSError as exc:
            log.error("cannot listen%s on %s:%s: %s", self._what, host or "*", port, exc.strerror)
            await self.runner.cleanup()
            raise
        self.url = _site_url(self._server, tls=self._ssl_context is not None)
        if self._on_started is not None:
            self._on_started(self.url)

    async def stop(self) -> None:
        """Stop listening; open requests get a short grace period."""
        if self._server is not None:
            self._server.close()
        await self.runner.cleanup()


def _site_url(server: asyncio.Server, *, tls: bool) -> str:
    host, port = server.sockets[0].getsockname()[:2]
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    scheme = "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
