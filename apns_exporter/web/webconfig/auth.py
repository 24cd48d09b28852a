"""Who may ask: basic auth (bcrypt, bounded per source), client certificate SANs, extra headers."""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import enum
import hashlib
import heapq
import ipaddress
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import bcrypt
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from apns_exporter.web.webconfig.settings import WebConfig, bcrypt_cost

# bcrypt only reads the first 72 bytes; htpasswd and Go truncate silently, pyca/bcrypt raises.
_BCRYPT_MAX_PASSWORD = 72
_CACHE_SIZE = 256
# Sources with a bcrypt check queued; beyond this, a newcomer takes the place of the source
# with the most failures, if that has more than the newcomer, or is told to retry.
MAX_WAITING_SOURCES = 16
_SOURCES_REMEMBERED = 4096
REALM = "apns-exporter"


class Verdict(enum.Enum):
    """The outcome of one authentication attempt."""

    OK = "ok"
    DENIED = "denied"
    BUSY = "busy"


class ConfigSource(Protocol):
    """Anything that hands out the web config to apply now (the watcher)."""

    def current(self) -> WebConfig: ...


def _parse_basic(header: str) -> tuple[str, bytes] | None:
    """User and password from an ``Authorization: Basic`` header, or None if malformed."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        user, sep, password = decoded.partition(b":")
        return (user.decode("utf-8"), password) if sep else None
    except (binascii.Error, UnicodeDecodeError):
        return None


class _Turns:
    """One bcrypt check at a time; the next turn goes to the waiter with the fewest failures.

    Each source has at most one place, and at most ``max_waiting`` places exist. A flood
    of wrong passwords soon gives its sources a record of failures, so a newcomer with
    none goes ahead of them and, when every place is taken, takes the place of the worst.
    """

    def __init__(self, max_waiting: int) -> None:
        self._max_waiting = max_waiting
        self._running = False
        self._seq = itertools.count()
        # [failures, arrival, future]; futures resolved early (evicted) are skipped.
        self._queue: list[list[Any]] = []

    async def wait(self, failures: int) -> bool:
        """Wait for this caller's turn; False when there is no room or its place was taken."""
        if not self._running:
            self._running = True
            return True
        waiting = [e for e in self._queue if not e[2].done()]
        if len(waiting) >= self._max_waiting:
            worst = max(waiting, key=lambda e: (e[0], e[1]))
            if worst[0] <= failures:
                return False
            worst[2].set_result(False)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._queue, [failures, next(self._seq), future])
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.result():
                self.done()  # handed the turn just as it gave up: pass it on
            raise

    def done(self) -> None:
        """The turn holder finished: hand the turn on."""
        while self._queue:
            _, _, future = heapq.heappop(self._queue)
            if not future.done():
                future.set_result(True)
                return
        self._running = False


