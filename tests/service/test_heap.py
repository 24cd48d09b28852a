"""The long-lived heap is frozen out of full collections and refreshed on a schedule."""

from __future__ import annotations

import asyncio
import gc
import weakref

from apns_exporter.service import heap


class _Node:
    """An object that can take part in a reference cycle."""

    def __init__(self) -> None:
        self.other: object = self


async def test_frozen_cycle_is_reclaimed_only_at_the_scheduled_refreeze() -> None:
    """Cyclic garbage among frozen objects survives collections until the next refreeze."""
    wakeups: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()

    async def sleep(seconds: float) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await wakeups.put(done)
        await done

    task = asyncio.create_task(heap.keep_collections_short(1.0, 10.0, sleep=sleep))
    try:
        node = _Node()
        freed = asyncio.Event()
        ref = weakref.ref(node, lambda _: freed.set())
        (await wakeups.get()).set_result(None)  # the first freeze
        first_refreeze = await wakeups.get()  # frozen, now waiting for the interval
        assert gc.get_freeze_count() > 0
        del node
        gc.collect()
        assert ref() is not None, "a frozen cycle is left alone by ordinary collections"
        first_refreeze.set_result(None)
        await wakeups.get()
        await freed.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert gc.get_freeze_count() == 0, "cancelling the task thaws the heap"


async def test_a_full_collection_freezes_what_survived_it() -> None:
    """After the interpreter's own full collection, the survivors are frozen."""
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def sleep(seconds: float) -> None:
        await never

    task = asyncio.create_task(heap.keep_collections_short(sleep=sleep))
    try:
        await asyncio.sleep(0)  # the task is running and has hooked the collector
        assert gc.get_freeze_count() == 0
        gc.collect()
        assert gc.get_freeze_count() == 0, "not from inside the collector"
        await asyncio.sleep(0)  # the loop runs the freeze the collection scheduled
        assert gc.get_freeze_count() > 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert gc.get_freeze_count() == 0
