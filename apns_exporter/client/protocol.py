"""Sans-IO HTTP/2 client for APNs over h2: bytes in, typed events out; must not do IO."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import h2.utilities

from apns_exporter.errors import ConnectionLost

# A hostile or broken server must not make us buffer without bound; APNs error bodies are
# tiny JSON objects, so anything past this is cut off and the stream is cancelled.
MAX_RESPONSE_BODY_BYTES = 64 * 1024
_FRAME_HEADER_BYTES = 9
_SETTINGS_FRAME = 0x4
_GOAWAY_FRAME = 0x7
_GOAWAY_FIXED_BYTES = 8  # last-stream-id and error code, before the debug data
# Control frames carry no response but cost us work: h2 needs about 55 µs to parse a PING
# or a SETTINGS frame, and each of those makes us write an ACK. A peer that sends them
# without end keeps the event loop busy for every other target (the HTTP/2 floods of
# CVE-2019-9512 PING, -9514 RST_STREAM, -9515 SETTINGS). Like Go's net/http2, we bound them:
# past this many in one second, the connection ends with GOAWAY ENHANCE_YOUR_CALM. APNs sends
# a handful per connection per minute.
MAX_CONTROL_FRAMES_PER_SECOND = 1000
CONTROL_FRAME_TYPES = {0x3: "RST_STREAM", 0x4: "SETTINGS", 0x6: "PING", 0x8: "WINDOW_UPDATE"}
# h2 remembers how each closed stream ended, up to 65 536 per connection (about 0.1 KiB per
# push, for good), only to judge a frame that arrives after the close: a late RST_STREAM or
# DATA is answered the same whether remembered or not, and a late HEADERS is a connection
# error unless we reset that stream ourselves (the server's answer was already in flight
# when our cancel went out). So only streams closed by a reset are kept, the latest
# MAX_RESET_STREAMS_REMEMBERED: APNs answers each stream once, and we reset one only when a
# push's deadline passes or its answer is oversized, so 256 covers hours of those, far past
# the one round trip in which such an answer can still arrive.
MAX_RESET_STREAMS_REMEMBERED = 256
_RESET = (h2.stream.StreamClosedBy.SEND_RST_STREAM, h2.stream.StreamClosedBy.RECV_RST_STREAM)


@dataclass(frozen=True)
class Response:
    """A complete response on one stream."""

    stream_id: int
    status: int
    headers: dict[str, str]
    body: bytes
    # Set by the connection: from the request's last frame handed to the transport until
    # this response was parsed, so a busy event loop elsewhere does not count.
    elapsed: float | None = None

    @property
    def apns_id(self) -> str | None:
        """The ``apns-id`` APNs assigned to the request."""
        return self.headers.get("apns-id")

    @property
    def reason(self) -> str | None:
        """The ``reason`` from a JSON error body, or None."""
        return _json_reason(self.body)


@dataclass(frozen=True)
class PingAcked:
    """The server acknowledged one of our PINGs."""

    data: bytes


@dataclass(frozen=True)
class StreamReset:
    """A stream ended without a response (RST_STREAM, or cancelled by us)."""

    stream_id: int
    error_code: int
    by_us: bool = False


@dataclass(frozen=True)
class GoAway:
    """The server is closing the connection; streams above ``last_stream_id`` were not processed."""

    error_code: int
    last_stream_id: int
    debug_data: bytes = b""

    @property
    def reason(self) -> str:
        """The APNs reason from JSON debug data, the plain text, or ``none`` when empty."""
        if not self.debug_data:
            return "none"
        return _json_reason(self.debug_data) or "text"


@dataclass(frozen=True)
class SettingsChanged:
    """The server changed its SETTINGS; ``max_concurrent_streams`` is the value now in force."""

    max_concurrent_streams: int
    changed: dict[int, int] = field(default_factory=dict)


Event = Response | PingAcked | StreamReset | GoAway | SettingsChanged


class _ResetStreams(h2.utilities.SizeLimitDict):
    """h2's closed-stream memory, keeping only streams closed by a reset (see above)."""

    def __setitem__(self, key: int, value: object) -> None:
        if value in _RESET:
            super().__setitem__(key, value)
        else:
            self.pop(key, None)


class _H2Connection(h2.connection.H2Connection):
    """h2's connection with its closed-stream memory bounded (MAX_RESET_STREAMS_REMEMBERED)."""

    MAX_CLOSED_STREAMS = MAX_RESET_STREAMS_REMEMBERED

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config=config)
        self._closed_streams = _ResetStreams(size_limit=self.MAX_CLOSED_STREAMS)


def _json_reason(body: bytes) -> str | None:
    try:
        reason = json.loads(body).get("reason")
    except (ValueError, AttributeError):
        return None
    return reason if isinstance(reason, str) else None


@dataclass
class _Stream:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    pending: bytes = b""  # request body not yet sent for lack of flow-control window


