"""A CA rollout rehearsed offline: old and new root chains, switched at run time or per address."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import aiohttp
import pytest
from cryptography import x509
from mock_support import WAIT

from apns_exporter.mock import MockAPNs
from apns_exporter.mock.admin import AdminServer
from apns_exporter.mock.broadcast import ManagementServer
from apns_exporter.mock.rollout import (
    NEW_ROOT,
    NEW_ROOT_NAME,
    OLD_ROOT,
    OLD_ROOT_NAME,
    RootRollout,
    generate_rollout,
)


@pytest.fixture(scope="module")
def rollout() -> RootRollout:
    """An old and a new root, each with an intermediate, named after Apple's 2025 roots."""
    return generate_rollout()


def _mock(rollout: RootRollout, serving: str = OLD_ROOT) -> MockAPNs:
    chains = rollout.chains()
    return MockAPNs(chains[OLD_ROOT], keypairs=chains, serving=serving)


async def _handshake(host: str, port: int, trusted: bytes) -> x509.Certificate:
    """Verify the server against ``trusted`` roots and return the leaf it presented."""
    context = ssl.create_default_context(cadata=trusted.decode())
    context.set_alpn_protocols(["h2"])
    async with asyncio.timeout(WAIT):
        _, writer = await asyncio.open_connection(
            host, port, ssl=context, server_hostname="localhost"
        )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der)
    finally:
        writer.close()


def _issuer(leaf: x509.Certificate) -> str:
    return leaf.issuer.rfc4514_string()


def test_roots_are_named_after_apples_and_marked(rollout: RootRollout) -> None:
    """The two roots carry the names of Apple's old and new APNs roots, marked as the mock's."""
    assert rollout.old.certificate.subject.rfc4514_string() == f"CN={OLD_ROOT_NAME}"
    assert rollout.new.certificate.subject.rfc4514_string() == f"CN={NEW_ROOT_NAME}"
    assert "(apns-exporter mock)" in OLD_ROOT_NAME
    assert rollout.bundle_pem == rollout.old.cert_pem + rollout.new.cert_pem


@pytest.fixture
async def served(rollout: RootRollout) -> AsyncIterator[tuple[MockAPNs, aiohttp.ClientSession]]:
    """A mock serving the old root's chain, with its admin API."""
    mock = _mock(rollout)
    await mock.start("127.0.0.1", 0)
    admin = AdminServer(mock)
    await admin.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{admin.port}") as session:
            yield mock, session
    finally:
        await admin.stop()
        await mock.stop()


async def test_admin_api_switches_the_chain_at_run_time(
    rollout: RootRollout, served: tuple[MockAPNs, aiohttp.ClientSession]
) -> None:
    """PUT /certificates/current moves new connections to the new root; old-only trust breaks."""
    mock, admin = served
    before = await _handshake(mock.host, mock.port, rollout.old.cert_pem)
    assert "AAA Certificate Services" in _issuer(before)
    async with admin.put("/certificates/current", json={"name": NEW_ROOT}) as response:
        assert response.status == 200
        assert (await response.json())["current"] == NEW_ROOT
    after = await _handshake(mock.host, mock.port, rollout.bundle_pem)
    assert "USERTrust RSA Certification Authority" in _issuer(after)
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(mock.host, mock.port, rollout.old.cert_pem)
    async with admin.get("/certificates") as response:
        assert (await response.json())["current"] == NEW_ROOT


async def test_unknown_chain_name_is_a_400_listing_the_known(
    served: tuple[MockAPNs, aiohttp.ClientSession],
) -> None:
    """Switching to a chain the mock does not have is refused, naming the ones it has."""
    mock, admin = served
    async with admin.put("/certificates/current", json={"name": "newer-root"}) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert "newer-root" in error
    assert NEW_ROOT in error
    assert mock.current_keypair_name() == OLD_ROOT


async def test_one_of_two_addresses_presents_the_new_root(rollout: RootRollout) -> None:
    """Two mocks behind one port on 127.0.0.1 and 127.0.0.2 present different roots."""
    for _ in range(20):
        old = _mock(rollout, OLD_ROOT)
        await old.start("127.0.0.1", 0)
        new = _mock(rollout, NEW_ROOT)
        try:
            await new.start("127.0.0.2", old.port)
        except OSError:
            await old.stop()
            continue
        try:
            first = await _handshake("127.0.0.1", old.port, rollout.bundle_pem)
            second = await _handshake("127.0.0.2", old.port, rollout.bundle_pem)
        finally:
            await old.stop()
            await new.stop()
        assert "AAA Certificate Services" in _issuer(first)
        assert "USERTrust RSA Certification Authority" in _issuer(second)
        return
    pytest.fail("no port free on both 127.0.0.1 and 127.0.0.2")


async def test_channel_management_presents_the_switched_chain(rollout: RootRollout) -> None:
    """The management server shares the push server's chain, switches included."""
    mock = _mock(rollout)
    management = ManagementServer(mock)
    await management.start("127.0.0.1", 0)
    try:
        before = await _handshake(management.host, management.port, rollout.bundle_pem)
        mock.use_keypair(NEW_ROOT)
        after = await _handshake(management.host, management.port, rollout.bundle_pem)
    finally:
        await management.stop()
    assert "AAA Certificate Services" in _issuer(before)
    assert "USERTrust RSA Certification Authority" in _issuer(after)
