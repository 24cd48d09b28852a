"""The process: the exporter, its listeners and its signals, from start until told to stop.

SIGHUP reloads the config (and the web config); SIGTERM and SIGINT, handled by the
caller through ``stop``, shut down in order: probes, connections, then the listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from apns_exporter.errors import ConfigError
from apns_exporter.receipts.server import RECEIPT_PATH, make_receipt_app
from apns_exporter.service.exporter import Exporter, Listener
from apns_exporter.web.app import Site, make_app, parse_listen_address
from apns_exporter.web.limits import ConnectionLimits
from apns_exporter.web.webconfig import WebConfigWatcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listening:
    """How the process serves HTTP: where, which path, which web config, which limits."""

    address: tuple[str | None, int]
    telemetry_path: str = "/metrics"
    web_config: WebConfigWatcher | None = None
    limits: ConnectionLimits | None = None
    runbook_url: str | None = None
    # Re-read the config file this often when it changed (None: only on SIGHUP or reload).
    auto_reload_interval: float | None = None
    # DNS names browsers may use for POST /-/reload, besides addresses and localhost.
    allowed_hosts: tuple[str, ...] = ()


async def serve(
    exporter: Exporter,
    listening: Listening,
    stop: asyncio.Event,
    *,
    on_listening: Callable[[str], None] | None = None,
    on_receipts: Callable[[str], None] | None = None,
) -> int:
    """Run the exporter and its listeners until ``stop`` is set; 1 if a listener cannot bind.

    Listeners start before the probes, so a device receipt for the very first canary has
    somewhere to go; ``on_receipts`` gets the receipt URL at that moment.
    """
    web_config = listening.web_config
    site = Site(
        make_app(
            exporter,
            telemetry_path=listening.telemetry_path,
            web_config=web_config,
            runbook_url=listening.runbook_url,
            # The name the operator told us to listen on is one we answer to.
            allowed_hosts=[*listening.allowed_hosts, *filter(None, listening.address[:1])],
        ),
        listening.address,
        what="",
        ssl_context=web_config.ssl_context() if web_config is not None else None,
        limits=listening.limits,
    )
    listeners: list[Listener] = [site]
    if exporter.receipts.wanted:
        listeners.append(_receipt_site(exporter, on_receipts, listening.limits))
    try:
        async with exporter.running(*listeners):
            if listening.auto_reload_interval:
                exporter.spawn(exporter.watch_file(listening.auto_reload_interval), "config-watch")
            if web_config is not None:
                # Certificates and users rotate without a restart, even when nobody scrapes.
                exporter.spawn(web_config.run(), "web-config-watch")

            def on_sighup() -> None:
                if exporter.ready:
                    exporter.spawn(_reload_quietly(exporter), "sighup-reload")
                if web_config is not None:
                    web_config.reload()

            with _on_sighup(on_sighup):
                log.info("listening on %s", site.url)
                if on_listening is not None:
                    on_listening(site.url)
                await stop.wait()
                log.info("shutting down")
    except OSError:
        return 1  # a listener could not bind; it said why
    return 0


def _receipt_site(
    exporter: Exporter,
    on_receipts: Callable[[str], None] | None,
    limits: ConnectionLimits | None,
) -> Site:
    """The device-facing receipt listener; its own port keeps /metrics private."""
    desk = exporter.receipts

    def started(url: str) -> None:
        receipt_url = desk.listening(url, RECEIPT_PATH)
        if on_receipts is not None:
            on_receipts(receipt_url)

    app = make_receipt_app(desk.book, desk.received, desk.rejected, clock=desk.clock)
    listen = parse_listen_address(desk.listen_address)
    return Site(app, listen, what=" for receipts", on_started=started, limits=limits)


@contextlib.contextmanager
def _on_sighup(callback: Callable[[], None]) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    # Only the main thread may install signal handlers; elsewhere reload is HTTP-only.
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, callback)
    try:
        yield
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)


async def _reload_quietly(exporter: Exporter) -> None:
    try:
        await exporter.reload_file()
        log.info("configuration reloaded on SIGHUP")
    except ConfigError:
        pass  # the exporter has logged each problem
