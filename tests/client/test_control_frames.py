"""The control-frame bound of the sans-IO protocol, on a fake clock: bytes in, verdicts out."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest

from apns_exporter.client.protocol import MAX_CONTROL_FRAMES_PER_SECOND, ClientProtocol
from apns_exporter.errors import ConnectionLost


def ping_frames(count: int) -> bytes:
    """``count`` PING frames, as a flooding server writes them."""
    return (b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + bytes(8)) * count


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def started() -> tuple[ClientProtocol, Clock, h2.connection.H2Connection]:
    """A client past the server's SETTINGS, with a server-side h2 peer to read its frames."""
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    server.initiate_connection()
    clock = Clock()
    client = ClientProtocol("api.push.apple.com", clock=clock)
    client.initiate()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return client, clock, server


def test_up_to_the_bound_in_one_second_is_served(
    started: tuple[ClientProtocol, Clock, h2.connection.H2Connection],
) -> None:
    """Exactly the bound within one second is parsed, and each PING ACKed."""
    client, clock, server = started
    clock.now += 1.0  # past the second of the handshake's SETTINGS
    client.receive_data(ping_frames(MAX_CONTROL_FRAMES_PER_SECOND))
    events = server.receive_data(client.data_to_send())
    acks = sum(isinstance(e, h2.events.PingAckReceived) for e in events)
    assert acks == MAX_CONTROL_FRAMES_PER_SECOND


def test_one_past_the_bound_ends_the_connection_with_enhance_your_calm(
    started: tuple[ClientProtocol, Clock, h2.connection.H2Connection],
) -> None:
    """The first control frame past the bound raises http2 and queues GOAWAY ENHANCE_YOUR_CALM."""
    client, clock, server = started
    clock.now += 1.0
    with pytest.raises(ConnectionLost) as lost:
        client.receive_data(ping_frames(MAX_CONTROL_FRAMES_PER_SECOND + 1))
    assert lost.value.reason == "http2"
    assert "ENHANCE_YOUR_CALM" in str(lost.value)
    events = server.receive_data(client.data_to_send())
    # Refused before h2 parsed the chunk: no ACK for any PING in it.
    assert not any(isinstance(e, h2.events.PingAckReceived) for e in events)
    [goaway] = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def test_the_count_starts_again_each_second(
    started: tuple[ClientProtocol, Clock, h2.connection.H2Connection],
) -> None:
    """A steady rate just under the bound is never cut off, however long it lasts."""
    client, clock, _ = started
    for _ in range(5):
        clock.now += 1.0
        client.receive_data(ping_frames(MAX_CONTROL_FRAMES_PER_SECOND))
        client.data_to_send()
