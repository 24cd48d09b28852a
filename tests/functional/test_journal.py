"""Failures reach the process log as one structured line, and stay on /probes after successes."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Iterator

import pytest

from apns_exporter.logs import _Formatter
from apns_exporter.mock.server import MockAPNs
from apns_exporter.probes import ProbeKind, ProbeResult
from apns_exporter.service import journal
from tests.helpers import TOPIC, WAIT_SECONDS, Workspace

SUCCESSES_AFTER = 100


def _target(workspace: Workspace, port: int, device: str, *, ping: str, canary: str) -> str:
    """A target with its own PING and canary intervals (each canary's timeout is its interval)."""
    block = workspace.target(port, devices=(device,))
    block = block.replace("  ping:\n    interval: 1s", f"  ping:\n    interval: {ping}")
    canary_block = f"    interval: {canary}\n    timeout: {canary}"
    block = block.replace("    interval: 1s\n    timeout: 1s", canary_block)
    assert f"interval: {ping}" in block
    assert canary_block in block
    return block


class _Lines(logging.Handler):
    """Formats every prober record as the exporter's JSON log would print it."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_Formatter("json"))
        self.lines: list[dict[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def prober_log() -> Iterator[_Lines]:
    """The prober logger's lines, as JSON objects."""
    handler = _Lines()
    logger = logging.getLogger("apns_exporter.prober")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


async def test_failed_canary_is_logged_and_outlives_a_hundred_successes_on_probes(
    mock: MockAPNs, workspace: Workspace, run_exporter, prober_log: _Lines
) -> None:
    """A rejected canary logs layer, reason and apns-id; 100 successes later /probes shows it."""
    newcomer = secrets.token_hex(32)  # not registered yet: APNs answers BadDeviceToken
    # PINGs every 10ms bring the hundred successes quickly; the canary runs every second.
    cfg = workspace.config(_target(workspace, mock.port, newcomer, ping="10ms", canary="1s"))
    successes = 0
    enough = asyncio.Event()

    def count(result: ProbeResult) -> None:
        nonlocal successes
        if result.ok:
            successes += 1
            if successes >= SUCCESSES_AFTER:
                enough.set()

    async with run_exporter(cfg) as running:
        failed = await running.wait_canary(ok=False)
        mock.devices.register(newcomer, TOPIC)
        await running.wait_canary(ok=True)
        running.exporter.listeners.append(count)
        async with asyncio.timeout(WAIT_SECONDS * 2):
            await enough.wait()
        page = await running.scrape_text(f"/probes?target=t1&limit={journal.HISTORY_LIMIT}")
    push = failed.pushes[0]
    assert push.reason == "BadDeviceToken"
    assert push.apns_id
    line = next(line for line in prober_log.lines if line["msg"] == "probe failed")
    assert line["target"] == "t1"
    assert line["probe"] == "canary"
    assert line["layer"] == "apns"
    assert line["reason"] == "BadDeviceToken"
    assert line["apns_id"] == push.apns_id
    assert line["peer"].startswith("127.0.0.1:")
    assert line["level"] == "warn"
    # The recent window is full of successes; the failure is kept apart.
    recent, _, earlier = page.partition("##### Earlier failures of t1")
    assert push.apns_id not in recent
    assert f"apns-id {push.apns_id}" in earlier
    assert "FAILED (layer apns)" in earlier


async def test_state_changes_are_logged_and_a_flapping_target_is_rate_limited(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter, prober_log: _Lines
) -> None:
    """Down and up again are logged as state changes; a failing loop logs a bounded burst."""
    cfg = workspace.config(_target(workspace, mock.port, device, ping="1s", canary="100ms"))
    async with run_exporter(cfg) as running:
        await running.wait_canary(ok=True)
        mock.devices.remove(device)
        for _ in range(3 * journal.LOG_BURST):
            await running.wait_canary(ok=False)
        mock.devices.register(device, TOPIC)
        await running.wait_canary(ok=True)
    changes = [(x["previous_state"], x["state"]) for x in prober_log.lines if "state" in x]
    assert ("unknown", "up") in changes
    assert ("up", "down") in changes
    # The rate limit held the rest back: the burst, then nothing within the refill interval.
    failures = [x for x in prober_log.lines if x["msg"] == "probe failed"]
    assert 1 <= len(failures) < journal.LOG_BURST
    assert len(prober_log.lines) <= journal.LOG_BURST
    assert all(x["target"] == "t1" for x in prober_log.lines)
    assert {x["probe"] for x in failures} <= {str(ProbeKind.CANARY), str(ProbeKind.PING)}
