"""A target's long-lived APNs connection: opened on first use, replaced when it dies."""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from apns_exporter.connection import Connection, Endpoint
from apns_exporter.errors import ConnectFailed
from apns_exporter.protocol import Event

# Apple treats rapid connect/disconnect as a denial-of-service attack, so failed dials back
# off exponentially between a floor and a ceiling, with jitter so replicas do not align.
BACKOFF_FLOOR_SECONDS = 1.0
BACKOFF_CEILING_SECONDS = 300.0


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
        observer: Callable[[Event], None] | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self._ssl_context = ssl_context
        self._connect_timeout = connect_timeout
        self._observer = observer
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._connection: Connection | None = None
        self._retry_at = 0.0
        self._last_failure: ConnectFailed | None = None
        self._lock = asyncio.Lock()

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
                await self._connection.aclose()
                self._connection = None
            if self._last_failure is not None and self._clock() < self._retry_at:
                wait = self._retry_at - self._clock()
                error = ConnectFailed(
                    f"{self._last_failure} (next attempt in {wait:.1f}s)", self._last_failure.reason
                )
                return Lease(None, error=error)
            try:
                conn = await Connection.open(
                    self.endpoint,
                    self._ssl_context,
                    timeout=self._connect_timeout,
                    observer=self._observer,
                )
            except ConnectFailed as exc:
                self._last_failure = exc
                self._retry_at = self._clock() + self._backoff.next_delay()
                return Lease(None, DialReport(False, reason=exc.reason, message=str(exc)), exc)
            self._backoff.reset()
            self._last_failure = None
            self._connection = conn
            return Lease(conn, DialReport(True, phases=dict(conn.timings)))

    async def discard(self) -> None:
        """Close the current connection so the next :meth:`acquire` opens a fresh one."""
        async with self._lock:
            if self._connection is not None:
                await self._connection.aclose()
                self._connection = None

    async def aclose(self) -> None:
        """Close everything; the channel may be used again afterwards."""
        await self.discard()
