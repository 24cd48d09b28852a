"""The process-wide environment check, run as one of the service's tasks.

Unlike the per-target probes it has no target: it runs once per ``interval`` (and at once
after a reload), and its results take their own short road: metrics, log, listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from apns_exporter.client.dial import Resolver
from apns_exporter.client.proxy import Proxy
from apns_exporter.config import Config
from apns_exporter.config.fields import read_password
from apns_exporter.probes import environments
from apns_exporter.probes.results import EnvironmentsResult
from apns_exporter.service.metrics import Metrics

log = logging.getLogger(__name__)


class EnvironmentWatch:
    """Checks which root each APNs environment presents, on the global schedule."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        resolver: Resolver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._metrics = metrics
        self._resolver = resolver
        self._clock = clock
        self._wake = asyncio.Event()
        # Called with every result; tests and tools wait on results through it.
        self.listeners: list[Callable[[EnvironmentsResult], None]] = []

    def wake(self) -> None:
        """Check again now (the configuration changed)."""
        self._wake.set()

    async def run(self, config: Callable[[], Config]) -> None:
        """Check, then wait ``interval`` or a wake-up; runs until cancelled."""
        while True:
            self._wake.clear()
            current = config()
            settings = current.global_.environment_checks
            if settings.enabled:
                result = await environments.run(
                    settings,
                    default_timeout=current.global_.scrape_timeout,
                    resolver=self._resolver,
                    proxy=_proxy(current),
                    clock=self._clock,
                )
                self.apply(result)
            else:
                self._metrics.environments_off()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), settings.interval)

    def apply(self, result: EnvironmentsResult) -> None:
        """Metrics, one log line per environment that could not be checked, and listeners."""
        self._metrics.record_environments(result)
        for check in result.checks:
            if not check.ok:
                fields = {"environment": check.environment, "endpoint": check.endpoint}
                fields |= {"reason": check.error or "none", "detail": check.message}
                log.warning("environment check failed", extra={"fields": fields})
        for listener in self.listeners:
            try:
                listener(result)
            except Exception:  # a watcher's bug must not stop the checks
                log.exception("an environment listener failed")


def _proxy(config: Config) -> Proxy | None:
    settings = config.global_
    if settings.proxy_url is None:
        return None
    # Validated when the config loaded, password file included.
    file = settings.proxy_password_file
    return Proxy.from_url(settings.proxy_url, password=read_password(file) if file else None)
