"""A live HTTP/2 connection to APNs: dialled through client.dial, one reader task, request/ping."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from apns_exporter.client.dial import Resolver, dial, hang_up
from apns_exporter.client.protocol import (
    ClientProtocol,
    Event,
    GoAway,
    PingAcked,
    Response,
    SettingsChanged,
    StreamReset,
)
from apns_exporter.client.proxy import Proxy, route
from apns_exporter.errors import ConnectFailed, ConnectionLost, ProbeError, RequestFailed

log = logging.getLogger(__name__)

READ_CHUNK_BYTES = 65536
# h2 parses at most this much between two turns of the event loop: a read of 64 KiB of
# PING frames would otherwise hold every other target and the web server for about 200 ms.
PARSE_SLICE_BYTES = 4096
# Bytes we may queue for a peer that does not read them (ACKs to its PINGs and SETTINGS)
# before we stop reading from it: without a bound the queue grows as long as it floods.
WRITE_BACKLOG_BYTES = 64 * 1024
# asyncio reports a TLS 1.3 alert about our client certificate as a plain close, so a close
# before the server's SETTINGS, when we presented a certificate, is most likely that.
_CERTIFICATE_REJECTED = (
    "the server closed the connection right after the TLS handshake; it probably rejected "
    "the client certificate (expired, revoked or from an unknown CA)"
)


@dataclass(frozen=True)
class Endpoint:
    """Where to connect; the server certificate must carry ``host``."""

    host: str
    port: int

    @property
    def authority(self) -> str:
        """The ``:authority`` pseudo-header value."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 443 else f"{host}:{self.port}"


