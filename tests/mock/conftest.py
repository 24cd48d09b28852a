"""Fixtures for the mock APNs tests: a throwaway PKI, a fake clock, the mock, a client factory."""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from mock_support import DEVICE, KEY_ID, TEAM_ID, TOPIC, WAIT, Credentials, FakeClock, H2Client

from apns_exporter.mock import MockAPNs, generate_ca, generate_signing_key
from apns_exporter.mock.pki import Keypair


@pytest.fixture(scope="session")
def credentials() -> Credentials:
    ca = generate_ca()
    return Credentials(ca=ca, server=ca.issue_server(), signing_key=generate_signing_key())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def token(credentials: Credentials, clock: FakeClock) -> str:
    """A fresh, valid provider token."""
    return credentials.mint(clock.now)


@pytest.fixture
def make_mock(credentials: Credentials, clock: FakeClock) -> Callable[..., MockAPNs]:
    """Build a MockAPNs with the test key and one registered device; kwargs go to MockAPNs."""

    def make(**kwargs: Any) -> MockAPNs:
        kwargs.setdefault("clock", clock)
        mock = MockAPNs(credentials.server, **kwargs)
        mock.add_signing_key(KEY_ID, TEAM_ID, credentials.signing_key.public_key)
        mock.devices.register(DEVICE, TOPIC)
        return mock

    return make


@pytest.fixture
async def mock(make_mock: Callable[..., MockAPNs]) -> AsyncIterator[MockAPNs]:
    async with make_mock().serving() as server:
        yield server


@pytest.fixture
async def connect(credentials: Credentials) -> AsyncIterator[Callable[..., Any]]:
    """Factory: ``await connect(mock, **options)`` returns an H2Client that got SETTINGS."""
    clients: list[H2Client] = []

    async def open_client(
        server: MockAPNs,
        *,
        cadata: bytes | None = None,
        client_cert: Keypair | None = None,
        alpn: list[str] | None = None,
        ready: bool = True,
    ) -> H2Client:
        context = ssl.create_default_context(cadata=(cadata or credentials.ca.cert_pem).decode())
        context.set_alpn_protocols(alpn if alpn is not None else ["h2"])
        if client_cert is not None:
            with tempfile.TemporaryDirectory() as tmp:
                cert_path, key_path = client_cert.write(Path(tmp), "client")
                context.load_cert_chain(cert_path, key_path)
        async with asyncio.timeout(WAIT):
            reader, writer = await asyncio.open_connection(
                server.host, server.port, ssl=context, server_hostname="localhost"
            )
        client = H2Client(reader, writer)
        clients.append(client)
        if ready:  # the server's SETTINGS prove its handler runs for this connection
            await client.wait_for(lambda: bool(client.settings_frames) or client.closed.is_set())
        return client

    yield open_client
    for client in clients:
        await client.close()
