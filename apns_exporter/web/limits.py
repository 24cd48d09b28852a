"""Connection limits for the listeners: a cap, header and body read timeouts, an idle timeout.

aiohttp closes neither a connection that never finishes its request headers nor, before
3.14, one that never sends a request at all, and accepts connections until the process
runs out of file descriptors. Every listener therefore wraps aiohttp's protocol:

- a connection must finish a request's headers within ``header_timeout`` of connecting,
  or of the first byte after an idle spell (slowloris);
- a request's body must arrive in full within ``body_timeout`` of its headers (a body
  promised by ``Content-Length`` and never sent is slowloris too);
- a kept-alive connection with no request for ``idle_timeout`` is closed;
- at most ``max_connections`` are open; a new one past the cap closes the connection that
  has waited longest without a request in progress (one still waiting for its body counts
  as not in progress), and when every connection is busy the newcomer gets ``503`` and is
  closed. Idle and stalled-body floods so cannot lock out a scraper or a device.

Requests themselves (bcrypt, rendering /metrics) are bounded by their handlers, not here.
"""

from __future__ import annotations

import asyncio
import enum
import resource
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from aiohttp import StreamReader, web
from aiohttp.typedefs import Handler

HEADER_TIMEOUT_SECONDS = 10.0
# Receipts and everything the web listener takes are a few KiB: ten seconds is generous.
BODY_TIMEOUT_SECONDS = 10.0
# Longer than Prometheus' usual 1m scrape interval, so a scraper's connection is reused.
IDLE_TIMEOUT_SECONDS = 120.0
_BUSY_ANSWER = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def default_max_connections() -> int:
    """A quarter of the file descriptor limit, at most 1024: room for APNs connections too."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1024
    return max(16, min(1024, soft // 4))


@dataclass(frozen=True)
class ConnectionLimits:
    """How many connections a listener keeps and how long they may dawdle."""

    max_connections: int = field(default_factory=default_max_connections)
    header_timeout: float = HEADER_TIMEOUT_SECONDS
    body_timeout: float = BODY_TIMEOUT_SECONDS
    idle_timeout: float = IDLE_TIMEOUT_SECONDS


@runtime_checkable
class Stream(Protocol):
    """The transport calls a guarded connection makes; asyncio's and uvloop's both have them."""

    def write(self, data: bytes) -> None:
        """Queue bytes to send."""

    def close(self) -> None:
        """Close after sending what is queued."""

    def abort(self) -> None:
        """Close now, dropping what is queued."""

    def is_closing(self) -> bool:
        """Whether the transport is closing or closed."""


class _State(enum.Enum):
    READING = "reading"  # waiting for a request's headers
    BODY = "body"  # waiting for a request's body: a stalled sender, as good as idle
    BUSY = "busy"  # a request is being handled
    IDLE = "idle"  # kept alive between requests


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, with a deadline while it is not busy."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self.transport: Stream | None = None
        self.state = _State.READING
        self._timer: asyncio.TimerHandle | None = None
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports derive from none of asyncio's transport classes: check for the
        # calls used here, not for a class.
        if not isinstance(transport, Stream):
            transport.close()
            return
        self.transport = transport
        if not self._guard.admit(self):
            transport.write(_BUSY_ANSWER)
            transport.close()
            return
        self._admitted = True
        self._arm(self._guard.limits.header_timeout)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.state is _State.IDLE:
            self.state = _State.READING
            self._arm(self._guard.limits.header_timeout)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        if self._admitted:
            self._guard.forget(self)
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def busy(self) -> None:
        """A request's headers arrived: its handler's own limits apply now."""
        self.state = _State.BUSY
        self._cancel()

    def reading_body(self, content: StreamReader) -> None:
        """The handler waits for a body still on its way: bound that wait, too."""
        self.state = _State.BODY
        self._arm(self._guard.limits.body_timeout)
        content.on_eof(self._body_done)

    def _body_done(self) -> None:
        if self.state is _State.BODY:
            self.state = _State.BUSY
            self._cancel()

    def idle(self) -> None:
        """The handler finished: the connection may wait for the next request a while."""
        self.state = _State.IDLE
        self._arm(self._guard.limits.idle_timeout)

    def close(self) -> None:
        """Hang up now, without waiting for a reader that does not read."""
        self._cancel()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def _arm(self, seconds: float) -> None:
        self._cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, self.close)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class ConnectionGuard:
    """The open connections of one listener, and the middleware that tells busy from idle."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        # Oldest first: the first one not busy is the one to give up when full.
        self._open: dict[object, _Guarded] = {}

    @property
    def open_connections(self) -> int:
        """How many connections are open now."""
        return len(self._open)

    def admit(self, conn: _Guarded) -> bool:
        """Make room for ``conn``; False when every open connection is busy."""
        if len(self._open) >= self.limits.max_connections:
            # Busy means a handler is at work; a connection still owing its body is not.
            victim = next((c for c in self._open.values() if c.state is not _State.BUSY), None)
            if victim is None:
                return False
            self.forget(victim)
            victim.close()
        assert conn.transport is not None
        self._open[conn.transport] = conn
        return True

    def forget(self, conn: _Guarded) -> None:
        """Stop counting a connection (closed, or about to be)."""
        if conn.transport is not None and self._open.get(conn.transport) is conn:
            del self._open[conn.transport]

    def protocol_factory(self, make: Callable[[], asyncio.Protocol]) -> Callable[[], _Guarded]:
        """Wrap aiohttp's protocol factory (``runner.server``)."""
        return lambda: _Guarded(self, make())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Mark the connection busy while its request is handled."""
        conn = self._open.get(request.transport) if request.transport is not None else None
        if conn is None:
            return await handler(request)
        conn.busy()
        if request.body_exists and not request.content.is_eof():
            conn.reading_body(request.content)
        try:
            return await handler(request)
        finally:
            conn.idle()

    async def listen(
        self,
        runner: web.AppRunner,
        host: str | None,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> asyncio.Server:
        """Listen with ``runner``'s application behind this guard (after ``runner.setup()``)."""
        server = runner.server
        assert server is not None, "runner.setup() first"
        return await asyncio.get_running_loop().create_server(
            self.protocol_factory(server),
            host,
            port,
            ssl=ssl_context,
        )
