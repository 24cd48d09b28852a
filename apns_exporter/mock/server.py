"""MockAPNs: an HTTP/2-over-TLS server that behaves like Apple's provider API."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from apns_exporter.apns import Environment
from apns_exporter.mock.devices import Device, DeviceRegistry, Notification, ReceiptSettings
from apns_exporter.mock.faults import FaultInjector, GoAwayFault, Scenario
from apns_exporter.mock.handler import ConnectionHandler
from apns_exporter.mock.keys import KeyRegistry, ProviderKey
from apns_exporter.mock.pki import Keypair, read_provider_identity
from apns_exporter.mock.policy import Policy
from apns_exporter.mock.stats import Stats
from apns_exporter.mock.validation import Session, Validator

log = logging.getLogger("apns_exporter.mock")

DEFAULT_KEYPAIR = "default"
# The exporter's receipt contract, written out again here rather than imported: the mock
# is an independent implementation, so a mistake on either side shows up in tests.
RECEIPT_KEY = "apns_exporter"
SIGNATURE_HEADER = "X-APNs-Exporter-Signature"
RECEIPT_TIMEOUT = 5.0


class MockAPNs:
    """A mock APNs provider API: real TLS, ALPN h2, Apple's validation order and faults as data."""

    def __init__(
        self,
        keypair: Keypair,
        *,
        clock: Callable[[], float] = time.time,
        environment: str = "production",
        policy: Policy | None = None,
        scenario: Scenario | None = None,
        client_ca_pem: bytes | None = None,
        require_client_certificate: bool = False,
        keypairs: Mapping[str, Keypair] | None = None,
        handshake_timeout: float = 10.0,
        require_alpn: bool = False,
    ) -> None:
        self.environment = Environment(environment).value
        self.keys = KeyRegistry()
        self.devices = DeviceRegistry()
        self.stats = Stats()
        # Extra response delay in seconds, on top of the scenario's; may change while serving.
        self.latency = 0.0
        # Called with ("received" | "answered", stream id, time.perf_counter()) when a request's
        # bytes arrived and when its answer was handed to h2, for timing tests to compare with.
        self.trace: Callable[[str, int, float], None] | None = None
        self.handshake_timeout = handshake_timeout
        # aioapns never offers ALPN and works against Apple, so HTTP/2 "prior knowledge" over
        # TLS is accepted unless ALPN h2 is explicitly required.
        self.require_alpn = require_alpn
        self._base_clock = clock
        self._client_ca_pem = client_ca_pem
        self._require_client_certificate = require_client_certificate
        self._keypairs: dict[str, Keypair] = {DEFAULT_KEYPAIR: keypair, **(keypairs or {})}
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._policy = policy or Policy()
        self._scenario = Scenario()
        self.faults = FaultInjector(self._scenario)
        self.validator = Validator(
            self.keys, self.devices, self.clock, self.environment, self._policy
        )
        self.scenario = scenario or Scenario()
        self._server: asyncio.Server | None = None
        self._channels: set[ConnectionHandler] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._started_at = 0.0
        self._receipt_tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self.devices.listener = self._on_notification

    # -- configuration -----------------------------------------------------------------------

    def clock(self) -> float:
        """The mock's notion of now: the injected clock plus the scenario's skew."""
        return self._base_clock() + self._scenario.clock_skew

    @property
    def policy(self) -> Policy:
        """Apple-behaviour knobs; assign a new Policy to change them at run time."""
        return self._policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self._policy = policy
        self.validator.policy = policy

    @property
    def scenario(self) -> Scenario:
        """The active fault scenario; assigning one takes effect for the next request."""
        return self._scenario

    @scenario.setter
    def scenario(self, scenario: Scenario) -> None:
        names = {scenario.certificate} - {None} - self._keypairs.keys()
        if names:
            raise ValueError(f"scenario names unknown server keypair(s): {sorted(map(str, names))}")
        for script in scenario.device_scripts:
            self.devices.script(script.token, script.reason, script.count)
        self._scenario = scenario
        self.faults = FaultInjector(scenario)

    def add_signing_key(
        self,
        key_id: str,
        team_id: str,
        public_key: ec.EllipticCurvePublicKey,
        topics: Iterable[str] | None = None,
        *,
        environment: str | None = None,
    ) -> ProviderKey:
        """Accept provider tokens signed by this key (topics None = team-scoped key)."""
        return self.keys.add(key_id, team_id, public_key, topics, environment)

    def add_keypair(self, name: str, keypair: Keypair) -> None:
        """Register (or replace) a named server chain that scenarios can switch to."""
        self._keypairs[name] = keypair
        self._contexts.pop(name, None)

    def set_keypair(self, keypair: Keypair) -> None:
        """Serve a new certificate chain to every connection opened from now on."""
        self.add_keypair(DEFAULT_KEYPAIR, keypair)

    @property
    def keypair_names(self) -> list[str]:
        """Names of the server chains the mock can serve."""
        return list(self._keypairs)

    def current_keypair_name(self) -> str:
        """Which chain a connection opened now would get."""
        scenario = self._scenario
        if scenario.certificate is not None:
            return scenario.certificate
        if scenario.rotate_certificates:
            names = sorted(self._keypairs)
            elapsed = time.monotonic() - self._started_at
            return names[int(elapsed // scenario.rotate_certificates) % len(names)]
        return DEFAULT_KEYPAIR

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the server is bound to."""
        return str(self._sockname()[0])

    @property
    def port(self) -> int:
        """The port the server is bound to (the real one when started on port 0)."""
        return int(self._sockname()[1])

    @property
    def connections(self) -> list[dict[str, Any]]:
        """One introspection record per open connection."""
        return [channel.info() for channel in list(self._channels)]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start listening; returns once the socket is bound."""
        if self._server is not None:
            raise RuntimeError("MockAPNs is already serving")
        self._started_at = time.monotonic()
        context = self._context(DEFAULT_KEYPAIR)
        self._server = await asyncio.start_server(
            self._accept, host, port, ssl=context, ssl_handshake_timeout=self.handshake_timeout
        )
        log.info("mock APNs (%s) listening on %s:%d", self.environment, self.host, self.port)

    @property
    def pending_receipts(self) -> int:
        """Delivery receipts scheduled but not yet posted."""
        return len(self._receipt_tasks)

    async def settle_receipts(self) -> None:
        """Wait until every receipt scheduled so far was posted or failed."""
        await asyncio.gather(*self._receipt_tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Close the listener and every connection, and wait for their handlers to finish."""
        await self._stop_receipts()
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for channel in list(self._channels):
            channel.close()
        if self._handlers:
            _, pending = await asyncio.wait(self._handlers, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await server.wait_closed()

    @contextlib.asynccontextmanager
    async def serving(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[MockAPNs]:
        """``async with mock.serving():`` starts the server and stops it on exit."""
        await self.start(host, port)
        try:
            yield self
        finally:
            await self.stop()

    async def goaway(self, fault: GoAwayFault | None = None) -> int:
        """Send GOAWAY on every open connection now; returns how many got one."""
        fault = fault or GoAwayFault()
        channels = list(self._channels)
        for channel in channels:
            channel.send_goaway(fault)
        return len(channels)

    # -- delivery receipts -------------------------------------------------------------------

    def _on_notification(self, device: Device, notification: Notification) -> None:
        settings = device.receipts
        if settings is None:
            return
        canary = _canary_of(notification)
        if canary is None:
            return
        delay = settings.draw()
        if delay is None:
            device.receipt_counts.lost += 1
            log.info("device %s…: receipt for canary %s lost", device.token[:8], canary[1])
            return
        target, canary_id = canary
        # What a phone would report: the moment it got the push, which is `delay` after
        # APNs accepted it (the mock's clock, skew included, like a phone's own clock).
        received_at = round(notification.received_at + delay, 6)
        body = json.dumps(
            {"target": target, "canary_id": canary_id, "received_at": received_at},
            separators=(",", ":"),
        ).encode()
        device.receipt_counts.scheduled += 1
        task = asyncio.get_running_loop().create_task(
            self._post_receipt(device, settings, delay, body)
        )
        self._receipt_tasks.add(task)
        task.add_done_callback(self._receipt_tasks.discard)

    async def _post_receipt(
        self, device: Device, settings: ReceiptSettings, delay: float, body: bytes
    ) -> None:
        await asyncio.sleep(delay)
        signature = "sha256=" + hmac.new(settings.secret, body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature}
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=RECEIPT_TIMEOUT))
        try:
            async with self._http.post(settings.url, data=body, headers=headers) as response:
                ok = response.status < 300
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            # The exporter may be down or restarting: a lost receipt, never a mock crash.
            device.receipt_counts.failed += 1
            log.warning(
                "device %s…: receipt POST to %s failed: %r", device.token[:8], settings.url, exc
            )
            return
        if ok:
            device.receipt_counts.posted += 1
            log.info("device %s…: receipt posted (%d)", device.token[:8], status)
        else:
            device.receipt_counts.failed += 1
            log.warning(
                "device %s…: receipt POST to %s answered %d", device.token[:8], settings.url, status
            )

    async def _stop_receipts(self) -> None:
        tasks = list(self._receipt_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    # -- internals ---------------------------------------------------------------------------

    def _sockname(self) -> tuple[Any, ...]:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("MockAPNs is not serving")
        return tuple(self._server.sockets[0].getsockname())

    def _context(self, name: str) -> ssl.SSLContext:
        context = self._contexts.get(name)
        if context is None:
            context = self._build_context(self._keypairs[name])
            self._contexts[name] = context
        return context

    def _build_context(self, keypair: Keypair) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["h2"])
        # ssl can only load a chain from files; they live just long enough to be read.
        with tempfile.TemporaryDirectory(prefix="mock-apns-") as tmp:
            cert_path, key_path = keypair.write(Path(tmp), "server")
            context.load_cert_chain(cert_path, key_path)
        if self._client_ca_pem is not None:
            context.verify_mode = (
                ssl.CERT_REQUIRED if self._require_client_certificate else ssl.CERT_OPTIONAL
            )
            context.load_verify_locations(cadata=self._client_ca_pem.decode())
        context.sni_callback = self._choose_chain
        return context

    def _choose_chain(
        self, ssl_object: Any, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        # Called for every handshake (also without SNI): this is where chain switches apply.
        self.stats.tls_handshakes += 1
        try:
            ssl_object.context = self._context(self.current_keypair_name())
        except Exception as exc:  # a broken keypair must not kill the accept loop
            log.error("cannot switch server certificate: %r", exc)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        peer = "{}:{}".format(*(writer.get_extra_info("peername") or ("?", 0))[:2])
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            if ssl_object is None:
                return
            alpn = ssl_object.selected_alpn_protocol()
            if alpn != "h2" and (self.require_alpn or alpn is not None):
                log.info("%s did not negotiate ALPN h2 (got %s): closing", peer, alpn)
                return
            identity = None
            der = ssl_object.getpeercert(binary_form=True)
            if der:
                identity = read_provider_identity(x509.load_der_x509_certificate(der))
            channel = ConnectionHandler(self, reader, writer, Session(peer=peer, identity=identity))
            self._channels.add(channel)
            self.stats.connections += 1
            self.stats.active_connections += 1
            log.info(
                "%s connected (client certificate topics: %s)",
                peer,
                list(identity.topics) if identity else None,
            )
            try:
                await channel.run()
            finally:
                self._channels.discard(channel)
                self.stats.active_connections -= 1
        except Exception as exc:  # bad input must never take the server down
            log.warning("%s connection failed: %r", peer, exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await writer.wait_closed()
            log.info("%s disconnected", peer)
            self._handlers.discard(task)


def _canary_of(notification: Notification) -> tuple[str, str] | None:
    """(target, canary_id) of an exporter canary, or None for any other push."""
    payload = notification.json
    canary = payload.get(RECEIPT_KEY) if isinstance(payload, dict) else None
    if not isinstance(canary, dict):
        return None
    target, canary_id = canary.get("target"), canary.get("canary_id")
    if not isinstance(target, str) or not isinstance(canary_id, str):
        return None
    return target, canary_id
