"""Run the real exporter CLI with two measuring hooks for the scale benchmark.

Run as ``python -m benchmarks.exporterhost LAG_FILE [apns-exporter flags...]``. It runs
``apns_exporter.cli.main`` unchanged in this process, and on exit (SIGTERM) writes LAG_FILE
as JSON with:

- ``schedule``: for every scheduled probe run (the first one too, which waits its stagger),
  ``[when, lag]``: how late (seconds) the scheduler's ``asyncio.sleep`` returned compared with
  the time the scheduler computed for that run. The scheduler starts the probe in the same
  step it wakes in, so this is exactly "how long after its schedule a probe fired".
- ``loop``: ``[when, lag]`` of a 100 ms heartbeat task: the classic event-loop lag.
- ``gc``: ``[when, generation, seconds]`` of every garbage collection of generation 1 or 2
  (the interpreter stops everything while it runs), from ``gc.callbacks``.

``when`` is ``time.monotonic()``. The hooks give the scheduler a ``sleep`` that measures
itself (the ``sleep`` argument of ``Scheduler``, through a wrapped ``__init__``), and wrap
``Exporter.running`` to start the heartbeat; the package itself is not modified.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from apns_exporter import cli
from apns_exporter.service import exporter, scheduler

HEARTBEAT_SECONDS = 0.1
SAMPLE_LIMIT = 2_000_000
schedule_lags: list[tuple[float, float]] = []
loop_lags: list[tuple[float, float]] = []
collections: list[tuple[float, int, float]] = []
_gc_started = [0.0]


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[0] = time.monotonic()
    elif info["generation"] >= 1 and len(collections) < SAMPLE_LIMIT:
        now = time.monotonic()
        collections.append((now, info["generation"], now - _gc_started[0]))


async def _measured_sleep(delay: float) -> None:
    """The scheduler's sleep, recording how late it returned."""
    loop = asyncio.get_running_loop()
    due = loop.time() + max(0.0, delay)
    await asyncio.sleep(delay)
    now = loop.time()
    if len(schedule_lags) < SAMPLE_LIMIT:
        schedule_lags.append((time.monotonic(), now - due))


async def _heartbeat() -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + HEARTBEAT_SECONDS
        await asyncio.sleep(HEARTBEAT_SECONDS)
        if len(loop_lags) < SAMPLE_LIMIT:
            loop_lags.append((time.monotonic(), loop.time() - due))


def main() -> int:
    """Install the hooks, run the exporter, write the lag file."""
    lag_file, argv = sys.argv[1], sys.argv[2:]
    gc.callbacks.append(_on_gc)
    init = scheduler.Scheduler.__init__

    def measured_init(self: scheduler.Scheduler, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("sleep", _measured_sleep)
        init(self, *args, **kwargs)

    scheduler.Scheduler.__init__ = measured_init  # type: ignore[method-assign]
    running = exporter.Exporter.running

    @contextlib.asynccontextmanager
    async def running_with_heartbeat(
        self: exporter.Exporter, *listeners: exporter.Listener
    ) -> AsyncIterator[exporter.Exporter]:
        async with running(self, *listeners) as service:
            service.spawn(_heartbeat(), "heartbeat")
            yield service

    exporter.Exporter.running = running_with_heartbeat  # type: ignore[method-assign]
    try:
        return cli.main(argv)
    finally:
        with open(lag_file, "w") as fh:
            json.dump({"schedule": schedule_lags, "loop": loop_lags, "gc": collections}, fh)


if __name__ == "__main__":
    code = main()
    # The exporter has closed its connections and returned; skip tearing down a heap of
    # gigabytes object by object (minutes at 5000 targets), which measures nothing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