class Authenticator:
    """bcrypt checks off the event loop, one at a time, fair between sources, in equal time.

    Every check takes as long as one at the highest configured cost (an unknown user is
    checked against a dummy hash of that cost, a known user of a lower cost waits out the
    difference off the lock), so response times do not reveal which user names exist.
    """

    def __init__(self, max_waiting_sources: int = MAX_WAITING_SOURCES) -> None:
        self._turns = _Turns(max_waiting_sources)
        self._waiting: set[str] = set()
        # Failed checks per source, most recent last; a success forgets the source.
        self._failures: collections.OrderedDict[str, int] = collections.OrderedDict()
        # sha256 of (user, hash, password) for checks that passed; never the password itself.
        self._passed: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._fake_hashes: dict[int, bytes] = {}
        # How long a check at each cost took last time: the floor for cheaper checks.
        self._took: dict[int, float] = {}

    async def check(
        self, users: Mapping[str, str], fake_cost: int, header: str | None, source: str
    ) -> Verdict:
        """Whether ``header`` names a user and password; BUSY when the source must retry."""
        credentials = _parse_basic(header) if header else None
        if credentials is None:
            return Verdict.DENIED
        user, password = credentials
        hashed = users.get(user)
        key = hashlib.sha256(
            b"\0".join(
                part.hex().encode() for part in (user.encode(), (hashed or "").encode(), password)
            )
        ).digest()
        if hashed is not None and key in self._passed:
            self._passed.move_to_end(key)
            return Verdict.OK
        if source in self._waiting:
            return Verdict.BUSY
        self._waiting.add(source)
        try:
            if not await self._turns.wait(self._failures.get(source, 0)):
                return Verdict.BUSY
            started = time.monotonic()
            cost = fake_cost if hashed is None else bcrypt_cost(hashed)
            try:
                # bcrypt takes tens of milliseconds: a thread keeps the loop serving, one
                # check at a time keeps a flood of bad passwords from using every core.
                ok = await asyncio.to_thread(self._verify, hashed, fake_cost, password)
                if cost < fake_cost and fake_cost not in self._took:
                    # Measure once what a check at the highest cost takes, to pad to it.
                    await asyncio.to_thread(self._dummy_check, fake_cost, password)
            finally:
                self._turns.done()
            took = time.monotonic() - started
            if cost >= fake_cost:
                self._took[fake_cost] = took
            else:
                await asyncio.sleep(max(0.0, self._took.get(fake_cost, 0.0) - took))
        finally:
            self._waiting.discard(source)
        return self._record(source, key if ok and hashed is not None else None)

    def _record(self, source: str, passed: bytes | None) -> Verdict:
        failures = self._failures.pop(source, 0)
        if passed is None:
            self._failures[source] = failures + 1
            if len(self._failures) > _SOURCES_REMEMBERED:
                self._failures.popitem(last=False)
            return Verdict.DENIED
        self._passed[passed] = None
        if len(self._passed) > _CACHE_SIZE:
            self._passed.popitem(last=False)
        return Verdict.OK

    def _verify(self, hashed: str | None, fake_cost: int, password: bytes) -> bool:
        if hashed is None:
            # An unknown user still pays one bcrypt at the highest cost, so response times
            # do not reveal which users exist.
            self._dummy_check(fake_cost, password)
            return False
        try:
            return bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], hashed.encode())
        except ValueError:
            return False

    def _dummy_check(self, cost: int, password: bytes) -> None:
        if cost not in self._fake_hashes:
            self._fake_hashes[cost] = bcrypt.hashpw(b"not a password", bcrypt.gensalt(cost))
        started = time.monotonic()
        bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], self._fake_hashes[cost])
        self._took[cost] = time.monotonic() - started


def _san_allowed(request: web.Request, allowed: Sequence[str]) -> bool:
    """Whether the verified client certificate names one of ``allowed`` (exact match)."""
    transport = request.transport
    peer = transport.get_extra_info("peercert") if transport is not None else None
    if not peer:
        return False
    names: list[str] = [str(value) for _, value in peer.get("subjectAltName", ())]
    for name in names:
        for want in allowed:
            if name == want or _same_ip(name, want):
                return True
    return False


def _same_ip(a: str, b: str) -> bool:
    # ssl spells IPv6 SANs uncompressed ("0:0:0:0:0:0:0:1"); compare addresses, not text.
    try:
        return ipaddress.ip_address(a.strip()) == ipaddress.ip_address(b.strip())
    except ValueError:
        return False


def header_hook(
    watcher: ConfigSource,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An on_response_prepare hook: the extra headers on responses their handler streams."""

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(watcher.current().headers)

    return add_headers


def middleware(watcher: ConfigSource) -> Middleware:
    """An aiohttp middleware applying SAN checks, basic auth and extra headers to every response.

    A handler that prepares its own response (the streamed /metrics) has its headers sent
    before it returns: :func:`header_hook`, on the app's ``on_response_prepare``, covers it.
    """
    authenticator = Authenticator()

    @web.middleware
    async def webconfig_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        config = watcher.current()
        try:
            response = await _guarded(config, authenticator, request, handler)
        except web.HTTPException as exc:
            exc.headers.update(config.headers)
            raise
        if not response.prepared:
            response.headers.update(config.headers)
        return response

    return webconfig_middleware


async def _guarded(
    config: WebConfig, authenticator: Authenticator, request: web.Request, handler: Handler
) -> web.StreamResponse:
    # Go checks SANs during the handshake; Python has no hook there, so refuse per request.
    sans = config.tls.client_allowed_sans if config.tls is not None else ()
    if sans and not _san_allowed(request, sans):
        return web.Response(status=403, text="Forbidden: client certificate SAN not allowed\n")
    if config.basic_auth_users:
        header = request.headers.get("Authorization")
        verdict = await authenticator.check(
            config.basic_auth_users, config.fake_hash_cost, header, request.remote or ""
        )
        if verdict is Verdict.BUSY:
            return web.Response(
                status=429,
                text="Too many authentication attempts from this address; retry shortly\n",
                headers={"Retry-After": "1"},
            )
        if verdict is not Verdict.OK:
            return web.Response(
                status=401,
                text="Unauthorized\n",
                headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
            )
    return await handler(request)
