"""Garbage collection that does not hold up the probes for long.

CPython's full (generation 2) collection walks every tracked object while nothing else
runs: at 1000 targets that took 0.43 s in the scale benchmark, and every PING and canary
due meanwhile started that much late. Nearly all of those objects live as long as the
process (configuration, connections, series), so they are frozen out of the collector
(``gc.freeze``): shortly after start, and again right after any full collection the
interpreter runs by itself (its pause is paid already; what survived it is long-lived).
The collections that still happen walk only what was allocated since. Every ``interval``
the frozen objects are thawed, collected once (one long pause, at a known time) and
frozen again, so cyclic garbage among objects that died meanwhile, such as a replaced
connection, is still reclaimed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

# Once the staggered first runs (spread over at most 10 s) have opened most connections;
# the ones opened later are frozen at the first refresh.
FIRST_FREEZE_SECONDS = 15.0
REFREEZE_SECONDS = 3600.0


def refreeze() -> int:
    """Thaw, collect everything once, freeze what survives; returns the objects freed."""
    gc.unfreeze()
    freed = gc.collect()
    gc.freeze()
    return freed


async def keep_collections_short(
    first: float = FIRST_FREEZE_SECONDS,
    interval: float = REFREEZE_SECONDS,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Freeze the long-lived heap after ``first`` seconds, then refresh it every ``interval``."""
    loop = asyncio.get_running_loop()

    def after_full_collection(phase: str, info: dict[str, int]) -> None:
        # Not from inside the collector: the loop freezes once this collection is over.
        if phase == "stop" and info["generation"] == 2:
            loop.call_soon_threadsafe(gc.freeze)

    gc.callbacks.append(after_full_collection)
    delay = first
    try:
        while True:
            await sleep(delay)
            delay = interval
            started = time.perf_counter()
            freed = refreeze()
            log.debug(
                "full garbage collection: %d objects freed, %d frozen, %.0f ms",
                freed,
                gc.get_freeze_count(),
                1000 * (time.perf_counter() - started),
            )
    finally:
        # Leave the collector as we found it (tests and embedders share the process).
        gc.callbacks.remove(after_full_collection)
        gc.unfreeze()
