"""h2's memory of closed streams stays bounded; late frames on old streams are judged as before."""

from __future__ import annotations

import asyncio
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest

from apns_exporter.client.connection import Connection, Endpoint
from apns_exporter.client.protocol import MAX_RESET_STREAMS_REMEMBERED, ClientProtocol, Response
from apns_exporter.client.tls import client_context
from apns_exporter.errors import ConnectionLost, RequestFailed
from apns_exporter.mock.pki import CertificateAuthority
from apns_exporter.mock.server import MockAPNs
from tests.helpers import TOPIC

ANSWERED = 2000  # far past the bound, as a day of canaries on one connection
RST_STREAM, DATA = 0x3, 0x0


def _frame(frame_type: int, payload: bytes, *, stream_id: int, flags: int = 0) -> bytes:
    """One raw HTTP/2 frame, as a peer may send it whatever state we think the stream is in."""
    header = len(payload).to_bytes(3, "big") + bytes([frame_type, flags])
    return header + stream_id.to_bytes(4, "big") + payload


class Peer:
    """A server-side h2 connection wired byte for byte to a ClientProtocol."""

    def __init__(self) -> None:
        self.server = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.server.initiate_connection()
        self.client = ClientProtocol("api.push.apple.com")
        self.client.initiate()
        self.pump()

    def to_server(self) -> None:
        """Deliver what the client has queued."""
        self.server.receive_data(self.client.data_to_send())

    def pump(self) -> list[object]:
        """Exchange bytes until both sides are quiet; return the client's events."""
        events: list[object] = []
        for _ in range(100):
            up, down = self.client.data_to_send(), self.server.data_to_send()
            if up:
                self.server.receive_data(up)
            if down:
                events += self.client.receive_data(down)
            if not up and not down:
                return events
        raise AssertionError("peers never went quiet")

    def push(self) -> int:
        """Start one push on the client and deliver it to the server."""
        sid = self.client.send_request("POST", "/3/device/" + "ab" * 32, [], b"{}")
        self.to_server()
        return sid

    def answer(self, sid: int) -> None:
        """Queue a 200 on the server side (the stream ends with it)."""
        self.server.send_headers(sid, [(":status", "200")], end_stream=True)

    def answered_push(self) -> list[object]:
        """One push answered by the server; the client's events."""
        sid = self.push()
        self.answer(sid)
        return self.pump()

    def cancelled_with_answer_in_flight(self) -> int:
        """A push we cancel while the server's answer is already on its way to us."""
        sid = self.push()
        self.client.cancel(sid)  # our RST_STREAM is queued, not yet seen by the server
        self.answer(sid)
        self.client.receive_data(self.server.data_to_send())
        self.pump()
        return sid


def test_answered_pushes_leave_nothing_remembered() -> None:
    """Streams that ended with their answer are not remembered at all, however many there were."""
    peer = Peer()
    for _ in range(ANSWERED):
        [response] = peer.answered_push()
        assert isinstance(response, Response)
    assert peer.client.closed_streams_remembered == 0


def test_late_rst_stream_and_data_on_a_long_closed_stream_keep_the_connection() -> None:
    """RST_STREAM and DATA for a stream closed thousands of pushes ago are ignored, as before."""
    peer = Peer()
    first = peer.push()
    peer.answer(first)
    peer.pump()
    for _ in range(ANSWERED):
        peer.answered_push()
    late = _frame(RST_STREAM, (8).to_bytes(4, "big"), stream_id=first)
    late += _frame(DATA, b"late", stream_id=first, flags=0x1)
    assert peer.client.receive_data(late) == []
    assert not peer.client.closed
    [response] = peer.answered_push()
    assert isinstance(response, Response)
    assert response.status == 200


def test_a_late_answer_to_a_cancelled_stream_is_tolerated_within_the_bound() -> None:
    """HEADERS for a stream we reset, arriving bound - 1 resets later, leave the connection up."""
    peer = Peer()
    old = peer.cancelled_with_answer_in_flight()
    for _ in range(MAX_RESET_STREAMS_REMEMBERED - 1):
        peer.cancelled_with_answer_in_flight()
    peer.answered_push()  # h2 files closed streams away when the next one opens
    assert peer.client.closed_streams_remembered == MAX_RESET_STREAMS_REMEMBERED
    # The server's answer to ``old`` arrives only now, e.g. from a stalled middlebox.
    late = _frame(0x1, b"\x88", stream_id=old, flags=0x5)  # HEADERS :status 200, END_STREAM
    assert peer.client.receive_data(late) == []
    assert not peer.client.closed
    [response] = peer.answered_push()
    assert isinstance(response, Response)


def test_resets_past_the_bound_are_forgotten_oldest_first() -> None:
    """After bound + 50 resets only the bound is kept, and HEADERS on the oldest is an error.

    This is the price of the bound (h2 default: 65 536): a server answering a stream we
    reset more than MAX_RESET_STREAMS_REMEMBERED resets ago is told it broke the protocol.
    """
    peer = Peer()
    old = peer.cancelled_with_answer_in_flight()
    for _ in range(MAX_RESET_STREAMS_REMEMBERED + 50):
        peer.cancelled_with_answer_in_flight()
    peer.answered_push()
    assert peer.client.closed_streams_remembered == MAX_RESET_STREAMS_REMEMBERED
    with pytest.raises(ConnectionLost) as lost:
        peer.client.receive_data(_frame(0x1, b"\x88", stream_id=old, flags=0x5))
    assert lost.value.reason == "http2"


async def test_thousands_of_pushes_over_tls_keep_closed_stream_memory_bounded(
    mock: MockAPNs, ca: CertificateAuthority, tmp_path: Path
) -> None:
    """Thousands of answered and hundreds of timed-out pushes over TLS leave at most the bound."""
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    context = client_context(str(ca_file), system_store=False)
    conn = await Connection.open(Endpoint("127.0.0.1", mock.port), context, timeout=5)
    path, headers = "/3/device/" + "ab" * 32, [("apns-topic", TOPIC)]

    async def push(timeout: float) -> None:
        await conn.request("POST", path, headers, b"{}", timeout=timeout)

    try:
        for _ in range(ANSWERED // 20):
            await asyncio.gather(*(push(5) for _ in range(20)))
        mock.latency = 0.2  # every push below times out and is cancelled (RST_STREAM)
        timed_out = 0
        for _ in range((MAX_RESET_STREAMS_REMEMBERED + 100) // 20):
            results = await asyncio.gather(*(push(0.02) for _ in range(20)), return_exceptions=True)
            timed_out += sum(isinstance(r, RequestFailed) for r in results)
        assert timed_out > MAX_RESET_STREAMS_REMEMBERED
        mock.latency = 0.0
        await push(5)
        assert 0 < conn._proto.closed_streams_remembered <= MAX_RESET_STREAMS_REMEMBERED
    finally:
        await conn.aclose()
