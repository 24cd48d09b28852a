"""A target's long-lived APNs connection: opened on first use, replaced when it dies."""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from apns_exporter.client.connection import Connection, Endpoint
from apns_exporter.client.dial import Resolver
from apns_exporter.client.protocol import Event, GoAway, SettingsChanged
from apns_exporter.errors import ConnectFailed

# Apple treats rapid connect/disconnect as a denial-of-service attack, so failed dials back
# off exponentially between a floor and a ceiling, with jitter so replicas do not align.
BACKOFF_FLOOR_SECONDS = 1.0
BACKOFF_CEILING_SECONDS = 300.0
# GOAWAYs kept for the next probe run; one per connection, so only a reconnect storm with no
# run in between could fill this.
MAX_KEPT_EVENTS = 32


@dataclass(frozen=True)
class DialReport:
    """The outcome of one attempt to open a connection."""

    ok: bool
    phases: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    message: str = ""


@dataclass(frozen=True)
class Lease:
    """What :meth:`Channel.acquire` gives: a connection, or the error explaining its absence."""

    connection: Connection | None
    dial: DialReport | None = None  # set when this call actually dialled
    error: ConnectFailed | None = None


@dataclass
class Backoff:
    """Jittered exponential delay between failed connection attempts."""

    floor: float = BACKOFF_FLOOR_SECONDS
    ceiling: float = BACKOFF_CEILING_SECONDS
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        """Record a failure and return how long to wait before the next attempt."""
        self.failures += 1
        base = min(self.ceiling, self.floor * 2.0 ** (self.failures - 1))
        # "Equal jitter": never less than half the base, so the floor really is a floor.
        return base / 2 + self.rng.uniform(0, base / 2)

    def reset(self) -> None:
        """Forget past failures after a successful connection."""
        self.failures = 0


class Channel:
    """Owns the current :class:`Connection` to one endpoint and replaces it when needed."""

    def __init__(
        self,
        endpoint: Endpoint,
        ssl_context: ssl.SSLContext,
        *,
        connect_timeout: float,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        resolver: Resolver | None = None,
        client_certificate: bool = False,
        dial_limit: asyncio.Semaphore | None = None,
    ) -> None:
        self._resolver = resolver
        self._dial_limit = dial_limit or asyncio.Semaphore(1)
        self._client_certificate = client_certificate
        self.endpoint = endpoint
        self._ssl_context = ssl_context
        self._connect_timeout = connect_timeout
        self._events: list[Event] = []
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._connection: Connection | None = None
        self._retry_at = 0.0
        self._last_failure: ConnectFailed | None = None
        self._lock = asyncio.Lock()
        self._draining: set[asyncio.Task[None]] = set()

    @property
    def connection(self) -> Connection | None:
        """The connection in use, if one is open and usable."""
        conn = self._connection
        return conn if conn is not None and conn.is_usable else None

    async def acquire(self) -> Lease:
        """Return a usable connection, dialling if needed, or the reason there is none."""
        async with self._lock:
            conn = self.connection
            if conn is not None:
                return Lease(conn)
            if self._connection is not None:
                self._retire(self._connection)
            if self._last_failure is not None and self._clock() < self._retry_at:
                wait = self._retry_at - self._clock()
                error = ConnectFailed(
                    self._last_failure.reason, f"{self._last_failure} (next attempt in {wait:.1f}s)"
                )
                return Lease(None, error=error)
            try:
                async with self._dial_limit:
                    conn = await Connection.open(
                        self.endpoint,
                        self._ssl_context,
                        timeout=self._connect_timeout,
                        observer=self._keep,
                        resolver=self._resolver,
                        client_certificate=self._client_certificate,
                    )
            except ConnectFailed as exc:
                self._last_failure = exc
                self._retry_at = self._clock() + self._backoff.next_delay()
                return Lease(None, DialReport(False, reason=exc.reason, message=str(exc)), exc)
            self._last_failure = None
            self._connection = conn
            return Lease(conn, DialReport(True, phases=dict(conn.timings)))

    def take_events(self) -> tuple[Event, ...]:
        """The GOAWAYs and latest SETTINGS received since the last call, for a probe's result."""
        events, self._events = tuple(self._events), []
        return events

    def _keep(self, event: Event) -> None:
        if isinstance(event, GoAway) and len(self._events) < MAX_KEPT_EVENTS:
            self._events.append(event)
        elif isinstance(event, SettingsChanged):
            # Only the stream limit in force matters: a newer SETTINGS replaces an older one.
            self._events = [e for e in self._events if not isinstance(e, SettingsChanged)]
            self._events.append(event)

    async def replace_ssl_context(
        self, ssl_context: ssl.SSLContext, *, client_certificate: bool
    ) -> None:
        """Use a new TLS context (a rotated client certificate) from the next connection on."""
        async with self._lock:
            self._ssl_context = ssl_context
            self._client_certificate = client_certificate
            if self._connection is not None:
                self._retire(self._connection, failed=False)

    async def discard(self) -> None:
        """Retire the current connection so the next :meth:`acquire` opens a fresh one."""
        async with self._lock:
            if self._connection is not None:
                self._retire(self._connection)

    async def aclose(self) -> None:
        """Close every connection, including those still draining."""
        async with self._lock:
            if self._connection is not None:
                self._retire(self._connection)
        await asyncio.gather(*self._draining)

    def _retire(self, conn: Connection, *, failed: bool | None = None) -> None:
        """Stop using ``conn``; ``failed`` None means judge by whether it ever worked."""
        self._connection = None
        if failed is None:
            failed = not conn.proven
        if not failed:
            self._backoff.reset()
        else:
            # A server that accepts TLS and then hangs up (GOAWAY for a wrong-environment
            # certificate, say) must not turn into a reconnect loop: treat it as a failure.
            failure = conn.failure
            reason = failure.reason if failure is not None else "http2"
            if reason not in ConnectFailed.REASONS:
                reason = "http2"  # a hang-up or GOAWAY before any answer: no HTTP/2 service
            # No failure of its own: the exporter gave up on it after a probe's deadline.
            why = f": {failure}" if failure else " (no answer in time, so the exporter closed it)"
            self._last_failure = ConnectFailed(
                reason, f"connection ended before the server answered anything{why}"
            )
            self._retry_at = self._clock() + self._backoff.next_delay()
        # In-flight streams up to the GOAWAY's last-stream-id may still be answered.
        task = asyncio.create_task(conn.drain(timeout=self._connect_timeout))
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)
