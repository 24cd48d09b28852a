"""One client connection on the server side of h2: frames in, Apple-like behaviour out.

About 420 lines, on purpose: this is one connection's state machine (SETTINGS, the stream
limit that follows the JWT, requests, PINGs, GOAWAY and faults all read and change the same
per-connection state), and splitting its handlers across modules would scatter that state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import h2.events
import h2.exceptions
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame, PingFrame, SettingsFrame

from apns_exporter.mock.devices import Notification
from apns_exporter.mock.faults import GoAwayFault
from apns_exporter.mock.validation import Request, Session, Verdict, is_uuid, topic_of

if TYPE_CHECKING:
    from apns_exporter.mock.server import MockAPNs

log = logging.getLogger("apns_exporter.mock")

# h2 treats too many streams as a connection error (GOAWAY); Apple refuses the stream instead,
# so h2's own limit sits far above the advertised one and the channel enforces the latter.
_H2_STREAM_CAP = 1 << 20
# Bodies beyond this are only counted: PayloadTooLarge needs the length, not the bytes.
_BODY_KEEP = 64 * 1024
_PING_ACK = (PingFrame.type, 0x01)

# The five SETTINGS Apple sends, in the order observed on the wire (pushy #476, #878).
_APPLE_SETTINGS = {
    SettingCodes.HEADER_TABLE_SIZE: 4096,
    SettingCodes.MAX_CONCURRENT_STREAMS: 1,
    SettingCodes.INITIAL_WINDOW_SIZE: 65535,
    SettingCodes.MAX_FRAME_SIZE: 16384,
    SettingCodes.MAX_HEADER_LIST_SIZE: 8000,
}


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class ConnectionHandler:
    """Serves one HTTP/2 connection until either side closes it."""

    def __init__(
        self,
        server: MockAPNs,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        session: Session,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.session = session
        self.conn = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        initial = dict(_APPLE_SETTINGS)
        initial[SettingCodes.MAX_CONCURRENT_STREAMS] = _H2_STREAM_CAP
        self.conn.local_settings = Settings(client=False, initial_values=initial)
        # Token connections start at 1 stream; a verified client certificate is auth already.
        self.session.authenticated = session.identity is not None
        self.stream_limit = self._target_limit(rejected=False)
        self.responses = 0
        self._arrived = 0.0  # when the bytes being parsed arrived, for MockAPNs.trace
        self._receiving: dict[int, Request] = {}
        self._open: set[int] = set()
        self._stalled: set[int] = set()
        self._delayed: dict[int, asyncio.Task[None]] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._goaway_last: int | None = None
        self._highest = 0

    def info(self) -> dict[str, Any]:
        """Per-connection introspection for tests and the admin API."""
        token = self.session.provider_token
        return {
            "peer": self.session.peer,
            "stream_limit": self.stream_limit,
            "open_streams": len(self._open),
            "responses": self.responses,
            "authenticated": self.session.authenticated,
            "team_id": self.session.team_id,
            "key_id": token.key.key_id if token else None,
            "token_issued_at": token.issued_at if token else None,
            "client_certificate_topics": list(self.session.identity.topics)
            if self.session.identity
            else None,
            "wedged": self.session.wedged,
            "goaway_sent": self._goaway_last is not None,
        }

    async def run(self) -> None:
        """Send the preface, then read and answer frames until the connection ends."""
        self.conn.initiate_connection()
        self.conn.data_to_send()  # h2's SETTINGS are replaced by Apple's five
        self._send_settings()
        identity = self.session.identity
        if identity is not None and self.server.environment not in identity.environments:
            self.send_goaway(
                GoAwayFault(reason="BadCertificateEnvironment", graceful=False),
                last_stream_id=0,
            )
        else:
            fault = self.server.scenario.goaway
            if fault is not None and fault.after_requests == 0:
                self.send_goaway(fault)
        while not self.writer.is_closing():
            idle = self.server.scenario.idle_close
            try:
                async with asyncio.timeout(idle.after if idle else None):
                    data = await self.reader.read(65536)
            except TimeoutError:
                assert idle is not None
                log.info(
                    "%s idle for %.3gs: closing (goaway=%s)",
                    self.session.peer,
                    idle.after,
                    idle.goaway,
                )
                if idle.goaway:
                    self.send_goaway(idle.goaway_fault())
                else:
                    self.writer.transport.abort()
                break
            except (ConnectionError, OSError) as exc:
                log.info("%s read failed: %s", self.session.peer, exc)
                break
            if not data:
                break
            self._receive(data)
            try:
                await self.writer.drain()
            except (ConnectionError, OSError):
                break

    def close(self) -> None:
        """Stop answering: cancel delayed responses and PING ACKs, close the transport."""
        for task in self._delayed.values():
            task.cancel()
        for timer in self._timers:
            timer.cancel()
        self._delayed.clear()
        self._timers.clear()
        self.writer.close()

    # -- frames in ---------------------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        self._arrived = time.perf_counter()
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.server.stats.protocol_errors += 1
            log.warning("%s HTTP/2 protocol error, closing: %s", self.session.peer, exc)
            self._flush()
            self.close()
            return
        for event in events:
            try:
                self._dispatch(event)
            except Exception as exc:  # bad input must never take the server down
                log.warning("%s cannot handle %s: %r", self.session.peer, type(event).__name__, exc)
        self._flush()

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._on_request(event.stream_id, event.headers or [])
        elif isinstance(event, h2.events.DataReceived):
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            request = self._receiving.get(event.stream_id)
            if request is not None and event.data:
                request.body_length += len(event.data)
                room = _BODY_KEEP - len(request.body)
                if room > 0:
                    request.body += event.data[:room]
        elif isinstance(event, h2.events.StreamEnded):
            request = self._receiving.pop(event.stream_id, None)
            if request is not None:
                self._process(request)
        elif isinstance(event, h2.events.StreamReset):
            self._forget(event.stream_id)
        elif isinstance(event, h2.events.PingReceived):
            self.server.stats.pings += 1

    def _on_request(self, stream_id: int, raw_headers: list[Any]) -> None:
        self._highest = max(self._highest, stream_id)
        headers = [(_text(k), _text(v)) for k, v in raw_headers]
        if self._goaway_last is not None and stream_id > self._goaway_last:
            self._refuse(stream_id, "after GOAWAY")
        elif self.session.wedged:
            self._refuse(stream_id, "connection wedged")
        elif len(self._open) >= self.stream_limit:
            self._refuse(stream_id, f"over the stream limit of {self.stream_limit}")
        else:
            self._receiving[stream_id] = Request(stream_id, headers)
            self._open.add(stream_id)

    def _refuse(self, stream_id: int, why: str) -> None:
        self.conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
        self._forget(stream_id)
        self.server.stats.refused_streams += 1
        log.info("%s stream=%d refused: %s", self.session.peer, stream_id, why)

    def _forget(self, stream_id: int) -> None:
        self._receiving.pop(stream_id, None)
        self._open.discard(stream_id)
        self._stalled.discard(stream_id)
        task = self._delayed.pop(stream_id, None)
        if task is not None:
            task.cancel()
        self._maybe_finish_draining()

    # -- requests ----------------------------------------------------------------------------

    def _process(self, request: Request) -> None:
        server = self.server
        server.stats.requests += 1
        if server.trace is not None:
            server.trace("received", request.stream_id, self._arrived)
        if self.session.wedged:
            self._refuse(request.stream_id, "connection wedged")
            return
        faults = server.faults
        if faults.stall():
            self._stalled.add(request.stream_id)
            server.stats.stalled_streams += 1
            log.info(
                "%s %s %s stream=%d -> stalled",
                self.session.peer,
                request.method,
                request.path,
                request.stream_id,
            )
            self._maybe_finish_draining()
            return
        injected = faults.error()
        if injected is not None:
            stamp = int(server.clock() * 1000) if injected.status == 410 else None
            verdict = Verdict(injected, stamp)
        else:
            verdict = server.validator.validate(request, self.session)
        apns_id = request.first("apns-id")
        if apns_id is None or not is_uuid(apns_id):
            apns_id = str(uuid.uuid4())
        if verdict.reason is None:
            self._deliver(request, apns_id)
        if verdict.wedge:
            self.session.wedged = True
        self._set_limit(self._target_limit(rejected=verdict.reason is not None))
        delay = faults.delay() + server.latency
        if delay > 0:
            self._delayed[request.stream_id] = asyncio.create_task(
                self._respond_later(delay, request, verdict, apns_id)
            )
        else:
            self._respond(request, verdict, apns_id)

    def _deliver(self, request: Request, apns_id: str) -> None:
        device = self.server.devices.get(request.device_token)
        if device is None:
            return
        self.server.devices.deliver(
            device,
            Notification(
                apns_id=apns_id,
                token=device.token,
                topic=topic_of(request, self.session) or device.topic,
                push_type=request.push_type.value,
                priority=_int_or_none(request.first("apns-priority")),
                collapse_id=request.first("apns-collapse-id"),
                expiration=_int_or_none(request.first("apns-expiration")),
                payload=bytes(request.body),
                received_at=self.server.clock(),
            ),
        )

    async def _respond_later(
        self, delay: float, request: Request, verdict: Verdict, apns_id: str
    ) -> None:
        await asyncio.sleep(delay)
        self._delayed.pop(request.stream_id, None)
        self._respond(request, verdict, apns_id)

    def _respond(self, request: Request, verdict: Verdict, apns_id: str) -> None:
        stream_id = request.stream_id
        if stream_id not in self._open or self.writer.is_closing():
            return
        self._open.discard(stream_id)
        status = verdict.status
        headers = [(":status", str(status)), ("apns-id", apns_id)]
        if self.server.environment == "sandbox":
            headers.append(("apns-unique-id", str(uuid.uuid4())))
        body = b""
        # HEAD responses cannot carry a body in HTTP; the reason is still counted and logged.
        if verdict.reason is not None and request.method != "HEAD":
            error: dict[str, Any] = {"reason": verdict.reason.value}
            if verdict.timestamp_ms is not None:
                error["timestamp"] = verdict.timestamp_ms
            body = json.dumps(error, separators=(",", ":")).encode()
            headers.append(("content-type", "application/json"))
        try:
            self.conn.send_headers(stream_id, headers, end_stream=not body)
            if body:
                self.conn.send_data(stream_id, body, end_stream=True)
        except h2.exceptions.H2Error as exc:
            log.info("%s stream=%d response dropped: %s", self.session.peer, stream_id, exc)
            return
        reason = verdict.reason.value if verdict.reason is not None else ""
        self.server.stats.responses[(status, reason)] += 1
        self.responses += 1
        log.info(
            "%s %s %s stream=%d apns-id=%s -> %d %s",
            self.session.peer,
            request.method,
            request.path,
            stream_id,
            apns_id,
            status,
            reason,
        )
        self._flush()
        if self.server.trace is not None:
            self.server.trace("answered", stream_id, time.perf_counter())
        fault = self.server.scenario.goaway
        if fault is not None and fault.after_requests and self.responses >= fault.after_requests:
            self.send_goaway(fault)
        self._maybe_finish_draining()

    # -- connection-level frames out ---------------------------------------------------------

    def _target_limit(self, *, rejected: bool) -> int:
        policy = self.server.policy
        if self.session.wedged:
            return 1
        if not self.session.authenticated:
            return policy.unauthenticated_streams
        if rejected and policy.drop_streams_on_rejection:
            return 1
        return policy.authenticated_streams

    def _set_limit(self, limit: int) -> None:
        if limit != self.stream_limit:
            self.stream_limit = limit
            self._send_settings()

    def _send_settings(self) -> None:
        # Written by hand so that h2's own (higher) stream cap stays in force; see _H2_STREAM_CAP.
        frame = SettingsFrame(0)
        frame.settings = {int(code): value for code, value in _APPLE_SETTINGS.items()}
        frame.settings[SettingCodes.MAX_CONCURRENT_STREAMS] = self.stream_limit
        self._write_raw(frame.serialize())
        self.server.stats.settings_sent += 1

    def send_goaway(self, fault: GoAwayFault, last_stream_id: int | None = None) -> None:
        """Send GOAWAY as ``fault`` describes (once per connection), then drain or drop."""
        if self._goaway_last is not None or self.writer.is_closing():
            return
        last = self._highest if last_stream_id is None else last_stream_id
        self._goaway_last = last
        frames = [fault.debug_data()] + ([b""] if fault.followed_by_empty else [])
        for debug in frames:
            frame = GoAwayFrame(
                0, last_stream_id=last, error_code=fault.error_code, additional_data=debug
            )
            self._write_raw(frame.serialize())
            self.server.stats.goaways += 1
        log.info(
            "%s GOAWAY last_stream_id=%d error=%d debug=%r graceful=%s",
            self.session.peer,
            last,
            fault.error_code,
            frames[0],
            fault.graceful,
        )
        if fault.graceful:
            self._maybe_finish_draining()
        else:
            self.close()

    def _maybe_finish_draining(self) -> None:
        # A graceful GOAWAY closes once every stream that can still be answered was answered.
        if self._goaway_last is not None and not (self._open - self._stalled):
            self.close()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            data = self._hold_ping_acks(data)
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def _write_raw(self, data: bytes) -> None:
        self._flush()  # keep h2's queued frames ahead of ours
        if not self.writer.is_closing():
            self.writer.write(data)

    def _hold_ping_acks(self, data: bytes) -> bytes:
        """Take PING ACKs out of h2's output when the scenario delays or withholds them."""
        fault = self.server.scenario.ping
        if fault.ack and fault.delay <= 0:
            return data
        kept = bytearray()
        pos = 0
        while pos + 9 <= len(data):
            end = pos + 9 + int.from_bytes(data[pos : pos + 3], "big")
            frame = data[pos:end]
            if (data[pos + 3], data[pos + 4] & 0x01) != _PING_ACK:
                kept += frame
            elif fault.ack:
                loop = asyncio.get_running_loop()
                timer = loop.call_later(fault.delay, self._write_raw, frame)
                self._timers.add(timer)
            else:
                self.server.stats.ping_acks_withheld += 1
            pos = end
        return bytes(kept + data[pos:])
