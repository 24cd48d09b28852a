"""Sans-IO protocol tests: bytes from a real h2 server-side peer in, typed events out."""

from __future__ import annotations

import json

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest

from apns_exporter.client.protocol import (
    MAX_RESPONSE_BODY_BYTES,
    ClientProtocol,
    Event,
    GoAway,
    PingAcked,
    Response,
    SettingsChanged,
    StreamReset,
)
from apns_exporter.errors import ConnectionLost


class Peer:
    """An h2 server connection wired byte-for-byte to a ClientProtocol, with no sockets."""

    def __init__(self, settings: dict[int, int] | None = None) -> None:
        self.server = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.server.initiate_connection()
        if settings:
            self.server.update_settings(settings)
        self.client = ClientProtocol("api.push.apple.com")
        self.client.initiate()
        self.requests: list[h2.events.RequestReceived] = []
        self.pump()

    def pump(self) -> list[Event]:
        """Exchange bytes until both sides are quiet; return the client's events."""
        events: list[Event] = []
        for _ in range(100):
            to_server = self.client.data_to_send()
            if to_server:
                for ev in self.server.receive_data(to_server):
                    if isinstance(ev, h2.events.RequestReceived):
                        self.requests.append(ev)
            to_client = self.server.data_to_send()
            if to_client:
                events += self.client.receive_data(to_client)
            if not to_server and not to_client:
                return events
        raise AssertionError("peers never went quiet")

    def respond(self, stream_id: int, status: int, body: bytes = b"", **headers: str) -> None:
        """Queue a complete response on one stream."""
        fields = [(":status", str(status)), *((k.replace("_", "-"), v) for k, v in headers.items())]
        self.server.send_headers(stream_id, fields, end_stream=not body)
        if body:
            self.server.send_data(stream_id, body, end_stream=True)


def _push(peer: Peer) -> int:
    return peer.client.send_request(
        "POST", "/3/device/" + "ab" * 32, [("apns-topic", "com.example.app")], b'{"aps":{}}'
    )


def test_request_is_sent_with_apns_pseudo_headers() -> None:
    """A request arrives at the server with POST, the device path and the authority."""
    peer = Peer()
    _push(peer)
    peer.pump()
    headers = dict(peer.requests[0].headers or [])
    assert headers[":method"] == "POST"
    assert headers[":path"] == "/3/device/" + "ab" * 32
    assert headers[":authority"] == "api.push.apple.com"
    assert headers["apns-topic"] == "com.example.app"


def test_response_event_carries_status_apns_id_and_reason() -> None:
    """A 400 with a JSON body becomes one Response with its apns-id and reason."""
    peer = Peer()
    sid = _push(peer)
    peer.pump()
    peer.respond(sid, 400, b'{"reason":"BadDeviceToken"}', apns_id="abc")
    events = peer.pump()
    responses = [e for e in events if isinstance(e, Response)]
    assert len(responses) == 1
    assert (responses[0].status, responses[0].apns_id, responses[0].reason) == (
        400,
        "abc",
        "BadDeviceToken",
    )
    assert peer.client.open_streams == 0


def test_more_than_64k_of_bodies_flow_through_one_connection() -> None:
    """Received data is acknowledged, so 40 responses of 8 KiB pass the 64 KiB window."""
    peer = Peer()
    body = json.dumps({"reason": "BadDeviceToken", "pad": "x" * 8000}).encode()
    received = 0
    for _ in range(40):
        sid = _push(peer)
        peer.pump()
        peer.respond(sid, 400, body)
        received += sum(len(e.body) for e in peer.pump() if isinstance(e, Response))
    assert received == 40 * len(body) > 4 * 65535


def test_ping_ack_echoes_opaque_data() -> None:
    """A PING we send comes back as PingAcked with the same eight bytes."""
    peer = Peer()
    data = peer.client.send_ping()
    assert PingAcked(data) in peer.pump()


def test_stream_reset_is_reported_for_our_stream() -> None:
    """RST_STREAM from the server becomes StreamReset with its error code."""
    peer = Peer()
    sid = _push(peer)
    peer.pump()
    peer.server.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
    assert StreamReset(sid, 7) in peer.pump()
    assert peer.client.open_streams == 0


@pytest.mark.parametrize(
    ("debug", "reason"),
    [
        (b'{"reason":"BadCertificateEnvironment"}', "BadCertificateEnvironment"),
        (b"Maximum active streams violated", "text"),
        (b"", "none"),
    ],
    ids=["json", "text", "empty"],
)
def test_goaway_in_each_form(debug: bytes, reason: str) -> None:
    """GOAWAY with JSON, plain-text or empty debug data yields the matching reason."""
    peer = Peer()
    peer.server.close_connection(additional_data=debug or None)
    events = peer.pump()
    goaway = next(e for e in events if isinstance(e, GoAway))
    assert (goaway.reason, goaway.debug_data) == (reason, debug)
    assert not peer.client.can_open_stream()
    with pytest.raises(ConnectionLost):
        _push(peer)


def test_stream_limit_follows_server_settings() -> None:
    """With MAX_CONCURRENT_STREAMS 1 a second stream waits until the first finishes."""
    peer = Peer({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
    assert peer.client.max_concurrent_streams == 1
    sid = _push(peer)
    assert not peer.client.can_open_stream()
    peer.pump()
    peer.server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000})
    events = peer.pump()
    assert SettingsChanged(1000, {3: 1000}) in events
    assert peer.client.can_open_stream()
    peer.respond(sid, 200)
    assert any(isinstance(e, Response) for e in peer.pump())


def test_oversized_body_is_cut_off() -> None:
    """A body past the cap resets the stream instead of buffering without bound."""
    peer = Peer()
    sid = _push(peer)
    peer.pump()
    peer.server.increment_flow_control_window(10 * MAX_RESPONSE_BODY_BYTES)
    peer.server.send_headers(sid, [(":status", "200")])
    chunk = b"x" * 16384
    events: list[Event] = []
    for _ in range(MAX_RESPONSE_BODY_BYTES // len(chunk) + 1):
        peer.server.send_data(sid, chunk)
        events += peer.pump()
    assert StreamReset(sid, int(h2.errors.ErrorCodes.CANCEL), by_us=True) in events


def test_garbage_bytes_raise_connection_lost() -> None:
    """Bytes that are not HTTP/2 end the connection with reason http2."""
    client = ClientProtocol("api.push.apple.com")
    client.initiate()
    with pytest.raises(ConnectionLost) as caught:
        client.receive_data(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert caught.value.reason == "http2"


def test_cancel_after_our_goaway_is_a_no_op() -> None:
    """Cancelling a stream once we closed the connection queues nothing and raises nothing."""
    peer = Peer()
    sid = _push(peer)
    peer.pump()
    peer.client.close()
    peer.pump()
    assert peer.client.closed
    peer.client.cancel(sid)
    assert peer.client.data_to_send() == b""
    assert peer.client.open_streams == 0


def test_cancel_after_a_protocol_error_is_a_no_op() -> None:
    """Cancelling a stream after the server broke HTTP/2 does not raise h2's ProtocolError."""
    peer = Peer()
    sid = _push(peer)
    peer.pump()
    # A DATA frame on stream 2, which no one opened: a connection error for h2.
    with pytest.raises(ConnectionLost):
        peer.client.receive_data(b"\x00\x00\x01\x00\x00\x00\x00\x00\x02x")
    peer.client.data_to_send()  # h2's own GOAWAY for the error
    peer.client.cancel(sid)
    assert peer.client.data_to_send() == b""
