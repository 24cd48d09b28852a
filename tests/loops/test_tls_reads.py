"""TLS reads through the shared read buffer (asyncio) or uvloop's own, over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import jwt

from apns_exporter.client.connection import Connection, Endpoint
from apns_exporter.client.dial import (
    TLS_READ_BUFFER_BYTES,
    dial,
    hang_up,
    share_read_buffer,
    shared_read_buffer,
)
from apns_exporter.client.tls import client_context
from apns_exporter.mock.pki import CertificateAuthority, SigningKeyPair
from apns_exporter.mock.server import MockAPNs
from tests.helpers import KEY_ID, TEAM_ID, TOPIC
from tests.loops.conftest import loop_name

WAIT = 10.0
LARGE = 3 * 1024 * 1024 + 17  # many TLS records, and reads far past the 16 KiB buffer


def _trusting(ca: CertificateAuthority, tmp_path: Path) -> ssl.SSLContext:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    return client_context(str(ca_file), system_store=False)


def _pattern(seed: int, size: int) -> bytes:
    """``size`` bytes that differ per ``seed`` everywhere, so a mix-up cannot go unseen."""
    block = b"".join(hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(512))
    return (block * (size // len(block) + 1))[:size]


@contextlib.asynccontextmanager
async def pattern_server(ca: CertificateAuthority, tmp_path: Path) -> AsyncIterator[int]:
    """A TLS server that sends ``_pattern(seed, LARGE)`` for the seed byte a client sends."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert, key = ca.issue_server().write(tmp_path, "server")
    ctx.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seed = (await reader.readexactly(1))[0]
        writer.write(_pattern(seed, LARGE))
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_two_connections_read_large_answers_intact(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """Two TLS connections reading megabytes at once each get exactly their own bytes."""
    context = _trusting(ca, tmp_path)
    async with pattern_server(ca, tmp_path) as port:
        dialled = [
            await dial("127.0.0.1", port, ssl_context=context, require_h2=False) for _ in range(2)
        ]

        async def fetch(seed: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
            writer.write(bytes([seed]))
            await writer.drain()
            return await reader.readexactly(LARGE)

        async with asyncio.timeout(WAIT):
            got = await asyncio.gather(*(fetch(i, r, w) for i, (r, w) in enumerate(dialled)))
        shared = [share_read_buffer(w) for _, w in dialled]
        buffers = [getattr(w.transport, "_ssl_protocol", None) for _, w in dialled]
        for _, writer in dialled:
            await hang_up(writer)
    assert got[0] == _pattern(0, LARGE)
    assert got[1] == _pattern(1, LARGE)
    if loop_name() == "asyncio":
        assert shared == [True, True]
        assert all(p._ssl_buffer is shared_read_buffer() for p in buffers)  # type: ignore[union-attr]
        assert all(p.max_size == TLS_READ_BUFFER_BYTES for p in buffers)  # type: ignore[union-attr]
    else:
        # uvloop's SSLProtocol keeps its read buffer in C: nothing to share, and it says so.
        assert shared == [False, False]


async def test_pushes_and_pings_over_tls_to_the_mock(
    mock: MockAPNs, ca: CertificateAuthority, signing_key: SigningKeyPair, device: str, tmp_path
) -> None:
    """Many pushes at once and a PING on one TLS connection to the mock all get answers."""
    conn = await Connection.open(
        Endpoint("127.0.0.1", mock.port), _trusting(ca, tmp_path), timeout=WAIT
    )
    try:
        token = jwt.encode(
            {"iss": TEAM_ID, "iat": int(time.time())},
            signing_key.private_pem,
            algorithm="ES256",
            headers={"kid": KEY_ID},
        )
        headers = [("apns-topic", TOPIC), ("authorization", f"bearer {token}")]
        payload = b'{"aps":{"alert":"' + b"x" * 3000 + b'"}}'
        responses = await asyncio.gather(
            *(
                conn.request("POST", f"/3/device/{device}", headers, payload, timeout=WAIT)
                for _ in range(50)
            )
        )
        assert [r.status for r in responses] == [200] * 50
        assert len({r.apns_id for r in responses}) == 50
        assert await conn.ping(timeout=WAIT) > 0
    finally:
        await conn.aclose()
