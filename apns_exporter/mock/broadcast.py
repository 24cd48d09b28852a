"""The mock's channel-management server: HTTP/2 over TLS on its own port, beside the push one.

Apple serves channel management on separate hosts and ports (2195 sandbox, 2196
production; "Sending channel management requests to APNs"); so does the mock. It shares
the push server's signing keys, clock, environment and server chain (a chain switch applies
to both), and answers through :class:`~apns_exporter.mock.channels.ManagementAPI`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import h2.events
import h2.exceptions
from h2.config import H2Configuration
from h2.connection import H2Connection

from apns_exporter.mock.channels import ChannelStore, ManagementAPI

if TYPE_CHECKING:
    from apns_exporter.mock.server import MockAPNs

log = logging.getLogger("apns_exporter.mock")

_BODY_LIMIT = 64 * 1024  # a create request is a few dozen bytes; more is only counted


class ManagementServer:
    """Serves the channel-management API of one :class:`MockAPNs` on its own listener."""

    def __init__(self, mock: MockAPNs, *, store: ChannelStore | None = None) -> None:
        self.mock = mock
        self.api = ManagementAPI(
            mock.keys,
            mock.clock,
            mock.environment,
            token_max_age=mock.policy.token_max_age,
            store=store,
        )
        # (status, reason or "") of every answer, for tests and drills.
        self.answers: Counter[tuple[int, str]] = Counter()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def store(self) -> ChannelStore:
        """Every channel created so far, by bundle ID."""
        return self.api.store

    @property
    def host(self) -> str:
        """The bound address."""
        return str(self._sockname()[0])

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._sockname()[1])

    def _sockname(self) -> tuple[Any, ...]:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the channel-management server is not running")
        return tuple(self._server.sockets[0].getsockname())

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen for TLS connections (ALPN h2) on ``host:port``."""
        self._server = await asyncio.start_server(
            self._accept, host, port, ssl=self.mock.server_context()
        )
        log.info("mock channel management (%s) on %s:%d", self.mock.environment, host, self.port)

    async def stop(self) -> None:
        """Close the listener and every connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        conn = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        requests: dict[int, tuple[list[tuple[str, str]], bytearray]] = {}
        try:
            conn.initiate_connection()
            writer.write(conn.data_to_send())
            while not writer.is_closing():
                data = await reader.read(65536)
                if not data:
                    break
                try:
                    events = conn.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    log.info("channel management: HTTP/2 protocol error, closing: %s", exc)
                    writer.write(conn.data_to_send())
                    break
                for event in events:
                    self._on_event(conn, event, requests)
                writer.write(conn.data_to_send())
                await writer.drain()
        except (ConnectionError, OSError) as exc:
            log.info("channel management connection failed: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await writer.wait_closed()
            self._handlers.discard(task)

    def _on_event(
        self,
        conn: H2Connection,
        event: h2.events.Event,
        requests: dict[int, tuple[list[tuple[str, str]], bytearray]],
    ) -> None:
        if isinstance(event, h2.events.RequestReceived):
            headers = [(str(k), str(v)) for k, v in event.headers or []]
            requests[event.stream_id] = (headers, bytearray())
        elif isinstance(event, h2.events.DataReceived):
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            pending = requests.get(event.stream_id)
            if pending is not None and event.data and len(pending[1]) < _BODY_LIMIT:
                pending[1].extend(event.data[: _BODY_LIMIT - len(pending[1])])
        elif isinstance(event, h2.events.StreamEnded) and event.stream_id in requests:
            headers, body = requests.pop(event.stream_id)
            self._respond(conn, event.stream_id, headers, bytes(body))
        elif isinstance(event, h2.events.StreamReset):
            requests.pop(event.stream_id, None)

    def _respond(
        self, conn: H2Connection, stream_id: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        pseudo = dict(h for h in headers if h[0].startswith(":"))
        method, path = pseudo.get(":method", ""), pseudo.get(":path", "")
        plain = [h for h in headers if not h[0].startswith(":")]
        answer = self.api.handle(method, path, plain, body)
        reason = answer.reason.value if answer.reason is not None else ""
        self.answers[(answer.status, reason)] += 1
        log.info("channel management %s %s -> %d %s", method, path, answer.status, reason)
        send_body = bool(answer.body) and method != "HEAD"
        conn.send_headers(
            stream_id, [(":status", str(answer.status)), *answer.headers], end_stream=not send_body
        )
        if send_body:
            conn.send_data(stream_id, answer.body, end_stream=True)
