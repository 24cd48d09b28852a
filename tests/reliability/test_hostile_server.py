"""Hostile peers: each gets a clear failure reason while a healthy target next to it stays up.

Every case runs two targets in one exporter: ``hostile`` points at a small misbehaving
server written here, ``healthy`` at the mock. The hostile target must fail with a bounded
reason at the right layer; the healthy one must keep ``apns_up`` at 1; and after both stop,
no task or file descriptor may be left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from apns_exporter.client import protocol
from apns_exporter.client.connection import WRITE_BACKLOG_BYTES, Connection, Endpoint
from apns_exporter.client.protocol import Event, SettingsChanged
from apns_exporter.client.tls import client_context
from apns_exporter.mock.pki import CertificateAuthority, SigningKeyPair
from apns_exporter.probes import ProbeKind, ProbeResult
from tests.helpers import sample
from tests.reliability.support import (
    APPLE_SETTINGS,
    ENV,
    WAIT,
    Behaviour,
    Gate,
    HostileServer,
    Leaks,
    Rig,
    raw_frame,
    running_exporter,
    serve_h2,
    server_context,
    start_mock,
    target_yaml,
    write_config,
)

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8
ENHANCE_YOUR_CALM = 0xB
HEALTHY_DEADLINE = 3.0  # seconds; /-/healthy answers in milliseconds on a free loop
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


async def no_alpn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept TLS without ALPN and say nothing."""