class ClientProtocol:
    """One HTTP/2 client connection's state; every method is synchronous and does no IO."""

    def __init__(self, authority: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._authority = authority
        self._clock = clock
        # Control frames seen in the current one-second window, and when it began.
        self._control_frames = 0
        self._window_start = float("-inf")
        self._h2 = _H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self._streams: dict[int, _Stream] = {}
        self.goaway: GoAway | None = None
        self._preface: bytes | None = b""  # the first bytes from the server, until checked
        # Frame boundaries, tracked so that GOAWAY frames can be taken out (see _demux).
        self._header = b""  # the current frame's header, until complete
        self._left = 0  # payload bytes of the current frame still to come
        self._goaway_payload: bytearray | None = None  # set while inside a GOAWAY frame

    def initiate(self) -> None:
        """Queue the connection preface and our SETTINGS."""
        # APNs never pushes; refusing server push keeps the state machine simple.
        self._h2.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.ENABLE_PUSH: 0}
        )
        self._h2.initiate_connection()

    @property
    def max_concurrent_streams(self) -> int:
        """The server's current limit on concurrent streams."""
        return int(self._h2.remote_settings.max_concurrent_streams)

    @property
    def open_streams(self) -> int:
        """Streams we opened that have not finished."""
        return len(self._streams)

    @property
    def closed_streams_remembered(self) -> int:
        """How many closed streams h2 remembers, to judge frames that arrive on them late."""
        return len(self._h2._closed_streams)

    def can_open_stream(self) -> bool:
        """Whether a new request may start now without exceeding the server's limit."""
        return self.goaway is None and self.open_streams < self.max_concurrent_streams

    def send_request(
        self, method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> int:
        """Start a request and return its stream id; the body follows as the window allows."""
        if self.goaway is not None:
            raise ConnectionLost("goaway", "the server sent GOAWAY; open a new connection")
        stream_id = self._h2.get_next_available_stream_id()
        pseudo = [
            (":method", method),
            (":scheme", "https"),
            (":path", path),
            (":authority", self._authority),
        ]
        self._h2.send_headers(stream_id, [*pseudo, *headers], end_stream=not body)
        stream = self._streams[stream_id] = _Stream(pending=body)
        if body:
            self._send_pending(stream_id, stream)
        return stream_id

    def cancel(self, stream_id: int) -> None:
        """Abandon a stream we no longer wait for (its deadline passed); no-op once closed."""
        if self._streams.pop(stream_id, None) is not None and not self.closed:
            self._reset(stream_id, h2.errors.ErrorCodes.CANCEL)

    @property
    def closed(self) -> bool:
        """Whether the HTTP/2 connection is over (our GOAWAY, or a protocol error)."""
        return self._h2.state_machine.state is h2.connection.ConnectionState.CLOSED

    def send_ping(self) -> bytes:
        """Queue a PING and return its opaque data, which the ACK will echo."""
        data = os.urandom(8)
        self._h2.ping(data)
        return data

    def close(self) -> None:
        """Queue a GOAWAY of our own: we are done with this connection."""
        # The peer may have closed first; then there is nothing left to say.
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.close_connection()

    def data_to_send(self) -> bytes:
        """The bytes to write to the socket now."""
        return bytes(self._h2.data_to_send())

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes read from the socket and return what they mean."""
        self._check_preface(data)
        events: list[Event] = []
        # The whole chunk is scanned (frame headers only) before h2 parses any of it, so a
        # flood is refused before it costs more than the scan.
        for part in self._demux(data, self._clock()):
            if isinstance(part, GoAway):
                self.goaway = part
                events.append(part)
                continue
            try:
                h2_events = self._h2.receive_data(part)
            except h2.exceptions.ProtocolError as exc:
                raise ConnectionLost("http2", f"HTTP/2 protocol error from server: {exc}") from exc
            for ev in h2_events:
                events.extend(self._translate(ev))
        return events

    def _demux(self, data: bytes, now: float) -> list[bytes | GoAway]:
        # h2 (4.x) moves to CLOSED on a received GOAWAY and then rejects every later frame and
        # every send, but RFC 9113 §6.8 lets the server still answer streams up to
        # last_stream_id (a graceful GOAWAY), and we may still cancel or PING. So GOAWAY
        # frames are taken out of the byte stream here and never reach h2; all other bytes
        # pass through unchanged.
        parts: list[bytes | GoAway] = []
        passthrough = bytearray()
        pos = 0
        while pos < len(data):
            if self._left == 0 and self._goaway_payload is None:
                take = min(_FRAME_HEADER_BYTES - len(self._header), len(data) - pos)
                self._header += data[pos : pos + take]
                pos += take
                if len(self._header) < _FRAME_HEADER_BYTES:
                    break
                header, self._header = self._header, b""
                self._left = int.from_bytes(header[:3], "big")
                if header[3] in CONTROL_FRAME_TYPES:
                    self._count_control_frame(now)
                if header[3] != _GOAWAY_FRAME:
                    passthrough += header
                    continue
                if int.from_bytes(header[5:9], "big") & 0x7FFFFFFF != 0:
                    raise ConnectionLost("http2", "HTTP/2 protocol error: GOAWAY on a stream")
                if not _GOAWAY_FIXED_BYTES <= self._left <= self._h2.max_inbound_frame_size:
                    raise ConnectionLost("http2", f"HTTP/2 GOAWAY of bad size {self._left}")
                self._goaway_payload = bytearray()
            take = min(self._left, len(data) - pos)
            target = passthrough if self._goaway_payload is None else self._goaway_payload
            target += data[pos : pos + take]
            pos += take
            self._left -= take
            if self._left == 0 and self._goaway_payload is not None:
                payload, self._goaway_payload = bytes(self._goaway_payload), None
                if passthrough:
                    parts.append(bytes(passthrough))
                    passthrough.clear()
                parts.append(
                    GoAway(
                        int.from_bytes(payload[4:8], "big"),
                        int.from_bytes(payload[:4], "big") & 0x7FFFFFFF,
                        payload[8:],
                    )
                )
        if passthrough:
            parts.append(bytes(passthrough))
        return parts

    def _count_control_frame(self, now: float) -> None:
        if now - self._window_start >= 1.0:
            self._window_start, self._control_frames = now, 0
        self._control_frames += 1
        if self._control_frames <= MAX_CONTROL_FRAMES_PER_SECOND:
            return
        # The peer may have closed first; then there is nothing left to say.
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.close_connection(error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        kinds = "/".join(CONTROL_FRAME_TYPES.values())
        raise ConnectionLost(
            "http2",
            f"the server sent more than {MAX_CONTROL_FRAMES_PER_SECOND} control frames "
            f"({kinds}) within a second, a flood: closed with ENHANCE_YOUR_CALM",
        )

    def _check_preface(self, data: bytes) -> None:
        # h2 waits for a whole frame before judging it, so an HTTP/1.1 answer or other
        # garbage would look like the start of a huge frame and hang; the server's first
        # frame must be SETTINGS (RFC 9113 §3.4), which its 9-byte header shows at once.
        if self._preface is None:
            return
        self._preface += data
        if len(self._preface) < _FRAME_HEADER_BYTES:
            return
        frame_type = self._preface[3]
        self._preface = None
        if frame_type != _SETTINGS_FRAME:
            raise ConnectionLost("http2", "the server did not start with an HTTP/2 SETTINGS frame")

    def _translate(self, ev: h2.events.Event) -> list[Event]:
        if isinstance(ev, h2.events.ResponseReceived | h2.events.TrailersReceived):
            stream = self._streams.get(ev.stream_id or 0)
            if stream is not None:
                for name, value in ev.headers or []:
                    key, val = str(name), str(value)
                    if key == ":status":
                        stream.status = int(val)
                    else:
                        stream.headers[key] = val
        elif isinstance(ev, h2.events.DataReceived):
            return self._on_data(ev)
        elif isinstance(ev, h2.events.StreamEnded):
            stream = self._streams.pop(ev.stream_id or 0, None)
            if stream is not None:
                sid = ev.stream_id or 0
                return [Response(sid, stream.status, stream.headers, bytes(stream.body))]
        elif isinstance(ev, h2.events.StreamReset):
            if self._streams.pop(ev.stream_id or 0, None) is not None:
                return [StreamReset(ev.stream_id or 0, int(ev.error_code or 0))]
        elif isinstance(ev, h2.events.PingAckReceived):
            return [PingAcked(bytes(ev.ping_data or b""))]
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            changed = {int(k): int(v.new_value or 0) for k, v in ev.changed_settings.items()}
            return [SettingsChanged(self.max_concurrent_streams, changed)]
        elif isinstance(ev, h2.events.WindowUpdated):
            for sid, stream in list(self._streams.items()):
                if stream.pending:
                    self._send_pending(sid, stream)
        return []

    def _on_data(self, ev: h2.events.DataReceived) -> list[Event]:
        sid = ev.stream_id or 0
        # Acknowledge every byte, even for streams we dropped, or the connection window
        # shrinks until the server can no longer answer anything.
        self._h2.acknowledge_received_data(ev.flow_controlled_length or 0, sid)
        stream = self._streams.get(sid)
        if stream is None:
            return []
        stream.body += ev.data or b""
        if len(stream.body) > MAX_RESPONSE_BODY_BYTES:
            del self._streams[sid]
            self._reset(sid, h2.errors.ErrorCodes.CANCEL)
            return [StreamReset(sid, int(h2.errors.ErrorCodes.CANCEL), by_us=True)]
        return []

    def _send_pending(self, stream_id: int, stream: _Stream) -> None:
        window = self._h2.local_flow_control_window(stream_id)
        chunk_limit = min(window, self._h2.max_outbound_frame_size)
        while stream.pending and chunk_limit > 0:
            chunk, stream.pending = stream.pending[:chunk_limit], stream.pending[chunk_limit:]
            self._h2.send_data(stream_id, chunk, end_stream=not stream.pending)
            window -= len(chunk)
            chunk_limit = min(window, self._h2.max_outbound_frame_size)

    def _reset(self, stream_id: int, code: h2.errors.ErrorCodes) -> None:
        # The stream may have finished on its own meanwhile.
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._h2.reset_stream(stream_id, code)
