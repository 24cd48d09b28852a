"""The event loop the process runs on: asyncio's own, or uvloop's (an optional extra)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from apns_exporter.errors import LoopUnavailable

T = TypeVar("T")
EVENT_LOOPS = ("asyncio", "uvloop")
# docs/performance.md gives the measurements this default rests on.
DEFAULT_EVENT_LOOP = "asyncio"


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """How to make the event loop called ``name``; None for asyncio's default."""
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        raise LoopUnavailable(
            "--runtime.event-loop=uvloop: uvloop is not installed; install it with "
            "pip install 'apns-exporter[uvloop]' or use --runtime.event-loop=asyncio"
        ) from None
    return uvloop.new_event_loop


def run(main: Callable[[], Coroutine[Any, Any, T]], event_loop: str) -> T:
    """Run ``main()`` to completion on a new event loop of the kind named ``event_loop``."""
    with asyncio.Runner(loop_factory=loop_factory(event_loop)) as runner:
        return runner.run(main())
