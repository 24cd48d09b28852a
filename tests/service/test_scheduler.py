"""The scheduler runs every job on its interval and isolates hung or crashing probes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from apns_exporter.config import Target
from apns_exporter.probes import ProbeKind, ProbeResult, ProbeRun, TargetContext
from apns_exporter.service.scheduler import Job, Scheduler


class _Target:
    """Just enough of a Target for the scheduler: a name."""

    def __init__(self, name: str) -> None:
        self.name = name


def _context(name: str) -> TargetContext:
    target: Target = _Target(name)  # type: ignore[assignment]
    return TargetContext(target, channel=None, token=None, default_timeout=1.0)  # type: ignore[arg-type]


async def _ok(ctx: ProbeRun) -> ProbeResult:
    return ctx.result(True, "fine")


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


async def _collect(
    scheduler: Scheduler, until: Callable[[list[ProbeResult]], bool]
) -> list[ProbeResult]:
    results: list[ProbeResult] = []
    enough = asyncio.Event()

    def listener(result: ProbeResult) -> None:
        results.append(result)
        if until(results):
            enough.set()

    scheduler.subscribe(listener)
    async with asyncio.timeout(10):
        await enough.wait()
    return results


async def test_job_runs_repeatedly_and_keeps_history() -> None:
    """A job on a short interval runs again and again; history is newest first."""
    seen: list[ProbeResult] = []
    scheduler = Scheduler(seen.append)
    async with _running(scheduler, [Job(_context("a"), ProbeKind.PING, _ok, 0.01, 1.0)]):
        await _collect(scheduler, lambda seen: len(seen) >= 3)
    assert len(seen) >= 3
    history = scheduler.history("a")
    assert history[0] is scheduler.latest("a", ProbeKind.PING)
    assert history[0].started_at >= history[-1].started_at


@pytest.mark.parametrize(
    ("probe", "error", "message"),
    [(_hang, "timeout", "deadline"), (_crash, "internal", "RuntimeError")],
)
async def test_hung_or_crashing_probe_yields_a_failure_and_others_continue(
    probe, error: str, message: str
) -> None:
    """A probe that hangs past its deadline or raises gives a failed result; others still run."""
    scheduler = Scheduler(lambda r: None, deadline_margin=0.0)
    jobs = [
        Job(_context("bad"), ProbeKind.PING, probe, 0.01, 0.05),
        Job(_context("good"), ProbeKind.PING, _ok, 0.01, 1.0),
    ]
    async with _running(scheduler, jobs):
        results = await _collect(
            scheduler, lambda seen: {r.target for r in seen} == {"good", "bad"}
        )
    bad = next(r for r in results if r.target == "bad")
    assert any(r.target == "good" and r.ok for r in results)
    assert (bad.ok, bad.error) == (False, error)
    assert message in bad.message
