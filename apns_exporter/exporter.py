"""The running service: owns the config, one probe context per target, the scheduler and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from apns_exporter.channel import Channel
from apns_exporter.config import Config, Target
from apns_exporter.connection import Endpoint, Resolver, client_ssl_context
from apns_exporter.errors import CredentialError
from apns_exporter.metrics import Metrics
from apns_exporter.probes import ProbeContext, ProbeKind, canary, ping, reachability
from apns_exporter.scheduler import Job, Scheduler
from apns_exporter.tokens import ProviderToken, TokenCache

log = logging.getLogger(__name__)


@dataclass
class TargetState:
    """One configured target and the live objects that probe it."""

    config: Target
    context: ProbeContext
    credential_error: str | None = None


class Exporter:
    """Start, inspect and stop the probing of every configured target."""

    def __init__(
        self,
        config: Config,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        resolver: Resolver | None = None,
    ) -> None:
        self.config = config
        self._resolver = resolver
        self.metrics = metrics or Metrics()
        self.scheduler = Scheduler(self.metrics.record)
        self.targets: dict[str, TargetState] = {}
        self._clock = clock
        self._tokens = TokenCache(clock=clock)
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """Whether the config is loaded and the scheduler is running."""
        return self._task is not None and self.scheduler.running

    async def start(self) -> None:
        """Build every target and start probing; returns once the scheduler runs."""
        jobs: list[Job] = []
        for target in self.config.targets:
            state = self._build(target)
            self.targets[target.name] = state
            jobs.extend(self._jobs(state))
        started = asyncio.Event()
        self._task = asyncio.create_task(self.scheduler.run(jobs, started), name="scheduler")
        await started.wait()
        log.info("probing %d target(s)", len(self.targets))

    async def stop(self) -> None:
        """Stop probing and close every connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(self._close(s) for s in self.targets.values()))

    @staticmethod
    async def _close(state: TargetState) -> None:
        await state.context.channel.aclose()
        if state.context.auth_channel is not None:
            await state.context.auth_channel.aclose()

    def _build(self, target: Target) -> TargetState:
        timeout = self.config.global_.scrape_timeout
        ca_file = str(target.ca_file) if target.ca_file is not None else None
        endpoint, ssl_context = Endpoint(target.host, target.port), client_ssl_context(ca_file)
        channel = Channel(
            endpoint,
            ssl_context,
            connect_timeout=timeout,
            observer=functools.partial(self.metrics.observe, target.name),
            resolver=self._resolver,
        )
        auth_channel = None
        if target.canary is not None and target.canary.auth_check:
            # Its stream limit sits at 1 after every (expected) rejection: not the one to graph.
            auth_channel = Channel(
                endpoint,
                ssl_context,
                connect_timeout=timeout,
                observer=functools.partial(self.metrics.observe, target.name, streams=False),
                resolver=self._resolver,
            )
        token: ProviderToken | None = None
        error: str | None = None
        auth = target.auth.token
        if auth is not None:
            try:
                token = self._tokens.get(
                    auth.key_file, auth.key_id, auth.team_id, auth.refresh_interval
                )
            except CredentialError as exc:
                error = str(exc)
                log.error("target %s: %s; its canary is disabled until fixed", target.name, exc)
        self.metrics.add_target(
            target.name,
            str(target.environment),
            host=target.host,
            port=target.port,
            topic=target.topic,
            auth_method="token" if auth is not None else "certificate",
            canary_interval=target.canary.interval if target.canary else None,
            ping_interval=target.ping.interval,
            key=(auth.key_id, auth.team_id) if auth is not None else None,
        )
        context = ProbeContext(
            target,
            channel,
            token,
            timeout,
            clock=self._clock,
            resolver=self._resolver,
            auth_channel=auth_channel,
        )
        return TargetState(target, context, error)

    def _jobs(self, state: TargetState) -> list[Job]:
        target, ctx = state.config, state.context
        timeout = ctx.default_timeout
        jobs = [
            Job(ctx, ProbeKind.PING, ping.run, target.ping.interval, target.ping.timeout or timeout)
        ]
        if target.canary is not None and state.credential_error is None:
            # Each canary run may make one push per device token plus the auth check.
            pushes = len(target.canary.device_tokens) + int(target.canary.auth_check)
            deadline = (target.canary.timeout or timeout) * max(1, pushes) + timeout
            jobs.append(Job(ctx, ProbeKind.CANARY, canary.run, target.canary.interval, deadline))
        if target.reachability is not None:
            checks = len(target.reachability.endpoints(target)) * 3  # resolve + two families
            reach = target.reachability
            deadline = (reach.timeout or timeout) * checks
            jobs.append(
                Job(ctx, ProbeKind.REACHABILITY, reachability.run, reach.interval, deadline)
            )
        return jobs
