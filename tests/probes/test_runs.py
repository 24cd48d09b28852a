"""Each probe run owns its start, log and deadline: concurrent runs of one target never mix."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from apns_exporter import config
from apns_exporter.client.channel import Channel, Lease
from apns_exporter.mock.server import MockAPNs
from apns_exporter.probes import ProbeKind, canary, ping
from apns_exporter.receipts.book import ReceiptBook
from apns_exporter.service.state import TargetBuilder
from tests.helpers import WAIT_SECONDS, Workspace


class _Held:
    """A channel whose next acquire waits until released, so a canary can be held mid-run."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()

    async def acquire(self) -> Lease:
        self.waiting.set()
        await self.release.wait()
        return await self.channel.acquire()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.channel, name)


async def test_ping_during_a_waiting_canary_keeps_each_runs_log_and_timing(
    mock: MockAPNs, workspace: Workspace, device: str
) -> None:
    """A PING run while a canary waits has its own log and times; the canary keeps its own."""
    cfg = config.load(
        workspace.config(workspace.target(mock.port, devices=(device,), auth_check=True))
    )
    state = TargetBuilder(ReceiptBook({})).build(cfg.targets[0], cfg.global_.scrape_timeout)
    # A clock that only moves forward, one tick per reading, orders the two runs exactly.
    state.clock = itertools.count(1).__next__
    assert state.auth_channel is not None
    held = _Held(state.auth_channel)
    state.auth_channel = held  # type: ignore[assignment]
    context = state.snapshot()
    try:
        # The device push is answered, then the canary waits for its auth-check connection.
        waiting = asyncio.create_task(canary.run(context.start(ProbeKind.CANARY)))
        async with asyncio.timeout(WAIT_SECONDS):
            await held.waiting.wait()
        pinged = await ping.run(context.start(ProbeKind.PING))
        held.release.set()
        async with asyncio.timeout(WAIT_SECONDS):
            pushed = await waiting
    finally:
        await held.channel.aclose()
        await context.channel.aclose()
    assert (pushed.ok, pinged.ok) == (True, True), (pushed.message, pinged.message)
    assert pushed.started_at < pinged.started_at
    assert pinged.started_at + pinged.duration < pushed.started_at + pushed.duration
    assert [line.split(" ", 1)[1] for line in pinged.logs] == [pinged.message]
    assert not any("PING" in line for line in pushed.logs)
    assert any("device push: status=200" in line for line in pushed.logs)
    assert any("auth_check push: status=400" in line for line in pushed.logs)
