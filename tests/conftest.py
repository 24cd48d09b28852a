"""Shared fixtures: test PKI generated at run time, a running mock APNs, and an exporter."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from apns_exporter import config
from apns_exporter.commands.serve import Listening, serve
from apns_exporter.mock.pki import (
    CertificateAuthority,
    SigningKeyPair,
    generate_ca,
    generate_signing_key,
)
from apns_exporter.mock.server import MockAPNs
from apns_exporter.service.exporter import Exporter
from tests.helpers import KEY_ID, TEAM_ID, TOPIC, WAIT_SECONDS, Running, Workspace


@pytest.fixture(scope="session")
def ca() -> CertificateAuthority:
    """A throwaway root CA that signs the mock's server certificate."""
    return generate_ca("apns-exporter test root CA")


@pytest.fixture(scope="session")
def signing_key() -> SigningKeyPair:
    """The provider signing key the mock trusts."""
    return generate_signing_key()


@pytest.fixture
def device() -> str:
    """A device token registered with the mock."""
    return secrets.token_hex(32)


@pytest.fixture
async def mock(
    ca: CertificateAuthority, signing_key: SigningKeyPair, device: str
) -> AsyncIterator[MockAPNs]:
    """A mock APNs on 127.0.0.1 with our key and one registered device."""
    server = MockAPNs(keypair=ca.issue_server())
    server.add_signing_key(KEY_ID, TEAM_ID, signing_key.public_key, topics=[TOPIC])
    server.devices.register(device, TOPIC)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def workspace(tmp_path: Path, ca: CertificateAuthority, signing_key: SigningKeyPair) -> Workspace:
    """Credentials on disk the way a user would keep them."""
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    key_file = tmp_path / f"AuthKey_{KEY_ID}.p8"
    key_file.write_bytes(signing_key.private_pem)
    return Workspace(tmp_path, ca_file, key_file)


@pytest.fixture
def run_exporter() -> Callable[..., contextlib.AbstractAsyncContextManager[Running]]:
    """Start the exporter and its web server on 127.0.0.1:0 from a config file."""

    @contextlib.asynccontextmanager
    async def start(
        config_file: Path,
        *,
        on_receipts: Callable[[str], None] | None = None,
        runbook_url: str | None = None,
        **options: Any,
    ) -> AsyncIterator[Running]:
        exporter = Exporter(config.load(config_file), config_file=str(config_file), **options)
        stop = asyncio.Event()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            serve(
                exporter,
                Listening(("127.0.0.1", 0), runbook_url=runbook_url),
                stop,
                on_listening=ready.set_result,
                on_receipts=on_receipts,
            )
        )
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            assert ready.done(), f"exporter exited before listening: {task.result()}"
            yield Running(exporter, ready.result())
        finally:
            stop.set()
            await task

    return start
