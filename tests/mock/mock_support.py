"""Helpers for the mock APNs tests: constants, a fake clock, credentials, a raw h2 client.

The client here is deliberately tiny and written against h2 directly (never the exporter's
own client), so the mock is checked by an independent implementation.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingAckReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes

from apns_exporter.mock.pki import CertificateAuthority, Keypair, SigningKeyPair

KEY_ID = "ABC123DEFG"
TEAM_ID = "DEF123GHIJ"
TOPIC = "com.example.app"
DEVICE = "ab" * 32
UNKNOWN_DEVICE = "cd" * 32
WAIT = 5.0  # upper bound for any single await in these tests; never a synchronisation sleep


class FakeClock:
    """A settable clock for the mock's token rules."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Response:
    """One response (or stream reset) as the raw client saw it."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    reset: int | None = None

    @property
    def json(self) -> Any:
        import json

        return json.loads(self.body)

    @property
    def reason(self) -> str | None:
        return self.json.get("reason") if self.body else None


class H2Client:
    """A raw HTTP/2 client over TLS that records everything the server sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
        self.settings_frames: list[dict[int, int]] = []
        self.goaways: list[ConnectionTerminated] = []
        self.closed = asyncio.Event()
        self.protocol_error: ProtocolError | None = None
        self._buffer = bytearray()
        self._partial: dict[int, Response] = {}
        self._futures: dict[int, asyncio.Future[Response]] = {}
        self._pings: dict[bytes, asyncio.Future[None]] = {}
        self._changed = asyncio.Condition()
        self.conn.initiate_connection()
        self._flush()
        self._task = asyncio.create_task(self._read())

    @property
    def max_streams(self) -> int | None:
        """The server's latest advertised MAX_CONCURRENT_STREAMS."""
        for frame in reversed(self.settings_frames):
            if SettingCodes.MAX_CONCURRENT_STREAMS in frame:
                return frame[SettingCodes.MAX_CONCURRENT_STREAMS]
        return None

    def ignore_stream_limit(self) -> None:
        """Let this client open more streams than the server allows, to provoke refusals."""
        self.conn.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 2**31 - 1
        self.conn.remote_settings.acknowledge()

    def send(
        self,
        path: str = f"/3/device/{DEVICE}",
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b'{"aps":{"alert":"hi"}}',
        method: str = "POST",
    ) -> int:
        """Open a stream with one request and return its ID without waiting."""
        stream_id = self.conn.get_next_available_stream_id()
        request = [
            (":method", method),
            (":scheme", "https"),
            (":path", path),
            (":authority", "localhost"),
            *(headers or []),
        ]
        self._futures[stream_id] = asyncio.get_running_loop().create_future()
        self.conn.send_headers(stream_id, request, end_stream=not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=True)
        self._flush()
        return stream_id

    async def response(self, stream_id: int) -> Response:
        """Wait for the response (or reset) on a stream."""
        async with asyncio.timeout(WAIT):
            return await self._futures[stream_id]

    async def request(self, *args: Any, **kwargs: Any) -> Response:
        """Send one request and wait for its response."""
        return await self.response(self.send(*args, **kwargs))

    def ping(self, data: bytes = b"canary!!") -> asyncio.Future[None]:
        """Send a PING; the returned future resolves when its ACK arrives."""
        future = asyncio.get_running_loop().create_future()
        self._pings[data] = future
        self.conn.ping(data)
        self._flush()
        return future

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait (bounded) until the recorded state satisfies ``predicate``."""
        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_closed(self) -> None:
        """Wait (bounded) until the server closed the connection."""
        async with asyncio.timeout(WAIT):
            await self.closed.wait()

    async def close(self) -> None:
        """Close the connection and stop the reader."""
        self.writer.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        try:
            async with asyncio.timeout(1):
                await self.writer.wait_closed()
        except (OSError, TimeoutError, ssl.SSLError):
            pass

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def _read(self) -> None:
        try:
            while data := await self.reader.read(65536):
                self._buffer += data
                for frame in self._whole_frames():
                    for event in self.conn.receive_data(frame):
                        self._on_event(event)
                self._flush()
                async with self._changed:
                    self._changed.notify_all()
        except (OSError, ssl.SSLError):
            pass
        except ProtocolError as exc:
            self.protocol_error = exc
        finally:
            self.closed.set()
            for future in self._futures.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))
            async with self._changed:
                self._changed.notify_all()

    def _whole_frames(self) -> list[bytes]:
        # Frames are fed to h2 one at a time so that a GOAWAY can be followed by more frames:
        # h2 refuses any frame after GOAWAY, but RFC 9113 lets streams up to last_stream_id end.
        frames = []
        while len(self._buffer) >= 9:
            end = 9 + int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < end:
                break
            frames.append(bytes(self._buffer[:end]))
            del self._buffer[:end]
        return frames

    def _on_event(self, event: Any) -> None:
        if isinstance(event, ResponseReceived):
            headers = dict(event.headers or [])
            self._partial[event.stream_id] = Response(int(headers[":status"]), headers)
        elif isinstance(event, DataReceived):
            self._partial[event.stream_id].body += event.data
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, StreamEnded):
            self._resolve(event.stream_id, self._partial.pop(event.stream_id))
        elif isinstance(event, StreamReset):
            self._resolve(event.stream_id, Response(reset=int(event.error_code or 0)))
        elif isinstance(event, RemoteSettingsChanged):
            self.settings_frames.append(
                {int(k): v.new_value for k, v in event.changed_settings.items()}
            )
        elif isinstance(event, PingAckReceived):
            future = self._pings.pop(bytes(event.ping_data or b""), None)
            if future is not None and not future.done():
                future.set_result(None)
        elif isinstance(event, ConnectionTerminated):
            self.goaways.append(event)
            self.conn.state_machine.state = ConnectionState.CLIENT_OPEN

    def _resolve(self, stream_id: int, response: Response) -> None:
        future = self._futures.get(stream_id)
        if future is not None and not future.done():
            future.set_result(response)


@dataclass
class Credentials:
    """Everything a test needs to talk to the mock as a provider."""

    ca: CertificateAuthority
    server: Keypair
    signing_key: SigningKeyPair

    def mint(
        self,
        iat: float,
        *,
        kid: str = KEY_ID,
        team: str = TEAM_ID,
        key: SigningKeyPair | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A provider token as Apple documents it (ES256, kid header, iss and iat claims)."""
        claims = {"iss": team, "iat": int(iat), **(extra or {})}
        return jwt.encode(
            claims, (key or self.signing_key).private_key, algorithm="ES256", headers={"kid": kid}
        )


def push_headers(token: str | None, **extra: str) -> list[tuple[str, str]]:
    """Headers of a minimal valid alert push, with overrides (underscores become dashes)."""
    headers = {"apns-topic": TOPIC, "apns-push-type": "alert"}
    if token is not None:
        headers["authorization"] = f"bearer {token}"
    headers.update({k.replace("_", "-"): v for k, v in extra.items()})
    return [(k, v) for k, v in headers.items() if v is not None]
