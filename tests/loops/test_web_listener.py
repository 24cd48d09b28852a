"""The web listener and its connection limits, over real sockets, under both event loops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import aiohttp
import pytest
from aiohttp import web

from apns_exporter.mock.server import MockAPNs
from apns_exporter.web.app import Site
from apns_exporter.web.limits import ConnectionLimits
from tests.helpers import Running, Workspace, sample
from tests.loops.conftest import loop_name

WAIT = 10.0


async def hello(request: web.Request) -> web.Response:
    """A trivial handler."""
    return web.Response(text="Healthy\n")


@pytest.fixture
async def guarded() -> AsyncIterator[tuple[Site, int]]:
    """A Site with small limits: 4 connections, 0.2 s to send headers, 0.3 s idle."""
    app = web.Application()
    app.router.add_get("/-/healthy", hello)
    limits = ConnectionLimits(max_connections=4, header_timeout=0.2, idle_timeout=0.3)
    site = Site(app, ("127.0.0.1", 0), what="", limits=limits)
    await site.start()
    try:
        yield site, int(site.url.rsplit(":", 1)[1])
    finally:
        await site.stop()


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Read until the server hangs up; everything it sent first."""
    async with asyncio.timeout(WAIT):
        return await reader.read()


async def healthy(port: int) -> int:
    """GET /-/healthy on a fresh connection."""
    url = f"http://127.0.0.1:{port}/-/healthy"
    timeout = aiohttp.ClientTimeout(total=WAIT)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        return response.status


async def test_exporter_serves_metrics_with_canaries_on_either_loop(
    mock: MockAPNs,
    workspace: Workspace,
    device: str,
    run_exporter: Callable[..., AbstractAsyncContextManager[Running]],
) -> None:
    """The real exporter's listener answers /metrics and its canaries succeed on this loop."""
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    async with run_exporter(cfg) as running:
        result = await running.wait_canary(ok=True)
        async with asyncio.timeout(WAIT):
            samples = await running.scrape()
    assert result.ok, result.message
    assert sample(samples, "apns_up", target="t1", apns_environment="production") == 1, loop_name()


async def test_silent_and_slowloris_connections_are_closed(guarded: tuple[Site, int]) -> None:
    """A silent connection and a half-sent request are hung up on; /-/healthy still answers."""
    _, port = guarded
    silent_reader, silent = await asyncio.open_connection("127.0.0.1", port)
    slow_reader, slow = await asyncio.open_connection("127.0.0.1", port)
    slow.write(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n")
    await slow.drain()
    assert await closed_by_server(silent_reader) == b""
    assert await closed_by_server(slow_reader) == b""
    assert await healthy(port) == 200
    for writer in (silent, slow):
        writer.close()


async def test_kept_alive_connection_is_closed_when_idle(guarded: tuple[Site, int]) -> None:
    """After a response, a connection that sends nothing more is closed after the idle timeout."""
    _, port = guarded
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    received = await closed_by_server(reader)
    assert received.startswith(b"HTTP/1.1 200")
    writer.close()


async def test_connection_cap_gives_up_idle_connections_for_new_ones(
    guarded: tuple[Site, int],
) -> None:
    """Past the cap, idle connections are closed to make room, so a request still gets in."""
    site, port = guarded
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(10)]
    assert await healthy(port) == 200
    assert site.guard.open_connections <= 4
    for reader, writer in idle:
        await closed_by_server(reader)
        writer.close()


async def test_busy_listener_answers_503_to_a_newcomer() -> None:
    """When every connection is in a handler, a connection past the cap gets 503 and is closed."""
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        entered.set()
        await release.wait()
        return web.Response(text="done\n")

    app = web.Application()
    app.router.add_get("/slow", slow)
    site = Site(app, ("127.0.0.1", 0), what="", limits=ConnectionLimits(max_connections=1))
    await site.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session:
            busy = asyncio.create_task(session.get(f"{site.url}/slow"))
            async with asyncio.timeout(WAIT):
                await entered.wait()
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", int(site.url.rsplit(":", 1)[1])
            )
            answer = await closed_by_server(reader)
            writer.close()
            release.set()
            async with asyncio.timeout(WAIT):
                response = await busy
            assert response.status == 200
            response.release()
    finally:
        await site.stop()
    assert answer.startswith(b"HTTP/1.1 503"), answer
