"""Connection setup over real sockets on loopback: each failure layer gets its own reason."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest

from apns_exporter.client.connection import Connection, Endpoint
from apns_exporter.client.tls import client_context
from apns_exporter.errors import ConnectFailed
from apns_exporter.mock.pki import CertificateAuthority, SigningKeyPair, generate_ca
from apns_exporter.mock.server import MockAPNs
from tests.helpers import KEY_ID, TEAM_ID, TOPIC


@contextlib.asynccontextmanager
async def tls_server(ca: CertificateAuthority, alpn: list[str] | None) -> AsyncIterator[int]:
    """A TLS server that completes the handshake and then says nothing."""
    keypair = ca.issue_server()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = keypair.write(Path(tmp), "server")
        ctx.load_cert_chain(cert, key)
    if alpn:
        ctx.set_alpn_protocols(alpn)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    async with server:
        yield server.sockets[0].getsockname()[1]


def _trusting(ca: CertificateAuthority, tmp_path: Path) -> ssl.SSLContext:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    return client_context(str(ca_file), system_store=False)


async def test_server_without_h2_alpn_is_a_clear_error(ca: CertificateAuthority, tmp_path) -> None:
    """A TLS server that only speaks HTTP/1.1 fails with reason alpn and says so."""
    async with tls_server(ca, ["http/1.1"]) as port:
        with pytest.raises(ConnectFailed) as caught:
            await Connection.open(Endpoint("127.0.0.1", port), _trusting(ca, tmp_path), timeout=5)
    assert caught.value.reason == "alpn"
    assert "did not negotiate HTTP/2" in str(caught.value)


async def test_untrusted_server_certificate_is_tls_verify(
    ca: CertificateAuthority, tmp_path
) -> None:
    """A chain from a CA we do not trust fails with reason tls_verify."""
    other = generate_ca("someone else's CA")
    async with tls_server(other, ["h2"]) as port:
        with pytest.raises(ConnectFailed) as caught:
            await Connection.open(Endpoint("127.0.0.1", port), _trusting(ca, tmp_path), timeout=5)
    assert caught.value.reason == "tls_verify"


async def test_refused_port_is_connect(
    ca: CertificateAuthority, tmp_path, unused_tcp_port: int
) -> None:
    """Nothing listening on the port fails with reason connect."""
    with pytest.raises(ConnectFailed) as caught:
        await Connection.open(
            Endpoint("127.0.0.1", unused_tcp_port), _trusting(ca, tmp_path), timeout=5
        )
    assert caught.value.reason == "connect"


async def test_silent_server_is_timeout(ca: CertificateAuthority, tmp_path) -> None:
    """A server that accepts TCP but never answers the handshake fails with reason timeout."""

    finished = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()
        await writer.wait_closed()
        finished.set()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ConnectFailed) as caught:
            await Connection.open(Endpoint("127.0.0.1", port), _trusting(ca, tmp_path), timeout=0.5)
        # The server sees EOF only if the client really closed its socket on timeout.
        async with asyncio.timeout(5):
            await finished.wait()
    assert caught.value.reason == "timeout"


async def test_cancel_while_waiting_for_settings_closes_everything(
    ca: CertificateAuthority, tmp_path
) -> None:
    """Cancelling open() after TLS, before the server's SETTINGS, closes the socket and reader."""
    keypair = ca.issue_server()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(*keypair.write(tmp_path, "server"))
    server_ctx.set_alpn_protocols(["h2"])
    preface_seen = asyncio.Event()
    closed = asyncio.Event()

    async def never_settles(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(len(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
        preface_seen.set()  # the client now waits for our SETTINGS, which never come
        with contextlib.suppress(OSError, ssl.SSLError):
            while await reader.read(65536):
                pass
        closed.set()
        writer.close()

    server = await asyncio.start_server(never_settles, "127.0.0.1", 0, ssl=server_ctx)
    async with server:
        port = server.sockets[0].getsockname()[1]
        opening = asyncio.create_task(
            Connection.open(Endpoint("127.0.0.1", port), _trusting(ca, tmp_path), timeout=60)
        )
        async with asyncio.timeout(10):
            await preface_seen.wait()
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        async with asyncio.timeout(10):
            await closed.wait()  # EOF reaches the server only if the client closed its socket
    readers = [t for t in asyncio.all_tasks() if t.get_name().startswith("apns-reader-")]
    assert readers == []


async def test_concurrent_pushes_respect_a_stream_limit_of_one(
    mock: MockAPNs, ca: CertificateAuthority, signing_key: SigningKeyPair, device: str, tmp_path
) -> None:
    """Five concurrent pushes on a fresh connection (limit 1 until a valid JWT) all succeed."""
    conn = await Connection.open(
        Endpoint("127.0.0.1", mock.port), _trusting(ca, tmp_path), timeout=5
    )
    try:
        assert conn.max_concurrent_streams == 1
        token = jwt.encode(
            {"iss": TEAM_ID, "iat": int(time.time())},
            signing_key.private_pem,
            algorithm="ES256",
            headers={"kid": KEY_ID},
        )
        headers = [("apns-topic", TOPIC), ("authorization", f"bearer {token}")]
        responses = await asyncio.gather(
            *(
                conn.request("POST", f"/3/device/{device}", headers, b"{}", timeout=5)
                for _ in range(5)
            )
        )
        assert [r.status for r in responses] == [200] * 5
        assert conn.max_concurrent_streams == 1000
        assert await conn.ping(timeout=5) > 0
    finally:
        await conn.aclose()
