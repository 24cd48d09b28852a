"""Runs each (target, probe) on its own interval under a deadline and hands on each result."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from apns_exporter.probes import Probe, ProbeKind, ProbeResult, ProbeRun, perform

# The probe has its own per-request timeouts; this extra margin only catches a probe that
# hangs somewhere else (a stuck connect lock, say) so one target can never stall forever.
DEADLINE_MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class Job:
    """One probe of one target, how often to run it and the deadline of each run."""

    target: str
    kind: ProbeKind
    probe: Probe
    # A new run of this probe on a snapshot of its target taken now.
    start: Callable[[], ProbeRun]
    interval: float
    # The first run waits a stable share of this, so thousands of targets started together
    # do not all dial and push in the same instant.
    stagger: float = 0.0

    def first_delay(self) -> float:
        """How long after being added the job first runs: a stable share of its stagger."""
        key = f"{self.target}/{self.kind}".encode()
        return self.stagger * zlib.crc32(key) / 2**32


class Scheduler:
    """Owns one task per job, all in one TaskGroup; each result goes to ``on_result``."""

    def __init__(
        self,
        on_result: Callable[[ProbeResult], Awaitable[None]],
        *,
        deadline_margin: float = DEADLINE_MARGIN_SECONDS,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._on_result = on_result
        self._margin = deadline_margin
        self._clock = clock
        self._sleep = sleep
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
        key = (job.target, job.kind)
        self._tasks[key] = self._group.create_task(self._loop(job), name=f"probe-{key}")

    async def remove(self, target: str) -> None:
        """Stop every job of a target; no result of it arrives after this returns."""
        keys = [key for key in self._tasks if key[0] == target]
        tasks = [self._tasks.pop(key) for key in keys]
        for task in tasks:
            task.cancel()
        # Cancelled children do not cancel the TaskGroup; wait so no result arrives later.
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, job: Job) -> None:
        clock = self._clock or asyncio.get_running_loop().time
        next_run = clock() + job.first_delay()
        await self._sleep(next_run - clock())
        while True:
            # Every run gets its own run object: a PING never touches a waiting canary's log.
            result = await perform(job.probe, job.start(), margin=self._margin)
            await self._on_result(result)
            next_run += job.interval
            # A run that overran its interval skips the missed slots instead of bursting.
            now = clock()
            if next_run < now:
                next_run = now + job.interval - (now - next_run) % job.interval
            await self._sleep(next_run - now)
