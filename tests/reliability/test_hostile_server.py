"""Hostile peers: each gets a clear failure reason while a healthy target next to it stays up.

Every case runs two targets in one exporter: ``hostile`` points at a small misbehaving
server written here, ``healthy`` at the mock. The hostile target must fail with a bounded
reason at the right layer; the healthy one must keep ``apns_up`` at 1; and after both stop,
no task or file descriptor may be left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from apns_exporter.mock.pki import CertificateAuthority, SigningKeyPair
from apns_exporter.probes import ProbeResult
from tests.helpers import sample
from tests.reliability.support import (
    APPLE_SETTINGS,
    ENV,
    Behaviour,
    Gate,
    HostileServer,
    Leaks,
    Rig,
    drain_until_eof,
    raw_frame,
    running_exporter,
    serve_h2,
    server_context,
    start_mock,
    target_yaml,
    write_config,
)

DATA, PING, SETTINGS = 0x0, 0x6, 0x4


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


async def settings_flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send APNs' SETTINGS, then nothing but more SETTINGS, as fast as the socket takes them."""
    writer.write(APPLE_SETTINGS)

    async def flood() -> None:
        frames = raw_frame(SETTINGS, b"") * 1000
        while True:
            writer.write(frames)
            await writer.drain()

    task = asyncio.create_task(flood())
    try:
        await drain_until_eof(reader)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
            await task


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
    pytest.param(settings_flood, ["h2"], "timeout", "apns", id="settings-flood"),
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
