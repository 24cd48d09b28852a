"""Across Apple's servers: kept connections age out and dials rotate over resolved addresses."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apns_exporter.client.channel import Channel
from apns_exporter.client.connection import Endpoint
from apns_exporter.client.dial import rotated
from apns_exporter.client.tls import client_context
from apns_exporter.mock.pki import CertificateAuthority
from apns_exporter.mock.server import MockAPNs
from tests.proxy_support import clear_proxy_environment

HOST = "api.mock-apns.test"
ADDRESSES = ["127.0.0.1", "127.0.0.2"]
AGE = 600.0


@contextlib.asynccontextmanager
async def two_servers(ca: CertificateAuthority) -> AsyncIterator[tuple[int, list[MockAPNs]]]:
    """Two mocks on 127.0.0.1 and 127.0.0.2 with one port, both certified for HOST."""
    for _ in range(20):
        first = MockAPNs(ca.issue_server([HOST]))
        await first.start(ADDRESSES[0], 0)
        second = MockAPNs(ca.issue_server([HOST]))
        try:
            await second.start(ADDRESSES[1], first.port)
        except OSError:  # that port is taken on 127.0.0.2: try another
            await first.stop()
            continue
        try:
            yield first.port, [first, second]
        finally:
            await first.stop()
            await second.stop()
        return
    pytest.fail("no port free on both 127.0.0.1 and 127.0.0.2")


async def resolver(host: str, port: int) -> list[str]:
    """Resolve HOST to both loopback servers, as Apple's names resolve to many addresses."""
    assert host == HOST
    return list(ADDRESSES)


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variables: these dials go direct."""
    clear_proxy_environment(monkeypatch)


async def _until_closed(server: MockAPNs) -> None:
    deadline = time.monotonic() + 5
    while server.stats.active_connections:
        assert time.monotonic() < deadline, "the retired connection was never closed"
        await asyncio.sleep(0.01)


def test_rotated_starts_at_the_offset_and_wraps() -> None:
    """rotated() starts at index start modulo the length and keeps every address once."""
    assert rotated(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert rotated(["a", "b", "c"], 4) == ["b", "c", "a"]
    assert rotated([], 3) == []


async def test_aged_connection_is_replaced_on_the_next_address(
    ca: CertificateAuthority, tmp_path: Path, no_proxy_env: None
) -> None:
    """Past max_age (±10 %) the channel drains its connection and dials the other server."""
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    now = [0.0]
    async with two_servers(ca) as (port, servers):
        channel = Channel(
            Endpoint(HOST, port),
            client_context(str(ca_file), system_store=False),
            connect_timeout=5,
            clock=lambda: now[0],
            resolver=resolver,
            max_age=AGE,
            rng=random.Random(3),
        )
        try:
            first = await channel.acquire()
            assert first.connection is not None
            assert first.dial is not None
            assert first.dial.peer == f"127.0.0.1:{port}"
            now[0] = AGE * 0.89  # inside the jitter's lower bound: kept
            kept = await channel.acquire()
            assert kept.connection is first.connection
            assert kept.dial is None
            now[0] = AGE * 1.11  # beyond the upper bound: replaced
            second = await channel.acquire()
            assert second.connection is not None
            assert second.connection is not first.connection
            assert second.dial is not None
            assert second.dial.ok
            assert second.dial.replaced == "max_connection_age"
            assert second.connection.peer == f"127.0.0.2:{port}"
            assert channel.failures == 0  # an aged connection is no failure
            await _until_closed(servers[0])
            assert servers[1].stats.active_connections == 1
        finally:
            await channel.aclose()


async def test_successive_dials_visit_every_address(
    ca: CertificateAuthority, tmp_path: Path, no_proxy_env: None
) -> None:
    """Four dials in a row start at a different resolved address each time, round-robin."""
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    now = [0.0]
    async with two_servers(ca) as (port, _):
        channel = Channel(
            Endpoint(HOST, port),
            client_context(str(ca_file), system_store=False),
            connect_timeout=5,
            clock=lambda: now[0],
            resolver=resolver,
            max_age=1.0,
            rng=random.Random(5),
        )
        peers = []
        try:
            for step in range(4):
                now[0] = step * 2.0  # every acquire finds the previous connection aged
                lease = await channel.acquire()
                assert lease.connection is not None
                peers.append(lease.connection.peer.rpartition(":")[0])
        finally:
            await channel.aclose()
    assert peers == ["127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.2"]


async def test_no_max_age_keeps_the_connection(
    ca: CertificateAuthority, tmp_path: Path, no_proxy_env: None
) -> None:
    """With max_age None a healthy connection is kept however long it lives."""
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    now = [0.0]
    async with two_servers(ca) as (port, _):
        channel = Channel(
            Endpoint(HOST, port),
            client_context(str(ca_file), system_store=False),
            connect_timeout=5,
            clock=lambda: now[0],
            resolver=resolver,
            max_age=None,
        )
        try:
            first = await channel.acquire()
            now[0] = 10 * 86400.0
            later = await channel.acquire()
            assert first.connection is not None
            assert later.connection is first.connection
        finally:
            await channel.aclose()
