"""Durations are stamped where frames are written and parsed, so a stalled loop adds nothing."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

from apns_exporter.client.connection import Connection, Endpoint
from apns_exporter.client.protocol import Event, PingAcked, Response
from apns_exporter.client.tls import client_context
from apns_exporter.mock.pki import CertificateAuthority
from apns_exporter.mock.server import MockAPNs
from tests.helpers import TOPIC

STALL_SECONDS = 0.05
SERVER_LATENCY_SECONDS = 0.02
REQUESTS = 5


def _server_times(mock: MockAPNs) -> dict[int, list[float]]:
    """Record, per stream id, when the mock read each request's bytes and handed back its answer."""
    times: dict[int, list[float]] = {}

    def trace(what: str, stream_id: int, moment: float) -> None:
        times.setdefault(stream_id, []).append(moment)

    mock.trace = trace
    return times


def _stall() -> None:
    # Blocks the whole event loop, as a long scrape holding the GIL would.
    time.sleep(STALL_SECONDS)


async def test_stalled_loop_does_not_inflate_durations(
    mock: MockAPNs, ca: CertificateAuthority, tmp_path: Path
) -> None:
    """Stalls before each write and after each parse leave durations at the server's own time."""
    server = _server_times(mock)
    mock.latency = SERVER_LATENCY_SECONDS
    loop = asyncio.get_running_loop()

    def observer(event: Event) -> None:
        if isinstance(event, Response | PingAcked):
            loop.call_soon(_stall)  # runs before the waiting task wakes up

    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    conn = await Connection.open(
        Endpoint("127.0.0.1", mock.port),
        client_context(str(ca_file), system_store=False),
        timeout=5,
        observer=observer,
    )
    errors = []
    try:
        for _ in range(REQUESTS):
            loop.call_soon(_stall)  # runs before the request's frames are written
            response = await conn.request(
                "POST", "/3/device/" + "ab" * 32, [("apns-topic", TOPIC)], b"{}", timeout=5
            )
            assert response.elapsed is not None
            recv, sent = server[response.stream_id]
            assert response.elapsed < sent - recv + STALL_SECONDS / 2
            errors.append(abs(response.elapsed - (sent - recv)))
        loop.call_soon(_stall)
        assert await conn.ping(timeout=5) < STALL_SECONDS / 2
    finally:
        await conn.aclose()
    # A stall counted would add 50 ms to every error. The bound leaves room for a busy
    # machine taking the CPU away between the mock's stamp and ours (which, idle, are
    # well under a millisecond apart), and the median forgives the worst moments.
    assert statistics.median(errors) <= STALL_SECONDS / 10