class Connection:
    """A live HTTP/2 connection to APNs; open with :meth:`open`, then push and ping."""

    def __init__(
        self,
        endpoint: Endpoint,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        timings: dict[str, float],
        observer: Callable[[Event], None] | None = None,
        client_certificate: bool = False,
        proxy: Proxy | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.client_certificate = client_certificate
        self.timings = timings
        # The proxy this connection tunnels through (None: direct), password masked in str().
        self.proxy = proxy
        self.peer = _peer(writer)
        self._reader = reader
        self._writer = writer
        self._observer = observer
        self._proto = ClientProtocol(endpoint.authority)
        self._responses: dict[int, asyncio.Future[Response]] = {}
        self._pings: dict[bytes, asyncio.Future[float]] = {}
        # Durations are stamped here, where frames are written and parsed: a stream id or
        # PING payload queued for the next write, and when each was written.
        self._unwritten: list[int | bytes] = []
        self._written_at: dict[int | bytes, float] = {}
        self._write_scheduled = False
        self._slots = asyncio.Condition()
        self._closed: ProbeError | None = None
        self._proven = False  # until the server answers a request or a PING
        self._reader_task: asyncio.Task[None] | None = None
        self._settings_received: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(
        cls,
        endpoint: Endpoint,
        ssl_context: ssl.SSLContext,
        *,
        timeout: float,
        observer: Callable[[Event], None] | None = None,
        resolver: Resolver | None = None,
        client_certificate: bool = False,
        proxy: Proxy | None = None,
        start: int = 0,
    ) -> Connection:
        """Resolve, connect, handshake and start HTTP/2, timing each phase.

        ``proxy`` replaces the environment's proxy (``HTTPS_PROXY``; ``NO_PROXY`` applies
        to both); ``start`` picks which resolved address to try first (see client.dial).
        """
        timings: dict[str, float] = {}
        where = f"{endpoint.host}:{endpoint.port}"
        via = route(endpoint.host, proxy)
        try:
            async with asyncio.timeout(timeout) as deadline:
                reader, writer = await dial(
                    endpoint.host,
                    endpoint.port,
                    resolver=resolver,
                    ssl_context=ssl_context,
                    timings=timings,
                    proxy=via,
                    routed=True,
                    start=start,
                )
        except TimeoutError:
            through = f" through proxy {via}" if via is not None else ""
            raise ConnectFailed(
                "timeout", f"connecting to {where}{through} timed out after {timeout:g}s"
            ) from None
        conn = cls(endpoint, reader, writer, timings, observer, client_certificate, via)
        try:
            async with asyncio.timeout_at(deadline.when()):
                conn._start()
                # The server's first SETTINGS carries its stream limit (1 for APNs until a
                # valid token); no request may go out before we know it.
                await conn._settings_received
        except BaseException as exc:
            # Cancellation included: the reader task and the socket must not outlive us.
            await conn.aclose()
            if isinstance(exc, TimeoutError):
                # TCP and TLS worked; the server never started HTTP/2 (a stuck or slow peer).
                raise ConnectFailed(
                    "http2", f"{where} sent no HTTP/2 SETTINGS within {timeout:g}s of connecting"
                ) from None
            if isinstance(exc, ProbeError):  # the server closed or broke HTTP/2 first
                reason = "tls_handshake" if exc.reason == "tls_handshake" else "http2"
                raise ConnectFailed(reason, str(exc)) from None
            raise
        return conn

    def _start(self) -> None:
        # drain() then waits until the peer has read most of the backlog.
        self._writer.transport.set_write_buffer_limits(high=WRITE_BACKLOG_BYTES)
        self._proto.initiate()
        # At once, not at the end of the turn: a server that rejects our certificate
        # closes right after the handshake, and a later write would hide its TLS alert.
        self._write()
        self._reader_task = asyncio.create_task(
            self._read_loop(), name=f"apns-reader-{self.endpoint.host}:{self.endpoint.port}"
        )

    @property
    def is_usable(self) -> bool:
        """Whether new requests may be sent on this connection."""
        return self._closed is None and self._proto.goaway is None

    @property
    def proven(self) -> bool:
        """Whether the server has answered anything (a response or a PING) on this connection."""
        return self._proven

    @property
    def failure(self) -> ProbeError | None:
        """Why the connection ended, once it has."""
        if self._closed is None and self._proto.goaway is not None:
            return ConnectionLost(
                "goaway", f"GOAWAY from server (reason {self._proto.goaway.reason})"
            )
        return self._closed

    async def drain(self, *, timeout: float) -> None:
        """Let in-flight streams finish (up to ``timeout``), then close."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._slots:
                await self._slots.wait_for(self._idle)
        await self.aclose()

    def _idle(self) -> bool:
        # Every request and PING must have its answer (its future done), not merely its stream
        # closed: a PING in flight on a retired connection still counts if it is acknowledged.
        pending: list[asyncio.Future[Response] | asyncio.Future[float]] = [
            *self._responses.values(),
            *self._pings.values(),
        ]
        return self._closed is not None or all(f.done() for f in pending)

    @property
    def write_backlog(self) -> int:
        """Bytes written to the socket that the peer has not yet taken."""
        return self._writer.transport.get_write_buffer_size()

    @property
    def max_concurrent_streams(self) -> int:
        """The server's advertised stream limit."""
        return self._proto.max_concurrent_streams

    @property
    def goaway(self) -> GoAway | None:
        """The GOAWAY the server sent, if any."""
        return self._proto.goaway

    @property
    def tls_version(self) -> str | None:
        """The negotiated TLS version, e.g. ``TLSv1.3``."""
        ssl_object = self._writer.get_extra_info("ssl_object")
        return ssl_object.version() if ssl_object is not None else None

    async def request(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        *,
        timeout: float,
    ) -> Response:
        """Send one request and wait for its response, honouring the stream limit.

        The response's ``elapsed`` runs from the request's frames being written to the
        response being parsed; waiting for a stream slot and for the loop do not count.
        """
        stream_id: int | None = None
        try:
            async with asyncio.timeout(timeout):
                stream_id = await self._open_stream(method, path, headers, body)
                return await self._responses[stream_id]
        except TimeoutError:
            if stream_id is not None:
                self._proto.cancel(stream_id)
                self._flush()
            raise RequestFailed("timeout", f"no response within {timeout:g}s") from None
        finally:
            if stream_id is not None:
                self._responses.pop(stream_id, None)
                self._written_at.pop(stream_id, None)

    async def ping(self, *, timeout: float) -> float:
        """Send an HTTP/2 PING and return the round-trip time in seconds (written to parsed)."""
        self._check_open()
        data = self._proto.send_ping()
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pings[data] = future
        self._unwritten.append(data)
        self._flush()
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise RequestFailed("timeout", f"PING not acknowledged within {timeout:g}s") from None
        finally:
            self._pings.pop(data, None)
            self._written_at.pop(data, None)

    async def aclose(self) -> None:
        """Say GOAWAY, close the socket and stop the reader; safe to call twice."""
        if self._closed is None:
            self._proto.close()
            self._write()  # now: the socket closes before a scheduled write would run
            self._fail_all(ConnectionLost("connection_reset", "connection closed by the exporter"))
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        await hang_up(self._writer)

    async def _open_stream(
        self, method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> int:
        async with self._slots:
            await self._slots.wait_for(self._may_open_stream)
            self._check_open()
            stream_id = self._proto.send_request(method, path, headers, body)
            self._responses[stream_id] = asyncio.get_running_loop().create_future()
            self._unwritten.append(stream_id)
        self._flush()
        return stream_id

    def _may_open_stream(self) -> bool:
        # A GOAWAY or a closed socket also wakes waiters, so they fail instead of hanging.
        return (
            self._closed is not None
            or self._proto.goaway is not None
            or self._proto.can_open_stream()
        )

    def _check_open(self) -> None:
        if self._closed is not None:
            raise self._closed

    def _flush(self) -> None:
        # One transport write per loop turn, however many frames this turn queued.
        if not self._write_scheduled:
            self._write_scheduled = True
            asyncio.get_running_loop().call_soon(self._write)

    def _write(self) -> None:
        self._write_scheduled = False
        data = self._proto.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)
        if self._unwritten:
            now = time.perf_counter()
            for key in self._unwritten:
                self._written_at[key] = now
            self._unwritten.clear()

    async def _read_loop(self) -> None:
        error: ProbeError = ConnectionLost("connection_reset", "the server closed the connection")
        try:
            while True:
                data = await self._reader.read(READ_CHUNK_BYTES)
                if not data:
                    if self.client_certificate and not self._settings_received.done():
                        error = ConnectionLost("tls_handshake", _CERTIFICATE_REJECTED)
                    break
                for start in range(0, len(data), PARSE_SLICE_BYTES):
                    if start:
                        # Between slices the scheduled write runs, and everyone else. Not
                        # after the last: a read that left the reader's buffer empty yields
                        # anyway, and one that did not is sliced again, yielding as here.
                        await asyncio.sleep(0)
                    events = self._proto.receive_data(data[start : start + PARSE_SLICE_BYTES])
                    parsed_at = time.perf_counter()
                    self._flush()
                    for event in events:
                        await self._dispatch(event, parsed_at)
                    if self.write_backlog > WRITE_BACKLOG_BYTES:
                        log.warning(
                            "%s:%d does not read what we send: reading paused, %d bytes queued",
                            self.endpoint.host,
                            self.endpoint.port,
                            self.write_backlog,
                        )
                        await self._writer.drain()
        except ProbeError as exc:
            # A protocol error or a flood: send the GOAWAY the protocol queued now. Nothing
            # more is read, so a flooding peer costs nothing until the channel hangs up.
            error = exc
            self._write()
        except ssl.SSLError as exc:
            # With TLS 1.3 the server judges our certificate after the handshake, so its
            # alert (expired, unknown CA) arrives here, before its SETTINGS.
            reason = "connection_reset" if self._settings_received.done() else "tls_handshake"
            error = ConnectionLost(reason, f"TLS error from server: {exc.reason or exc}")
        except OSError as exc:
            error = ConnectionLost("connection_reset", f"connection error: {exc}")
        self._fail_all(error)
        async with self._slots:
            self._slots.notify_all()

    async def _dispatch(self, event: Event, parsed_at: float) -> None:
        if self._observer is not None:
            self._observer(event)
        if isinstance(event, Response | PingAcked):
            self._proven = True
        if isinstance(event, Response):
            sent = self._written_at.get(event.stream_id)
            elapsed = parsed_at - sent if sent is not None else None
            self._resolve(event.stream_id, result=dataclasses.replace(event, elapsed=elapsed))
        elif isinstance(event, StreamReset):
            self._resolve(
                event.stream_id,
                error=RequestFailed(
                    "stream_reset", f"stream reset with HTTP/2 error {event.error_code}"
                ),
            )
        elif isinstance(event, PingAcked):
            future = self._pings.get(event.data)
            sent = self._written_at.get(event.data)
            if future is not None and not future.done() and sent is not None:
                future.set_result(parsed_at - sent)
        elif isinstance(event, GoAway):
            log.info(
                "GOAWAY from %s: error_code=%d last_stream_id=%d debug=%r",
                self.endpoint.host,
                event.error_code,
                event.last_stream_id,
                event.debug_data[:200],
            )
            lost = ConnectionLost("goaway", f"GOAWAY from server (reason {event.reason})")
            for sid in [s for s in self._responses if s > event.last_stream_id]:
                self._resolve(sid, error=lost)
        if isinstance(event, SettingsChanged) and not self._settings_received.done():
            self._settings_received.set_result(None)
        if isinstance(event, SettingsChanged | StreamReset | Response | GoAway | PingAcked):
            async with self._slots:
                self._slots.notify_all()

    def _resolve(
        self, stream_id: int, *, result: Response | None = None, error: Exception | None = None
    ) -> None:
        future = self._responses.get(stream_id)
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def _fail_all(self, error: ProbeError) -> None:
        self._closed = self._closed or error
        if not self._settings_received.done():
            self._settings_received.set_exception(error)
        futures: list[asyncio.Future[Response] | asyncio.Future[float]] = [
            *self._responses.values(),
            *self._pings.values(),
        ]
        for future in futures:
            if not future.done():
                future.set_exception(error)


def _peer(writer: asyncio.StreamWriter) -> str:
    """``address:port`` the socket is connected to (the proxy's, when tunnelled)."""
    name = writer.get_extra_info("peername")
    if not name:
        return "unknown"
    host, port = name[0], name[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
