"""The scheduler runs every job on its interval and isolates hung or crashing probes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from apns_exporter.config import Target
from apns_exporter.probes import PingResult, ProbeKind, ProbeResult, ProbeRun, Snapshot
from apns_exporter.service.scheduler import Job, Scheduler


class _Target:
    """Just enough of a Target for a probe run: a name."""

    def __init__(self, name: str) -> None:
        self.name = name


class FakeClock:
    """A clock that moves only when the test advances it, and the sleep that follows it."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + max(0.0, delay), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its own moment, in order."""
        end = self.now + seconds
        while True:
            await _settle()
            due = sorted((s for s in self._sleepers if s[0] <= end), key=lambda s: s[0])
            if not due:
                break
            when, future = due[0]
            self._sleepers.remove(due[0])
            self.now = when
            future.set_result(None)
        self.now = end
        await _settle()


async def _settle() -> None:
    # Nothing here waits on real time or I/O, so a few loop turns let every woken task
    # reach its next sleep.
    for _ in range(10):
        await asyncio.sleep(0)


def _job(
    name: str,
    probe: Callable[[ProbeRun], Awaitable[ProbeResult]],
    interval: float,
    *,
    deadline: float = 1.0,
    clock: Callable[[], float] = lambda: 0.0,
    stagger: float = 0.0,
) -> Job:
    target: Target = _Target(name)  # type: ignore[assignment]
    snapshot = Snapshot(target, channel=None, default_timeout=1.0, clock=clock)  # type: ignore[arg-type]
    return Job(
        name,
        ProbeKind.PING,
        probe,
        lambda: snapshot.start(ProbeKind.PING, deadline),
        interval,
        stagger=stagger,
    )


async def _ok(ctx: ProbeRun) -> ProbeResult:
    return PingResult(run=ctx.finish(), ok=True, message="fine")


async def _hang(ctx: ProbeRun) -> ProbeResult:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def _crash(ctx: ProbeRun) -> ProbeResult:
    raise RuntimeError("bug in a probe")


@contextlib.asynccontextmanager
async def _running(scheduler: Scheduler, jobs: list[Job]) -> AsyncIterator[None]:
    started = asyncio.Event()
    task = asyncio.create_task(scheduler.run(jobs, started))
    await started.wait()
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class _Collector:
    """Receives the scheduler's results; lets a test wait until it has enough."""

    def __init__(self) -> None:
        self.results: list[ProbeResult] = []
        self._changed = asyncio.Event()

    async def __call__(self, result: ProbeResult) -> None:
        self.results.append(result)
        self._changed.set()

    async def until(self, enough: Callable[[list[ProbeResult]], bool]) -> None:
        async with asyncio.timeout(10):
            while not enough(self.results):
                self._changed.clear()
                await self._changed.wait()


async def test_job_runs_once_per_interval_on_the_clock() -> None:
    """A job runs at once (no stagger), then exactly once per interval of the clock."""
    clock, seen = FakeClock(), _Collector()
    scheduler = Scheduler(seen, clock=clock.time, sleep=clock.sleep)
    async with _running(scheduler, [_job("a", _ok, 10.0, clock=clock.time)]):
        await clock.advance(0)
        assert [r.started_at for r in seen.results] == [0.0]
        await clock.advance(9.9)
        assert len(seen.results) == 1
        await clock.advance(30.1)
        assert [r.started_at for r in seen.results] == [0.0, 10.0, 20.0, 30.0, 40.0]


async def test_first_run_waits_its_stable_share_of_the_stagger() -> None:
    """Each job's first run waits its own stable share of the stagger, not all at once."""
    clock, seen = FakeClock(), _Collector()
    scheduler = Scheduler(seen, clock=clock.time, sleep=clock.sleep)
    jobs = [_job(f"t{i}", _ok, 60.0, clock=clock.time, stagger=10.0) for i in range(20)]
    delays = {job.target: job.first_delay() for job in jobs}
    assert all(0 <= d < 10.0 for d in delays.values())
    assert len({round(d, 6) for d in delays.values()}) > 10  # spread, not clustered
    assert delays == {job.target: job.first_delay() for job in jobs}  # stable
    async with _running(scheduler, jobs):
        await clock.advance(10.0)
    assert {r.target: r.started_at for r in seen.results} == delays


async def test_an_overrunning_run_skips_missed_slots_instead_of_bursting() -> None:
    """A run that takes 2.5 intervals is followed by one run on the next slot, not a burst."""
    clock, seen = FakeClock(), _Collector()
    runs = 0

    async def slow(ctx: ProbeRun) -> ProbeResult:
        nonlocal runs
        runs += 1
        if runs == 1:
            await clock.sleep(25.0)
        return PingResult(run=ctx.finish(), ok=True, message="fine")

    scheduler = Scheduler(seen, clock=clock.time, sleep=clock.sleep)
    async with _running(scheduler, [_job("a", slow, 10.0, clock=clock.time, deadline=100.0)]):
        await clock.advance(45.0)
    # Started at 0, finished at 25: the slots at 10 and 20 are skipped, the next is 30.
    assert [r.started_at for r in seen.results] == [0.0, 30.0, 40.0]


@pytest.mark.parametrize(
    ("probe", "error", "message"),
    [(_hang, "timeout", "deadline"), (_crash, "internal", "RuntimeError")],
)
async def test_hung_or_crashing_probe_yields_a_failure_and_others_continue(
    probe: Callable[[ProbeRun], Awaitable[ProbeResult]], error: str, message: str
) -> None:
    """A probe that hangs past its deadline or raises gives a failed result; others still run."""
    seen = _Collector()
    scheduler = Scheduler(seen, deadline_margin=0.0)
    jobs = [_job("bad", probe, 0.01, deadline=0.05), _job("good", _ok, 0.01)]
    async with _running(scheduler, jobs):
        await seen.until(lambda results: {r.target for r in results} == {"good", "bad"})
    bad = next(r for r in seen.results if r.target == "bad")
    assert any(r.target == "good" and r.ok for r in seen.results)
    assert (bad.ok, bad.error, bad.probe) == (False, error, ProbeKind.PING)
    assert message in bad.message
