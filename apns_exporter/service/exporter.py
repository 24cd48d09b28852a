"""The running service: owns the config, one probe context per target, the scheduler and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import functools
import hashlib
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from apns_exporter.client.channel import Channel
from apns_exporter.client.connection import Endpoint
from apns_exporter.client.dial import Resolver
from apns_exporter.client.tls import client_context
from apns_exporter.config import Config, Target, load
from apns_exporter.creds.credential import Credential, Loaded
from apns_exporter.creds.tokens import TokenCache
from apns_exporter.errors import ConfigError, ConfigIssue, CredentialError, ExpiredCredential
from apns_exporter.probes import (
    ProbeContext,
    ProbeKind,
    ProbeResult,
    canary,
    ping,
    reachability,
    tls,
)
from apns_exporter.receipts.book import Delivery, ReceiptBook
from apns_exporter.service.metrics import Metrics
from apns_exporter.service.scheduler import Job, Scheduler

log = logging.getLogger(__name__)

# Longest wait before a probe's first run; see Exporter._jobs.
STAGGER_SECONDS = 10.0
# Dials in progress at once, across all targets; more queue (see Channel).
MAX_CONCURRENT_DIALS = 32


def _digest(path: str) -> str | None:
    # Content, not mtime: editors and ConfigMap updates change mtimes without changes.
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _epoch(day: datetime.date) -> float:
    return datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp()


def shard_of(name: str, count: int) -> int:
    """Which of ``count`` replicas probes the target ``name`` (stable across restarts)."""
    # A stable hash: Python's hash() of a str changes with every process.
    return zlib.crc32(name.encode()) % count


@dataclass
class TargetState:
    """One configured target and the live objects that probe it."""

    config: Target
    context: ProbeContext
    credential: Credential
    loaded: Loaded | None = None
    error: CredentialError | None = None

    @property
    def credential_error(self) -> str | None:
        """Why the credential cannot be used, if it cannot."""
        return str(self.error) if self.error is not None else None


class Exporter:
    """Start, inspect and stop the probing of every configured target."""

    def __init__(
        self,
        config: Config,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        resolver: Resolver | None = None,
        shard: tuple[int, int] | None = None,
        config_file: str | None = None,
    ) -> None:
        self.config = config
        self.config_file = config_file
        self._config_digest = _digest(config_file) if config_file else None
        self.receipts = ReceiptBook(config.receipt_secrets())
        self.receipt_url: str | None = None  # set once the receipt listener runs
        self._expiry: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()
        self._shard = shard
        self._resolver = resolver
        self.metrics = metrics or Metrics()
        self.scheduler = Scheduler(self.metrics.record)
        self.targets: dict[str, TargetState] = {}
        self.clock = clock
        self._tokens = TokenCache(clock=clock)
        self._dials = asyncio.Semaphore(MAX_CONCURRENT_DIALS)
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """Whether the config is loaded and the scheduler is running."""
        return self._task is not None and self.scheduler.running

    async def start(self) -> None:
        """Build every target and start probing; returns once the scheduler runs."""
        started = asyncio.Event()
        self._task = asyncio.create_task(self.scheduler.run([], started), name="scheduler")
        await started.wait()
        self._expiry = asyncio.create_task(self._expire_receipts(), name="receipt-expiry")
        for target in self._mine(self.config):
            self._add(target)
        self.metrics.reloaded(True, self.clock())
        log.info("probing %d target(s)", len(self.targets))

    async def reload(self, config: Config) -> None:
        """Apply a new, already validated config; unchanged targets keep running untouched."""
        same_global = config.global_ == self.config.global_
        wanted = {t.name: t for t in self._mine(config)}
        for name, state in list(self.targets.items()):
            if not same_global or wanted.get(name) != state.config:
                await self._remove(name)
        for name, target in wanted.items():
            if name not in self.targets:
                self._add(target)
        self.config = config
        secrets = config.receipt_secrets()
        self.receipts.set_secrets(secrets)
        if secrets and self.receipt_url is None:
            log.warning(
                "a target now measures delivery, but the receipt listener only starts with "
                "the exporter: restart it so devices can post receipts"
            )
        self.metrics.reloaded(True, self.clock())
        log.info("configuration reloaded: probing %d target(s)", len(self.targets))

    async def reload_file(self) -> None:
        """Re-read the config file and apply it; on any error nothing changes and it raises."""
        if self.config_file is None:
            raise ConfigError([ConfigIssue("reload", "the exporter was not started from a file")])
        async with self._reload_lock:
            try:
                config = load(self.config_file)
            except ConfigError:
                self.metrics.reloaded(False, self.clock())
                raise
            self._config_digest = _digest(self.config_file)
            await self.reload(config)

    async def watch_file(self, interval: float) -> None:
        """Reload whenever the config file's content changes; runs until cancelled."""
        while True:
            await asyncio.sleep(interval)
            if self.config_file is None or _digest(self.config_file) == self._config_digest:
                continue
            try:
                await self.reload_file()
            except ConfigError as exc:
                # Remember the broken content so it is reported once, not every interval.
                self._config_digest = _digest(self.config_file)
                log.error("config reload failed, keeping the running config: %s", exc)

    async def probe_once(self, name: str) -> list[ProbeResult]:
        """Run every probe of one target once, now, without the scheduler."""
        target = next(t for t in self.config.targets if t.name == name)
        state = self._build(target)
        try:
            return [await job.probe(state.context) for job in self._jobs(state)]
        finally:
            await self._close(state)

    def _mine(self, config: Config) -> list[Target]:
        """The targets this replica probes: all of them, or its shard."""
        if self._shard is None:
            return list(config.targets)
        index, count = self._shard
        return [t for t in config.targets if shard_of(t.name, count) == index]

    def _add(self, target: Target) -> None:
        state = self._build(target)
        self.targets[target.name] = state
        for job in self._jobs(state):
            self.scheduler.add(job)

    async def _remove(self, name: str) -> None:
        state = self.targets.pop(name)
        await self.scheduler.remove(name)
        await self._close(state)
        self.metrics.forget(name)

    @property
    def measures_delivery(self) -> bool:
        """Whether any target waits for device receipts (so the receipt listener must run)."""
        return bool(self.config.receipt_secrets())

    def on_receipt(self, delivery: Delivery) -> None:
        """A device confirmed a canary."""
        self.metrics.delivered(delivery, self.clock())

    def on_rejected_receipt(self, reason: str, target: str | None) -> None:
        """The receipt listener refused a request."""
        self.metrics.receipt_rejected(reason)
        log.debug("receipt rejected (%s) for target %s", reason, target or "?")

    async def _expire_receipts(self) -> None:
        while True:
            now = self.clock()
            for target, canary_id in self.receipts.expire(now):
                self.metrics.lost(target)
                log.info(
                    "target %s: no receipt for canary %s before its deadline", target, canary_id
                )
            due = self.receipts.next_due()
            # Wake at the next deadline, but at least once a second for newly sent canaries.
            await asyncio.sleep(max(0.05, min(1.0, (due - now) if due is not None else 1.0)))

    async def stop(self) -> None:
        """Stop probing and close every connection."""
        for task in (self._task, self._expiry):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await asyncio.gather(*(self._close(s) for s in self.targets.values()))

    @staticmethod
    async def _close(state: TargetState) -> None:
        await state.context.channel.aclose()
        if state.context.auth_channel is not None:
            await state.context.auth_channel.aclose()

    def _build(self, target: Target) -> TargetState:
        timeout = self.config.global_.scrape_timeout
        credential = Credential(target, self._tokens, clock=self.clock)
        loaded: Loaded | None = None
        error: CredentialError | None = None
        try:
            loaded = credential.load()
        except ExpiredCredential as exc:
            # Still presented: APNs's TLS alert is the clearest evidence of what is wrong.
            loaded, error = exc.loaded, exc
            log.error("target %s: %s", target.name, exc)
        except CredentialError as exc:
            error = exc
            log.error("target %s: %s; its canary waits until the file is fixed", target.name, exc)
        for warning in loaded.warnings if loaded else ():
            log.warning("target %s: %s", target.name, warning)
        ca_file = str(target.ca_file) if target.ca_file is not None else None
        ssl_context = loaded.ssl_context if loaded else client_context(ca_file)
        endpoint = Endpoint(target.host, target.port)
        presents_certificate = loaded is not None and loaded.certificate is not None
        channel = Channel(
            endpoint,
            ssl_context,
            connect_timeout=timeout,
            observer=functools.partial(self.metrics.observe, target.name),
            resolver=self._resolver,
            client_certificate=presents_certificate,
            dial_limit=self._dials,
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
                client_certificate=presents_certificate,
                dial_limit=self._dials,
            )
        token = target.auth.token
        topic = credential.topic(loaded) if loaded else target.topic
        measures_delivery = target.canary is not None and target.canary.delivery is not None
        self.metrics.add_target(
            target.name,
            str(target.environment),
            host=target.host,
            port=target.port,
            topic=topic or "",
            auth_method=target.auth.method,
            canary_interval=target.canary.interval if target.canary else None,
            ping_interval=target.ping.interval,
            key=(token.key_id, token.team_id) if token is not None else None,
            rotate_by=_epoch(token.rotate_by) if token and token.rotate_by else None,
            delivery=measures_delivery,
        )
        context = ProbeContext(
            target,
            channel,
            loaded.token if loaded else None,
            timeout,
            clock=self.clock,
            resolver=self._resolver,
            auth_channel=auth_channel,
            topic=topic,
            credential_ok=loaded is not None,
            receipts=self.receipts if measures_delivery else None,
        )
        return TargetState(target, context, credential, loaded, error)

    async def _check_credential(self, state: TargetState, ctx: ProbeContext) -> ProbeResult:
        """Re-read changed credential files: use a good one, keep the old one on a bad one."""
        ctx.begin()
        if state.credential.changed():
            try:
                loaded = state.credential.load()
            except ExpiredCredential as exc:
                state.error = exc
                if state.loaded is None:
                    await self._swap(state, exc.loaded)
                    state.error = exc
            except CredentialError as exc:
                state.error = exc
                ctx.log(f"credential changed on disk but cannot be used: {exc}")
                log.error(
                    "target %s: new credential rejected, keeping the old: %s", ctx.target.name, exc
                )
            else:
                await self._swap(state, loaded)
                ctx.log("credential changed on disk: reloaded, new connections use it")
        error, current = state.error, state.loaded
        return ctx.result(
            ProbeKind.CREDENTIALS,
            error is None,
            str(error) if error else "credential loaded",
            error=error.reason if error else None,
            certificate=current.certificate if current else None,
        )

    async def _swap(self, state: TargetState, loaded: Loaded) -> None:
        old, state.loaded, state.error = state.loaded, loaded, None
        ctx = state.context
        ctx.token = loaded.token
        ctx.credential_ok = True
        for warning in loaded.warnings:
            log.warning("target %s: %s", ctx.target.name, warning)
        if old is not None and old.token is loaded.token and loaded.certificate is None:
            return  # the same signing key: the token and the connection stay as they are
        # A new certificate, or a new key (whose token must not follow the old one on the
        # same connection): drain the old connections; the next probe dials with the new one.
        for channel in (ctx.channel, ctx.auth_channel):
            if channel is not None:
                await channel.replace_ssl_context(
                    loaded.ssl_context, client_certificate=loaded.certificate is not None
                )

    def _jobs(self, state: TargetState) -> list[Job]:
        target, ctx = state.config, state.context
        timeout = ctx.default_timeout
        check_credential = functools.partial(self._check_credential, state)
        interval = self.config.global_.credential_check_interval
        jobs = [Job(ctx, ProbeKind.CREDENTIALS, check_credential, interval, timeout)]
        if target.inventory_only:
            return jobs
        jobs.append(
            Job(ctx, ProbeKind.PING, ping.run, target.ping.interval, target.ping.timeout or timeout)
        )
        if target.canary is not None:
            # Each canary run may make one push per device token plus the auth check.
            pushes = len(target.canary.device_tokens) + int(target.canary.auth_check)
            deadline = (target.canary.timeout or timeout) * max(1, pushes) + timeout
            jobs.append(Job(ctx, ProbeKind.CANARY, canary.run, target.canary.interval, deadline))
        if target.tls_check is not None:
            check = target.tls_check
            # Up to three handshakes: fetch the chain, verify with ca_file, with the system.
            deadline = (check.timeout or timeout) * 3
            jobs.append(Job(ctx, ProbeKind.TLS, tls.run, check.interval, deadline))
        if target.reachability is not None:
            checks = len(target.reachability.endpoints(target)) * 3  # resolve + two families
            reach = target.reachability
            deadline = (reach.timeout or timeout) * checks
            jobs.append(
                Job(ctx, ProbeKind.REACHABILITY, reachability.run, reach.interval, deadline)
            )
        # Network probes start spread out (credentials are local and go first), so a
        # thousand targets started together do not all dial in the same instant.
        return [
            job
            if job.kind is ProbeKind.CREDENTIALS
            else dataclasses.replace(job, stagger=min(job.interval, STAGGER_SECONDS))
            for job in jobs
        ]
