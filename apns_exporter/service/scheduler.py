"""Runs each (target, probe) on its own interval under a deadline; keeps recent results."""

from __future__ import annotations

import asyncio
import collections
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from apns_exporter.probes import Probe, ProbeKind, ProbeResult, TargetContext, perform

HISTORY_LIMIT = 100
# The probe has its own per-request timeouts; this extra margin only catches a probe that
# hangs somewhere else (a stuck connect lock, say) so one target can never stall forever.
DEADLINE_MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class Job:
    """One probe of one target, how often to run it and the deadline of each run."""

    context: TargetContext
    kind: ProbeKind
    probe: Probe
    interval: float
    deadline: float
    # The first run waits a stable share of this, so thousands of targets started together
    # do not all dial and push in the same instant.
    stagger: float = 0.0


class Scheduler:
    """Owns one task per job, all in one TaskGroup; results go to ``on_result`` and listeners."""

    def __init__(
        self,
        on_result: Callable[[ProbeResult], None],
        *,
        deadline_margin: float = DEADLINE_MARGIN_SECONDS,
    ) -> None:
        self._listeners = [on_result]
        self._margin = deadline_margin
        self._history: dict[tuple[str, ProbeKind], collections.deque[ProbeResult]] = {}
        self._tasks: dict[tuple[str, ProbeKind], asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None
        self.running = False

    async def run(self, jobs: Iterable[Job], started: asyncio.Event | None = None) -> None:
        """Run the jobs until cancelled."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            for job in jobs:
                self.add(job)
            self.running = True
            if started is not None:
                started.set()
            # Keep the group open even with no jobs, so jobs can be added later.
            await asyncio.Event().wait()

    def add(self, job: Job) -> None:
        """Start running a job."""
        assert self._group is not None, "Scheduler.run() must be running"
        key = (job.context.target.name, job.kind)
        self._history.setdefault(key, collections.deque(maxlen=HISTORY_LIMIT))
        self._tasks[key] = self._group.create_task(self._loop(job), name=f"probe-{key}")

    async def remove(self, target: str) -> None:
        """Stop every job of a target and forget its history."""
        keys = [key for key in self._tasks if key[0] == target]
        tasks = [self._tasks.pop(key) for key in keys]
        for task in tasks:
            task.cancel()
        # Cancelled children do not cancel the TaskGroup; wait so no result arrives later.
        await asyncio.gather(*tasks, return_exceptions=True)
        for key in keys:
            self._history.pop(key, None)

    def subscribe(self, listener: Callable[[ProbeResult], None]) -> None:
        """Also call ``listener`` with every result from now on."""
        self._listeners.append(listener)

    def latest(self, target: str, kind: ProbeKind) -> ProbeResult | None:
        """The most recent result of one probe, if it has run."""
        history = self._history.get((target, kind))
        return history[-1] if history else None

    def history(self, target: str) -> list[ProbeResult]:
        """Recent results of every probe of a target, newest first."""
        results = [r for (name, _), h in self._history.items() if name == target for r in h]
        return sorted(results, key=lambda r: r.started_at, reverse=True)

    async def _loop(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        key = f"{job.context.target.name}/{job.kind}".encode()
        next_run = loop.time() + job.stagger * zlib.crc32(key) / 2**32
        await asyncio.sleep(next_run - loop.time())
        while True:
            result = await self._run_once(job)
            self._history[(result.target, result.probe)].append(result)
            for listener in self._listeners:
                listener(result)
            next_run += job.interval
            # A run that overran its interval skips the missed slots instead of bursting.
            now = loop.time()
            if next_run < now:
                next_run = now + job.interval - (now - next_run) % job.interval
            await asyncio.sleep(next_run - now)

    async def _run_once(self, job: Job) -> ProbeResult:
        # Every run gets its own run object: a PING never touches a waiting canary's log.
        run = job.context.start(job.kind, job.deadline)
        return await perform(job.probe, run, margin=self._margin)
