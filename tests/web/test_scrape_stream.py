"""/metrics of a real exporter with thousands of targets, streamed: bounded chunks, one per
loop turn, the same bytes as the whole rendering, gzip intact, and clean client aborts."""

from __future__ import annotations

import asyncio
import gzip
import inspect
import itertools
import logging
import shutil
from asyncio.subprocess import PIPE, STDOUT
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from apns_exporter.service.exposition import Exposition
from apns_exporter.service.family import CHUNK, Piece
from apns_exporter.service.state import TargetInfo
from tests.helpers import TOPIC, Running, Workspace

TARGETS = 4000
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
WAIT = 30.0


def _info(i: int) -> TargetInfo:
    return TargetInfo(
        f"syn-{i:05d}",
        "production",
        host="127.0.0.1",
        port=443,
        topic=TOPIC,
        auth_method="token",
        canary_interval=60.0,
        ping_interval=10.0,
        intervals=(("ping", 10.0), ("canary", 60.0)),
    )


@pytest.fixture
async def running(workspace: Workspace, run_exporter: Any) -> AsyncIterator[Running]:
    """The real exporter (one inventory target, no connection) plus synthetic targets' series."""
    target = workspace.target(443, auth_check=True).replace(
        "  environment:", "  inventory_only: true\n  environment:"
    )
    async with run_exporter(workspace.config(target)) as running:
        for i in range(TARGETS):
            running.exporter.metrics.add_target(_info(i))
        yield running


def _exposition(running: Running) -> Exposition:
    return running.exporter.metrics.exposition


async def _get(running: Running, **headers: str) -> bytes:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(
            running.url + "/metrics", headers={"Accept-Encoding": "identity", **headers}
        ) as response,
    ):
        assert response.status == 200
        return await response.read()


def _synthetic(body: bytes) -> list[bytes]:
    # Only the synthetic targets' lines: nothing probes them, so they cannot move.
    return [line for line in body.splitlines() if b'target="syn-' in line]


async def _promtool(body: bytes) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required: apt-get install prometheus (scripts/setup does)"
    proc = await asyncio.create_subprocess_exec(
        promtool, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
    )
    output, _ = await proc.communicate(body)
    assert proc.returncode == 0, output.decode()[:2000]


async def test_streamed_body_is_the_whole_rendering(running: Running) -> None:
    """Text, OpenMetrics and gzip bodies hold the same lines as the one-piece rendering."""
    plain = await _get(running)
    store = _exposition(running).store
    assert _synthetic(plain) == _synthetic(store.render())
    assert len(_synthetic(plain)) > TARGETS * 6
    infos = [x for x in _synthetic(plain) if x.startswith(b"apns_target_info{")]
    assert len(infos) == TARGETS
    om = await _get(running, Accept=OPENMETRICS)
    assert om.endswith(b"# EOF\n")
    assert _synthetic(om) == _synthetic(store.render(openmetrics=True))
    zipped = await _get(running, **{"Accept-Encoding": "gzip"})
    assert _synthetic(gzip.decompress(zipped)) == _synthetic(plain)
    await _promtool(plain)


class Turns:
    """Counts event-loop turns from a task that yields on every one, and records each write."""

    def __init__(self) -> None:
        self.turns = 0
        self.writes: list[tuple[int, int]] = []  # (bytes handed over, turns seen so far)

    async def beat(self, stop: asyncio.Event) -> None:
        """Count loop turns until ``stop``."""
        while not stop.is_set():
            self.turns += 1
            await asyncio.sleep(0)


@pytest.fixture
def turns(monkeypatch: pytest.MonkeyPatch) -> Turns:
    """Every body write of every response, with the loop turns seen before it."""
    seen = Turns()
    write = web.StreamResponse.write

    async def recording(self: web.StreamResponse, data: bytes | bytearray | memoryview) -> None:
        seen.writes.append((len(data), seen.turns))
        await write(self, data)

    monkeypatch.setattr(web.StreamResponse, "write", recording)
    return seen


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_loop_runs_between_bounded_chunks(
    running: Running, turns: Turns, encoding: str
) -> None:
    """A large body goes out in chunks of at most CHUNK bytes, and the loop runs between each."""
    stop = asyncio.Event()
    beat = asyncio.create_task(turns.beat(stop))
    try:
        body = await _get(running, **{"Accept-Encoding": encoding})
    finally:
        stop.set()
        await beat
    assert len(body if encoding == "identity" else gzip.decompress(body)) > 10 * CHUNK
    sizes = [size for size, _ in turns.writes]
    assert len(sizes) > 10
    assert max(sizes) <= CHUNK
    seen = [t for _, t in turns.writes]
    assert all(later > earlier for earlier, later in itertools.pairwise(seen))


async def test_overlapping_scrapes_under_change_stay_complete(running: Running) -> None:
    """Two scrapes overlapping while targets change, come and go each give whole families."""
    metrics = running.exporter.metrics
    up = metrics.exposition.store.families[0]
    stop = asyncio.Event()

    async def churn() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            metrics.add_target(_info(TARGETS + k))
            metrics.forget(f"syn-{TARGETS + k - 1:05d}")
            up.touch(f"syn-{k % TARGETS:05d}")
            metrics.probe_interval.labels(f"syn-{k % TARGETS:05d}", "production", "ping").set(k)
            await asyncio.sleep(0)

    task = asyncio.create_task(churn())
    try:
        bodies = await asyncio.gather(_get(running), _get(running))
    finally:
        stop.set()
        await task
    for body in bodies:
        helps = [x for x in body.splitlines() if x.startswith(b"# HELP ")]
        assert len(helps) == len(set(helps))
        await _promtool(body)
    # prometheus_client's parser takes about 20 s over such a body: one is enough.
    families = list(text_string_to_metric_families(bodies[0].decode()))
    info = next(f for f in families if f.name == "apns_target_info")
    kept = {s.labels["target"] for s in info.samples}
    assert {f"syn-{i:05d}" for i in range(TARGETS)} <= kept
    # Targets that changed while a scrape streamed are rendered by the next one.
    assert _synthetic(await _get(running)) == _synthetic(metrics.exposition.store.render())


async def test_client_leaving_mid_stream_leaks_nothing(
    running: Running, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A scraper hanging up mid-body ends the stream, logs no error; the next scrape works."""
    exposition = _exposition(running)
    streams: list[Generator[Piece | None, None, None]] = []
    ended = asyncio.Event()
    pieces: Callable[..., Generator[Piece | None, None, None]] = exposition.pieces

    def recorded(*, openmetrics: bool = False) -> Generator[Piece | None, None, None]:
        streams.append(pieces(openmetrics=openmetrics))
        try:
            yield from streams[-1]
        finally:
            ended.set()

    monkeypatch.setattr(exposition, "pieces", recorded)
    host, port = running.url.removeprefix("http://").rsplit(":", 1)
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await reader.readexactly(CHUNK)
    writer.close()
    await writer.wait_closed()
    await asyncio.wait_for(ended.wait(), WAIT)
    assert inspect.getgeneratorstate(streams[0]) == inspect.GEN_CLOSED
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert _synthetic(await _get(running)) == _synthetic(exposition.store.render())
