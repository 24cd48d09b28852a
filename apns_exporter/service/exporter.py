"""The running service: owns the config, the targets, the scheduler and every long-lived task.

One :class:`asyncio.TaskGroup`, entered by :meth:`Exporter.running`, holds the scheduler,
the receipt expiry, the config watchers and reloads. Every probe result takes one road,
:meth:`Exporter.apply`: the target's state, then metrics, the journal and listeners.
Listeners (the web and receipt servers) start first, so a receipt for the very first
canary has somewhere to go, and stop last: shutdown stops the probes, closes the
connections, then stops the listeners.

(Past 400 lines: adding and removing targets, whether from a reload or a discover scan,
stays in one class so the two never race; the decisions live in service/inventory.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, Protocol

from apns_exporter.client.dial import Resolver
from apns_exporter.config import Config, DiscoverSource, Fleet, Target, load_fleet
from apns_exporter.config.fleet import digest as fleet_digest
from apns_exporter.config.fleet import refuse
from apns_exporter.creds.credential import check_files_async
from apns_exporter.creds.discovery import Discovery, Found
from apns_exporter.errors import ConfigError, ConfigIssue
from apns_exporter.probes import CredentialsResult, ProbeKind, ProbeResult, ProbeRun, perform
from apns_exporter.probes.registry import probes_of
from apns_exporter.receipts.desk import ReceiptDesk, ReceiptOutcomes
from apns_exporter.service import heap
from apns_exporter.service.environments import EnvironmentWatch
from apns_exporter.service.inventory import Inventory
from apns_exporter.service.journal import Journal
from apns_exporter.service.metrics import Metrics
from apns_exporter.service.scheduler import Job, Scheduler
from apns_exporter.service.state import TargetBuilder, TargetState, describe

log = logging.getLogger(__name__)

# Longest wait before a network probe's first run; see Exporter._jobs.
STAGGER_SECONDS = 10.0
# A reload adding thousands of targets lets the loop run after every this many.
YIELD_EVERY = 50
# Dials in progress at once, across all targets; more queue (see Channel).
MAX_CONCURRENT_DIALS = 32

__all__ = ["Exporter", "Listener", "TargetState", "shard_of"]


class Listener(Protocol):
    """A server the exporter starts before probing and stops after closing connections."""

    async def start(self) -> None:
        """Listen; raises OSError when the address cannot be had."""

    async def stop(self) -> None:
        """Stop listening and finish open requests."""


def _digest(path: str) -> str:
    # Content, not mtime: editors and ConfigMap updates change mtimes without changes.
    # The target files count too: one added, changed or removed is a change.
    return fleet_digest(path)


def _start(state: TargetState, kind: ProbeKind, deadline: float) -> ProbeRun:
    """A run of ``kind`` on a snapshot of ``state`` taken now."""
    return state.snapshot().start(kind, deadline)


def shard_of(name: str, count: int) -> int:
    """Which of ``count`` replicas probes the target ``name`` (stable across restarts)."""
    # A stable hash: Python's hash() of a str changes with every process.
    return zlib.crc32(name.encode()) % count


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
        fleet: Fleet | None = None,
    ) -> None:
        self.config = config
        self.config_file = config_file
        # Where each target is written, and the target files refused at the last load.
        if fleet is None and config_file is not None and config.target_files:
            fleet = load_fleet(config_file)  # which target comes from which file
        self.fleet = fleet or Fleet(config)
        self.inventory = Inventory()
        self._discoveries: dict[str, tuple[DiscoverSource, asyncio.Task[None]]] = {}
        self._config_digest = _digest(config_file) if config_file else None
        self.restart_needed: list[str] = []  # what the last reload could not apply
        self._reload_lock = asyncio.Lock()
        self._shard = shard
        self.metrics = metrics or Metrics()
        self.receipts = ReceiptDesk(
            config.receipt_secrets(),
            config.receipts.listen_address,
            ReceiptOutcomes(
                delivered=lambda d: self.metrics.delivered(d, self.clock()),
                rejected=self.metrics.receipt_rejected,
                lost=self.metrics.lost,
            ),
            clock=clock,
        )
        self.journal = Journal()
        self.scheduler = Scheduler(self.apply)
        self.targets: dict[str, TargetState] = {}
        self.clock = clock
        # Called with every applied result; tests and tools wait on results through it.
        self.listeners: list[Callable[[ProbeResult], None]] = []
        self._builder = TargetBuilder(
            self.receipts.book,
            clock=clock,
            resolver=resolver,
            dial_limit=asyncio.Semaphore(MAX_CONCURRENT_DIALS),
        )
        self.environments = EnvironmentWatch(self.metrics, resolver=resolver, clock=clock)
        self._group: asyncio.TaskGroup | None = None  # set while running
        self._tasks: set[asyncio.Task[None]] = set()  # the group's tasks, but the scheduler's
        self._scheduler: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """Whether the config is loaded and the scheduler is running."""
        return self._group is not None and self.scheduler.running

    @contextlib.asynccontextmanager
    async def running(self, *listeners: Listener) -> AsyncIterator[Exporter]:
        """Start ``listeners``, then probe every target until the block ends; then shut down."""
        started: list[Listener] = []
        try:
            for listener in listeners:
                await listener.start()
                started.append(listener)
            async with asyncio.TaskGroup() as group:
                self._group = group
                try:
                    await self._start()
                    yield self
                finally:
                    await self._shutdown()
        finally:
            self._group = None
            for listener in reversed(started):
                await listener.stop()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``coro`` as one of the service's tasks until it ends or the service stops."""
        if self._group is None:
            coro.close()
            raise RuntimeError("the exporter is not running")
        task = self._group.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _start(self) -> None:
        assert self._group is not None
        started = asyncio.Event()
        self._scheduler = self._group.create_task(self.scheduler.run([], started), name="scheduler")
        await started.wait()
        self.spawn(self.receipts.expire_forever(), "receipt-expiry")
        self.spawn(heap.keep_collections_short(), "gc-freeze")
        self.spawn(self.environments.run(lambda: self.config), "environment-checks")
        for target in self._mine(self.config):
            self._add(target)
        self._count(self.config)
        self._report_broken()
        self._start_discovery()
        log.info("probing %d target(s)", len(self.targets))

    def _report_broken(self) -> None:
        """Log the refused target files; the reload gauge reads 0 while any is broken."""
        for issue in self.fleet.issues:
            log.error("config: %s", issue)
        if self.fleet.broken:
            log.error(
                "%d target file(s) refused, their targets keep their previous definition "
                "(or are absent if new); every other target runs",
                len(self.fleet.broken),
            )
        self.metrics.reloaded(not self.fleet.broken, self.clock())

    async def _shutdown(self) -> None:
        self._group = None  # nothing new starts from here on
        # Probes first (their runs hold connections), then the other tasks, then the sockets.
        for tasks in ([self._scheduler] if self._scheduler else [], list(self._tasks)):
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._scheduler = None
        await asyncio.gather(*(s.aclose() for s in self.targets.values()))

    async def reload(self, config: Config) -> None:
        """Apply a new, already validated config; unchanged targets keep running untouched."""
        same_global = config.global_ == self.config.global_
        wanted = {t.name: t for t in self._mine(config)}
        # Discovered targets stay while their source does (its scan decides the rest).
        kept = {s.name for s in config.discover}
        for source in list(self._discoveries):
            if source not in kept or self._discoveries[source][0] not in config.discover:
                await self._stop_discovery(source)
        for found in self.inventory.found.values():
            wanted |= {n: f.target for n, f in found.items() if n not in wanted}
        for count, (name, state) in enumerate(list(self.targets.items())):
            if not same_global or wanted.get(name) != state.config:
                await self._remove(name)
            if count % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # comparing 10 000 definitions takes a while too
        self.config = config
        for count, (name, target) in enumerate(wanted.items()):
            if name not in self.targets:
                self._add(target)
            if count % YIELD_EVERY == YIELD_EVERY - 1:
                # Building targets loads their files: let the probes run in between.
                await asyncio.sleep(0)
        self.receipts.book.set_secrets(config.receipt_secrets())
        if not same_global:
            self.environments.wake()
        self.restart_needed = self.receipts.restart_notes(
            config.receipt_secrets(), config.receipts.listen_address
        )
        for note in self.restart_needed:
            log.warning("configuration reloaded, but needs a restart: %s", note)
        self._count(config)
        if self._group is not None:
            self._start_discovery()
        self._report_broken()
        log.info("configuration reloaded: probing %d target(s)", len(self.targets))

    async def reload_file(self) -> None:
        """Re-read the config file and apply it; on any error nothing changes and it raises."""
        if self.config_file is None:
            raise ConfigError([ConfigIssue("reload", "the exporter was not started from a file")])
        async with self._reload_lock:
            try:
                # Parsing a large file takes seconds: /-/healthy and the probes must not wait.
                fleet = await asyncio.to_thread(load_fleet, self.config_file, self.fleet)
                # All or nothing for the main file: every file it names loads before any is
                # applied. A target file with a problem is refused alone (see config/fleet.py).
                checked = await check_files_async(
                    self.config_file, self._changed(fleet.config), fleet.origins
                )
                main = [
                    i for f, found in checked.by_file.items() if f not in fleet.files for i in found
                ]
                if main:
                    raise ConfigError(main)
                refused = {f: i for f, i in checked.by_file.items() if f in fleet.files}
                fleet = refuse(fleet, refused, self.fleet)
            except ConfigError as exc:
                self.metrics.reloaded(False, self.clock())
                # One line per problem, each with its file:line:column, whatever asked.
                for issue in exc.issues:
                    log.error("config reload: %s", issue)
                log.error(
                    "config reload failed (%d problem(s)), keeping the running config",
                    len(exc.issues),
                )
                raise
            self._config_digest = await asyncio.to_thread(_digest, self.config_file)
            self.fleet = fleet
            await self.reload(fleet.config)
            if fleet.broken:
                # Applied to everything else; the caller still hears what was refused.
                raise ConfigError(list(fleet.issues))

    def _changed(self, config: Config) -> Config:
        """``config`` with only the targets a reload would (re)build: new or changed ones.

        A running target's files are followed by its own credential checks; checking
        10 000 unchanged ones again would only make the reload slow.
        """
        if config.global_ != self.config.global_:
            return config
        running = {name: state.config for name, state in self.targets.items()}
        fresh = tuple(t for t in config.targets if running.get(t.name) != t)
        return config.model_copy(update={"targets": fresh})

    async def watch_file(self, interval: float) -> None:
        """Reload whenever the config file's content changes; runs until cancelled."""
        while True:
            await asyncio.sleep(interval)
            if self.config_file is None:
                continue
            digest = await asyncio.to_thread(_digest, self.config_file)
            if digest == self._config_digest:
                continue
            try:
                await self.reload_file()
            except ConfigError:
                # Remember the broken content so it is reported once, not every interval.
                self._config_digest = digest

    async def probe_once(self, name: str) -> list[ProbeResult]:
        """Run every probe of one target once, now, without the scheduler."""
        target = next(t for t in self.config.targets if t.name == name)
        state = self._builder.build(
            target,
            self.config.global_.scrape_timeout,
            self.config.egress(target),
            self.config.required_roots(),
        )
        results = []
        try:
            for job in self._jobs(state):
                result = await perform(job.probe, job.start())
                await state.apply(result)  # e.g. a credential reloaded for the next probe
                results.append(result)
        finally:
            await state.aclose()
        return results

    async def apply(self, result: ProbeResult) -> None:
        """The one road of a result: target state, then metrics, the journal and listeners."""
        state = self.targets.get(result.target)
        if state is None:
            return  # the target was removed while this run was in flight
        before = state.status
        status = await state.apply(result)
        if isinstance(result, CredentialsResult) and result.certificate is not None:
            # Remembered across renames of discovered credentials, so kept by the inventory.
            change = self.inventory.topic_seen(result.target, result.certificate)
            if change is not None:
                status = dataclasses.replace(status, topic_change=change)
        self.metrics.record(result, status)
        self.journal.record(result, before, status)
        for listener in self.listeners:
            try:
                listener(result)
            except Exception:  # a watcher's bug must not stop the probe that fed it
                log.exception("a result listener failed on a %s result", result.probe)

    def _mine(self, config: Config) -> list[Target]:
        """The targets this replica probes: all of them, or its shard."""
        if self._shard is None:
            return list(config.targets)
        index, count = self._shard
        return [t for t in config.targets if shard_of(t.name, count) == index]

    def _count(self, config: Config) -> None:
        self.metrics.sharded(self._shard or (0, 1), len(config.targets), len(self.targets))

    def _start_discovery(self) -> None:
        """Start scanning every discover source not scanned yet."""
        for source in self.config.discover:
            if source.name not in self._discoveries:
                task = self.spawn(self._discover(source), f"discover-{source.name}")
                self._discoveries[source.name] = (source, task)

    async def _stop_discovery(self, name: str) -> None:
        _, task = self._discoveries.pop(name)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for target in self.inventory.found.pop(name, {}):
            if target in self.targets:
                await self._remove(target)
        with contextlib.suppress(KeyError):
            self.metrics.discovered.remove(name)

    async def _discover(self, source: DiscoverSource) -> None:
        """Scan ``source`` now and every interval; list what appears, drop what went."""
        scan = Discovery(source, self.metrics.discovery_failed)
        while True:
            try:
                # Off the loop: a scan reads every new or changed file.
                found = await asyncio.to_thread(scan.scan)
                async with self._reload_lock:
                    await self._discovered(scan, found)
            except Exception:  # a bug in one scan must not stop the exporter; the next retries
                log.exception(
                    "discover %s: the scan failed; retrying at the next interval", source.name
                )
            await asyncio.sleep(source.interval)

    async def _discovered(self, scan: Discovery, found: dict[str, Found]) -> None:
        name = scan.source.name
        configured = {t.name for t in self.config.targets}
        wanted = self.inventory.choose(scan, found, configured)
        if self._shard is not None:
            index, count = self._shard
            wanted = {n: f for n, f in wanted.items() if shard_of(n, count) == index}
        before = self.inventory.found.get(name, {})
        for target, was in before.items():
            now = wanted.get(target)
            if target in self.targets and (now is None or now.target != was.target):
                await self._remove(target)
        self.inventory.found[name] = wanted
        for target, now in wanted.items():
            if target not in self.targets:
                self._add(now.target)
        self.metrics.discovered.labels(name).set(len(wanted))

    def _add(self, target: Target) -> None:
        state = self._builder.build(
            target,
            self.config.global_.scrape_timeout,
            self.config.egress(target),
            self.config.required_roots(),
        )
        self.targets[target.name] = state
        jobs = self._jobs(state)
        self.metrics.add_target(describe(state, {job.kind: job.interval for job in jobs}))
        for job in jobs:
            self.scheduler.add(job)

    async def _remove(self, name: str) -> None:
        state = self.targets.pop(name)
        await self.scheduler.remove(name)
        await state.aclose()
        self.metrics.forget(name)
        self.journal.forget(name)

    def _jobs(self, state: TargetState) -> Sequence[Job]:
        timeout = state.default_timeout
        jobs = []
        for spec, interval in probes_of(state.config, self.config.global_):
            deadline = spec.deadline(state.config, timeout)
            jobs.append(
                Job(
                    state.name,
                    spec.kind,
                    spec.run,
                    functools.partial(_start, state, spec.kind, deadline),
                    interval,
                    # Network probes start spread out (local ones go first), so a thousand
                    # targets started together do not all dial in the same instant.
                    stagger=min(interval, STAGGER_SECONDS) if spec.network else 0.0,
                )
            )
        return jobs
