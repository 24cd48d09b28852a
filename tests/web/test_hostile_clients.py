"""Hostile clients against both listeners, over real sockets on 127.0.0.1: stalled bodies,
malformed requests and aborted uploads, and what every response says about the server."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from apns_exporter import logs
from apns_exporter.mock.server import MockAPNs
from apns_exporter.receipts.book import SIGNATURE_HEADER, ReceiptBook, encode_receipt, sign
from apns_exporter.receipts.server import RECEIPT_PATH, make_receipt_app
from apns_exporter.web.app import Site
from apns_exporter.web.limits import ConnectionLimits
from tests.helpers import Workspace

SECRET = b"0123456789abcdef0123456789abcdef"
WAIT = 20.0
# What a file descriptor limit of 1 024 gives (default_max_connections: a quarter of it).
CAP_AT_1024_FDS = 256
STALLED = 300
CREDENTIAL = base64.b64encode(b"prometheus:hunter2-secret").decode()


@dataclass
class Counts:
    """How many requests reached the receipt handler, how many left it, what was delivered."""

    entered: int = 0
    finished: int = 0
    delivered: list[object] = field(default_factory=list)


@dataclass
class Receipts:
    """A receipt listener, its book, and what its handler saw."""

    site: Site
    port: int
    book: ReceiptBook
    counts: Counts


@pytest.fixture
def quiet_root() -> Iterator[None]:
    """A fresh rate limit for aiohttp's error log; the root logger restored afterwards."""
    # Earlier tests in this process may have used up this minute's line: the next Site
    # installs a new filter.
    logging.getLogger("aiohttp.server").filters.clear()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:], root.level = saved


async def receipt_site(limits: ConnectionLimits) -> Receipts:
    """The real receipt app behind a real Site, counting requests that reach the handler."""
    book = ReceiptBook({"prod": SECRET})
    counts = Counts()
    app = make_receipt_app(book, counts.delivered.append, lambda reason, target: None)

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        counts.entered += 1
        try:
            return await handler(request)
        finally:
            counts.finished += 1

    app.middlewares.append(count)
    site = Site(app, ("127.0.0.1", 0), what=" for receipts", limits=limits)
    await site.start()
    return Receipts(site, int(site.url.rsplit(":", 1)[1]), book, counts)


@pytest.fixture
async def capped() -> AsyncIterator[Receipts]:
    """A receipt listener capped as at 1 024 file descriptors, with the default timeouts."""
    seen = await receipt_site(ConnectionLimits(max_connections=CAP_AT_1024_FDS))
    try:
        yield seen
    finally:
        await seen.site.stop()


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``condition()`` until true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def stalled_upload(port: int) -> bytes:
    """Headers of a receipt upload that promises 4 000 bytes."""
    return (
        f"POST {RECEIPT_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n"
    ).encode()


async def device_receipt(seen: Receipts) -> int:
    """A real device's signed receipt for a canary the book awaits; the HTTP status."""
    seen.book.expect("prod", "c1", time.time() - 1, 60)
    body = encode_receipt("prod", "c1", time.time())
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session,
        session.post(
            f"http://127.0.0.1:{seen.port}{RECEIPT_PATH}",
            data=body,
            headers={SIGNATURE_HEADER: sign(SECRET, body), "Content-Type": "application/json"},
        ) as response,
    ):
        return response.status


async def test_stalled_bodies_do_not_lock_out_a_device(capped: Receipts) -> None:
    """300 connections that promise a 4 000-byte body and send none leave room for a receipt."""
    writers: list[asyncio.StreamWriter] = []
    try:
        async with asyncio.timeout(WAIT):
            for _ in range(STALLED):
                _, writer = await asyncio.open_connection("127.0.0.1", capped.port)
                writer.write(stalled_upload(capped.port))
                writers.append(writer)
        # Every place the cap allows holds a request waiting for its body.
        await until(lambda: capped.counts.entered >= CAP_AT_1024_FDS, "the stalled uploads")
        assert await device_receipt(capped) == 202
        assert len(capped.counts.delivered) == 1
    finally:
        for writer in writers:
            writer.transport.abort()


async def test_a_body_that_never_arrives_is_hung_up_on() -> None:
    """A request whose promised body stops half-way is closed after the body timeout."""
    seen = await receipt_site(ConnectionLimits(body_timeout=0.3))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", seen.port)
        writer.write(stalled_upload(seen.port) + b'{"target": "pr')
        async with asyncio.timeout(WAIT):
            assert await reader.read() == b""
        writer.close()
        await until(lambda: seen.counts.finished == 1, "the handler to give up")
        assert await device_receipt(seen) == 202
    finally:
        await seen.site.stop()


async def test_hostile_request_errors_are_one_line_each_without_the_request(
    capsys: pytest.CaptureFixture[str], quiet_root: None
) -> None:
    """Malformed requests and aborted uploads log one line per kind, no traceback, no credential."""
    logs.setup("info")
    seen = await receipt_site(ConnectionLimits())
    try:
        for _ in range(20):
            # A control character makes the header line malformed.
            reader, writer = await asyncio.open_connection("127.0.0.1", seen.port)
            header = f"Authorization: Basic {CREDENTIAL}\x01\r\n"
            writer.write(f"GET / HTTP/1.1\r\nHost: x\r\n{header}\r\n".encode())
            async with asyncio.timeout(WAIT):
                assert (await reader.read()).split(b"\r\n")[0].endswith(b" 400 Bad Request")
            writer.close()
        for count in range(1, 21):
            _, writer = await asyncio.open_connection("127.0.0.1", seen.port)
            writer.write(stalled_upload(seen.port) + b'{"target"')
            await until(lambda n=count: seen.counts.entered == n, "the upload to reach the handler")
            writer.transport.abort()
            await until(lambda n=count: seen.counts.finished == n, "the aborted upload to end")
        assert await device_receipt(seen) == 202
    finally:
        await seen.site.stop()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 2, lines
    assert "malformed HTTP request from 127.0.0.1" in lines[0]
    assert "hung up" in lines[1]
    text = "\n".join(lines)
    assert "Traceback" not in text
    assert CREDENTIAL[:16] not in text


async def raw_response(port: int, request: bytes) -> bytes:
    """Send raw bytes and return the response head the server sends back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    return head.lower()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad\x01Header: y\r\n\r\n",
    ],
    ids=["ok", "not-found", "malformed"],
)
async def test_no_server_banner_and_nosniff_on_both_listeners(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter, request_bytes: bytes
) -> None:
    """Neither listener names its software, and every answer says nosniff, errors included."""
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    receipts = await receipt_site(ConnectionLimits())
    try:
        async with run_exporter(cfg) as running:
            web_port = int(running.url.rsplit(":", 1)[1])
            for port in (web_port, receipts.port):
                head = await raw_response(port, request_bytes)
                assert head.startswith(b"http/1."), head
                assert b"\r\nserver:" not in head, head
                assert b"\r\nx-content-type-options: nosniff\r\n" in head, head
    finally:
        await receipts.site.stop()