async def http11(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Claim h2 in ALPN, then answer like an HTTP/1.1 server."""
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Claim h2, then send bytes that are no HTTP/2 frame at all."""
    writer.write(b"\x00\x00\x10\xff" + b"\xde\xad\xbe\xef" * 8)


def _replying(reply: Any) -> Behaviour:
    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_h2(reader, writer, reply)

    return behaviour


def _hpack_int(value: int, flags: int = 0) -> bytes:
    """An HPACK integer with a 7-bit prefix (RFC 7541 §5.1)."""
    if value < 127:
        return bytes([flags | value])
    out, value = [flags | 127], value - 127
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    return bytes([*out, value])


async def _huge_headers(conn: Any, stream_id: int, writer: asyncio.StreamWriter) -> bytes:
    # Written by hand (":status 200" indexed, then one plain literal of 300 kB) in HEADERS
    # plus CONTINUATION frames: h2's own Huffman encoder would take seconds to produce it.
    name, value = b"x-filler", b"a" * 300_000
    block = b"\x88\x00" + _hpack_int(len(name)) + name + _hpack_int(len(value)) + value
    chunks = [block[i : i + 16384] for i in range(0, len(block), 16384)]
    writer.write(conn.data_to_send())
    for index, chunk in enumerate(chunks):
        flags = (0x1 if index == 0 else 0) | (0x4 if index == len(chunks) - 1 else 0)
        writer.write(raw_frame(0x1 if index == 0 else 0x9, chunk, flags=flags, stream_id=stream_id))
    return b""


async def _huge_body(conn: Any, stream_id: int, writer: asyncio.StreamWriter) -> bytes:
    conn.send_headers(stream_id, [(b":status", b"400"), (b"content-type", b"application/json")])
    return b'{"reason":"BadDeviceToken","pad":"' + b"x" * 4_000_000 + b'"}'


async def _endless_data(conn: Any, stream_id: int, writer: asyncio.StreamWriter) -> bytes:
    conn.send_headers(stream_id, [(b":status", b"200")])
    writer.write(conn.data_to_send())
    # DATA forever, ignoring flow control and RST_STREAM alike.
    frames = raw_frame(DATA, b"\0" * 16384, stream_id=stream_id) * 4
    while True:
        writer.write(frames)
        await writer.drain()


async def _invalid_frame(conn: Any, stream_id: int, writer: asyncio.StreamWriter) -> bytes:
    writer.write(conn.data_to_send())
    writer.write(raw_frame(PING, b"\0" * 7))  # a PING must carry exactly 8 bytes
    return b""


async def reset_in_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the ClientHello, then reset the TCP connection."""
    await reader.read(1)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Slowloris: send the SETTINGS frame one byte at a time, 100 ms apart (the attack itself)."""
    for byte in APPLE_SETTINGS:
        if writer.is_closing():
            return
        writer.write(bytes([byte]))
        await asyncio.sleep(0.1)


CASES = [
    # behaviour, server ALPN (None = plain TCP), expected error, expected layer
    pytest.param(no_alpn, [], "alpn", "http2", id="no-alpn"),
    pytest.param(http11, ["h2"], "http2", "http2", id="http1.1"),
    pytest.param(garbage, ["h2"], "http2", "http2", id="garbage"),
    pytest.param(_replying(_huge_headers), ["h2"], "http2", "http2", id="oversized-headers"),
    pytest.param(_replying(_huge_body), ["h2"], "stream_reset", "http2", id="huge-body"),
    pytest.param(_replying(_endless_data), ["h2"], "stream_reset", "http2", id="endless-data"),
    pytest.param(_replying(_invalid_frame), ["h2"], "http2", "http2", id="invalid-frame"),
    pytest.param(reset_in_handshake, None, "tls_handshake", "tls", id="reset-in-tls-handshake"),
    pytest.param(trickle, ["h2"], "http2", "http2", id="slowloris"),
]


def _error(result: ProbeResult) -> str | None:
    """The failure label: the connection's, else the first failed push's."""
    return result.error or next((p.error for p in result.pushes if p.error), None)


@contextlib.asynccontextmanager
async def beside_healthy(
    tmp_path: Path,
    ca: CertificateAuthority,
    signing_key: SigningKeyPair,
    device: str,
    behaviour: Behaviour,
    alpn: list[str] | None = None,
) -> AsyncIterator[Rig]:
    """An exporter probing ``behaviour`` as ``hostile`` and the mock as ``healthy``; no leaks."""
    leaks = Leaks.snapshot()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    key_file = tmp_path / "AuthKey.p8"
    key_file.write_bytes(signing_key.private_pem)
    context = server_context(ca, tmp_path, alpn) if alpn is not None else None
    mock = await start_mock(ca, signing_key, device)
    try:
        async with HostileServer(behaviour, context) as hostile:
            cfg = write_config(
                tmp_path / "apns.yml",
                # Timeouts far beyond a loopback answer, so a busy machine cannot fail it.
                target_yaml(
                    "healthy",
                    mock.port,
                    ca_file,
                    key_file,
                    device=device,
                    interval="1s",
                    canary_timeout="1s",
                    ping_timeout="1s",
                ),
                target_yaml(
                    "hostile", hostile.port, ca_file, key_file, device=device, auth_check=False
                ),
            )
            async with running_exporter(cfg, Gate()) as rig:  # the gate stays open
                yield rig
    finally:
        await mock.stop()
    leaks.check()


@pytest.mark.parametrize(("behaviour", "alpn", "error", "layer"), CASES)
async def test_hostile_server_fails_clearly_and_spares_the_healthy_target(
    tmp_path: Path,
    ca: CertificateAuthority,
    signing_key: SigningKeyPair,
    device: str,
    behaviour: Behaviour,
    alpn: list[str] | None,
    error: str,
    layer: str,
) -> None:
    """The hostile target fails with the expected reason and layer; the healthy one stays up."""
    async with beside_healthy(tmp_path, ca, signing_key, device, behaviour, alpn) as rig:
        failed = await rig.wait_canary("hostile", ok=False)
        await rig.wait_canary("healthy", ok=True)
        await rig.wait_ping("healthy", ok=True)
        samples = await rig.scrape()
        assert await rig.get("/-/healthy") == (200, "Healthy\n")
    assert (_error(failed), failed.layer) == (error, layer), (failed.message, failed.logs)
    assert sample(samples, "apns_up", target="hostile", apns_environment=ENV) == 0
    assert sample(samples, "apns_up", target="healthy", apns_environment=ENV) == 1
    assert sample(samples, "apns_connection_up", target="healthy", apns_environment=ENV) == 1


async def hang_up_after_settings(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Send APNs' SETTINGS, then close the connection before answering anything."""
    writer.write(APPLE_SETTINGS)
    await writer.drain()
    writer.close()


async def test_a_hang_up_before_any_answer_is_an_http2_failure_not_a_crash(
    tmp_path: Path, ca: CertificateAuthority, signing_key: SigningKeyPair, device: str
) -> None:
    """A connection that ends before any answer fails later runs as http2, never as internal."""
    async with beside_healthy(
        tmp_path, ca, signing_key, device, hang_up_after_settings, ["h2"]
    ) as rig:
        await rig.wait_canary("hostile", ok=False, count=2)
        await rig.wait_ping("healthy", ok=True)
    hostile = [r for r in rig.results if r.target == "hostile"]
    assert [r for r in hostile if r.error == "internal"] == []
    assert "http2" in {r.error for r in hostile}, [(r.probe, r.error, r.message) for r in hostile]


@dataclass
class Flood:
    """After APNs' SETTINGS, send ``frame`` as fast as the socket takes it, on every connection.

    It reads what the exporter sends: GOAWAY error codes are recorded, and with
    ``answer_pings`` the exporter's own PINGs are acknowledged, so its PING probe would pass.
    With ``after_request`` the flood waits for the exporter's first request (h2 refuses
    RST_STREAM before any stream exists).
    """

    frame: bytes
    answer_pings: bool = False
    after_request: bool = False
    started_at: float | None = None  # wall clock, like ProbeResult.started_at
    started: asyncio.Event = field(default_factory=asyncio.Event)
    goaway_codes: list[int] = field(default_factory=list)

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(APPLE_SETTINGS)
        requested = asyncio.Event()
        if not self.after_request:
            requested.set()
        task = asyncio.create_task(self._flood(writer, requested))
        try:
            await self._read(reader, writer, requested)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await task

    async def _flood(self, writer: asyncio.StreamWriter, requested: asyncio.Event) -> None:
        await requested.wait()
        frames = self.frame * 1000
        while True:
            writer.write(frames)
            if not self.started.is_set():
                self.started_at = time.time()
                self.started.set()
            await writer.drain()

    async def _read(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, requested: asyncio.Event
    ) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            assert await reader.readexactly(len(PREFACE)) == PREFACE
            while True:
                header = await reader.readexactly(9)
                payload = await reader.readexactly(int.from_bytes(header[:3], "big"))
                if header[3] == HEADERS:
                    requested.set()
                elif header[3] == GOAWAY:
                    self.goaway_codes.append(int.from_bytes(payload[4:8], "big"))
                elif header[3] == PING and not header[4] & 0x1 and self.answer_pings:
                    writer.write(raw_frame(PING, payload, flags=0x1))


FLOODS = [
    pytest.param(dict(frame=raw_frame(PING, bytes(8))), id="ping"),
    pytest.param(
        dict(frame=raw_frame(PING, bytes(8)), answer_pings=True), id="ping-answering-ours"
    ),
    pytest.param(dict(frame=raw_frame(SETTINGS, b"")), id="settings"),
    # A stream the exporter never opened: h2 ignores it, at the cost of parsing it.
    pytest.param(
        dict(
            frame=raw_frame(RST_STREAM, (8).to_bytes(4, "big"), stream_id=0x7FFFFFFF),
            after_request=True,
        ),
        id="rst-stream",
    ),
    pytest.param(dict(frame=raw_frame(WINDOW_UPDATE, (1).to_bytes(4, "big"))), id="window-update"),
]


@pytest.mark.parametrize("spec", FLOODS)
async def test_control_frame_flood_is_cut_off_and_the_loop_stays_free(
    tmp_path: Path,
    ca: CertificateAuthority,
    signing_key: SigningKeyPair,
    device: str,
    spec: dict[str, Any],
) -> None:
    """A flood ends in GOAWAY ENHANCE_YOUR_CALM and an http2 failure; the rest keeps running."""
    flood = Flood(**spec)
    async with beside_healthy(tmp_path, ca, signing_key, device, flood, ["h2"]) as rig:
        async with asyncio.timeout(WAIT):
            await flood.started.wait()
        before = await rig.scrape()
        # Answered while the flood is on, within a bound about liveness, not speed: a busy
        # loop took 1 to 8 s here, a free one takes milliseconds.
        async with asyncio.timeout(HEALTHY_DEADLINE):
            assert await rig.get("/-/healthy") == (200, "Healthy\n")
        assert flood.started_at is not None
        started_at = flood.started_at
        fresh = await rig.wait_for(
            lambda r: (
                r.target == "healthy"
                and r.probe is ProbeKind.PING
                and r.ok
                and r.started_at > started_at
            )
        )
        failed = await rig.wait_canary("hostile", ok=False)
        after = await rig.scrape()
    assert (_error(failed), failed.layer) == ("http2", "http2"), (failed.message, failed.logs)
    assert ENHANCE_YOUR_CALM in flood.goaway_codes
    last_ping = "apns_ping_last_success_timestamp_seconds"
    t = {"target": "healthy", "apns_environment": ENV}
    assert sample(after, last_ping, **t) > sample(before, last_ping, **t), fresh
    assert sample(after, "apns_up", target="hostile", apns_environment=ENV) == 0


async def test_a_peer_that_floods_and_never_reads_cannot_grow_our_write_buffer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ca: CertificateAuthority
) -> None:
    """Against a PING flood that never reads our ACKs, we stop reading instead of queueing MBs."""
    # The flood bound would end this connection first; this test is about backpressure alone.
    monkeypatch.setattr(protocol, "MAX_CONTROL_FRAMES_PER_SECOND", 10**9)
    flood_bytes = 1024 * 1024
    paused, read_it_all = asyncio.Event(), asyncio.Event()

    class Paused(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "reading paused" in record.getMessage():
                paused.set()

    async def flood_without_reading(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(APPLE_SETTINGS)
        frames = raw_frame(PING, bytes(8)) * 1024
        for _ in range(flood_bytes // len(frames)):
            writer.write(frames)
            await writer.drain()
        # A SETTINGS change after the flood: seen only by a client that read all of it.
        writer.write(raw_frame(SETTINGS, (3).to_bytes(2, "big") + (7).to_bytes(4, "big")))
        await asyncio.Event().wait()

    def observe(event: Event) -> None:
        if isinstance(event, SettingsChanged) and event.max_concurrent_streams == 7:
            read_it_all.set()

    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    handler = Paused()
    logging.getLogger("apns_exporter.client.connection").addHandler(handler)
    leaks = Leaks.snapshot()
    try:
        context = server_context(ca, tmp_path, ["h2"])
        async with HostileServer(flood_without_reading, context, receive_buffer=4096) as hostile:
            conn = await Connection.open(
                Endpoint("127.0.0.1", hostile.port),
                client_context(str(ca_file), system_store=False),
                timeout=WAIT,
                observer=observe,
            )
            # The kernel's send buffer would otherwise take megabytes of ACKs before ours
            # sees any; the connection has no public knob for it.
            sock = conn._writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            waits = [asyncio.ensure_future(e.wait()) for e in (paused, read_it_all)]
            try:
                async with asyncio.timeout(WAIT):
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                backlog = conn.write_backlog
            finally:
                for waiting in waits:
                    waiting.cancel()
                await asyncio.gather(*waits, return_exceptions=True)
                await conn.aclose()
    finally:
        logging.getLogger("apns_exporter.client.connection").removeHandler(handler)
    leaks.check()
    # Before backpressure the client read the whole megabyte and queued an ACK for each PING.
    assert not read_it_all.is_set(), f"read the whole flood; {backlog} bytes queued"
    assert backlog <= 2 * WRITE_BACKLOG_BYTES
