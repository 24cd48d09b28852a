"""Shared helpers for the reliability suites: leak checks, a probe gate, ground truth, servers.

Nothing here sleeps to synchronise: waits are on probe results (with a bound), on the gate
that parks every probe loop, or on the servers' own futures.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from apns_exporter import config
from apns_exporter.commands.serve import Listening, serve
from apns_exporter.mock.pki import CertificateAuthority, SigningKeyPair
from apns_exporter.mock.server import MockAPNs
from apns_exporter.probes import Probe, ProbeKind, ProbeResult, ProbeRun
from apns_exporter.service.exporter import Exporter
from tests.helpers import KEY_ID, TEAM_ID, TOPIC, Samples, parse_samples

WAIT = 20.0  # upper bound for any single wait in these suites; never a synchronisation sleep
ENV = "production"


# -- leaks ---------------------------------------------------------------------------------


def open_fds() -> set[str]:
    """The file descriptors this process has open now."""
    return set(os.listdir("/proc/self/fd"))


def live_tasks() -> set[asyncio.Task[Any]]:
    """Tasks of the running loop that have not finished."""
    return {t for t in asyncio.all_tasks() if not t.done()}


@dataclass
class Leaks:
    """A snapshot of open descriptors and live tasks, to compare with after everything stops."""

    fds: set[str]
    tasks: set[asyncio.Task[Any]]

    @classmethod
    def snapshot(cls) -> Leaks:
        """Record the descriptors and tasks that exist before the test starts anything."""
        gc.collect()
        return cls(open_fds(), live_tasks())

    def check(self) -> None:
        """Fail if a descriptor or a task outlived the exporter and servers that made it."""
        gc.collect()
        extra_tasks = live_tasks() - self.tasks - {asyncio.current_task()}
        assert not extra_tasks, f"tasks left running: {sorted(t.get_name() for t in extra_tasks)}"
        extra_fds = open_fds() - self.fds
        targets = {}
        for fd in extra_fds:
            with contextlib.suppress(OSError):
                targets[fd] = os.readlink(f"/proc/self/fd/{fd}")
        assert not extra_fds, f"file descriptors left open: {_describe_sockets(targets)}"


def _describe_sockets(targets: dict[str, str]) -> dict[str, str]:
    """Add local and remote ports to socket descriptors, from /proc/net/tcp."""
    ports: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            ports[inode] = f"{int(local[-4:], 16)}->{int(remote[-4:], 16)} state {fields[3]}"
    return {fd: f"{target} {ports.get(target[8:-1], '')}".strip() for fd, target in targets.items()}


# -- configuration -------------------------------------------------------------------------


def target_yaml(
    name: str,
    port: int,
    ca_file: Path,
    key_file: Path,
    *,
    device: str | None = None,
    auth_check: bool = True,
    interval: str = "200ms",
    canary_timeout: str = "200ms",
    ping_timeout: str = "200ms",
    host: str = "127.0.0.1",
) -> str:
    """One target block with fast intervals and short timeouts."""
    devices = f'["{device}"]' if device else "[]"
    return f"""\
- name: {name}
  environment: {ENV}
  endpoint: {host}:{port}
  topic: {TOPIC}
  ca_file: {ca_file}
  tls_check: null
  auth:
    token:
      key_file: {key_file}
      key_id: {KEY_ID}
      team_id: {TEAM_ID}
      refresh_interval: 20m
  ping:
    interval: {interval}
    timeout: {ping_timeout}
  canary:
    interval: {interval}
    timeout: {canary_timeout}
    device_tokens: {devices}
    auth_check: {"true" if auth_check else "false"}
"""


def write_config(path: Path, *targets: str, scrape_timeout: str = "2s") -> Path:
    """Write a config with the given target blocks and return its path."""
    body = "".join(textwrap.indent(t, "  ") for t in targets)
    # The process-wide environment checks would dial Apple: tests stay on loopback.
    path.write_text(
        f"global:\n  scrape_timeout: {scrape_timeout}\n"
        f"  environment_checks: {{enabled: false}}\ntargets:\n{body}"
    )
    return path


async def start_mock(
    ca: CertificateAuthority, signing_key: SigningKeyPair, *devices: str, port: int = 0
) -> MockAPNs:
    """A mock APNs on loopback that trusts our signing key and knows ``devices``."""
    server = MockAPNs(keypair=ca.issue_server())
    server.add_signing_key(KEY_ID, TEAM_ID, signing_key.public_key, topics=[TOPIC])
    for device in devices:
        server.devices.register(device, TOPIC)
    await server.start("127.0.0.1", port)
    return server


# -- a gate that parks every probe loop ----------------------------------------------------


class Gate:
    """Wraps the probe functions so a test can park every probe loop between two runs.

    A parked loop has no request, PING or dial in flight, so the exporter's counters and the
    mock's ground truth can be compared exactly.
    """

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._parked: set[tuple[str, ProbeKind]] = set()
        self._changed = asyncio.Condition()

    def wrap(self, kind: ProbeKind, probe: Probe) -> Probe:
        """The probe, preceded by a wait while the gate is closed."""

        async def gated(ctx: ProbeRun) -> ProbeResult:
            if not self._open.is_set():
                key = (ctx.target.name, kind)
                async with self._changed:
                    self._parked.add(key)
                    self._changed.notify_all()
                try:
                    await self._open.wait()
                finally:
                    self._parked.discard(key)
            return await probe(ctx)

        return gated

    async def close(self, expected: set[tuple[str, ProbeKind]]) -> None:
        """Close the gate and wait until every expected probe loop is parked in front of it."""
        self._open.clear()
        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(lambda: expected <= self._parked)

    def open(self) -> None:
        """Let the parked loops run again."""
        self._open.set()


# -- a running exporter ----------------------------------------------------------------------


@dataclass
class Rig:
    """An exporter serving HTTP on loopback, with a gate in front of its probes."""

    exporter: Exporter
    url: str
    gate: Gate
    results: list[ProbeResult] = field(default_factory=list)

    async def wait_for(
        self, predicate: Callable[[ProbeResult], bool], *, count: int = 1, timeout: float = WAIT
    ) -> ProbeResult:
        """Wait for the ``count``-th new probe result matching ``predicate``."""
        found: asyncio.Future[ProbeResult] = asyncio.get_running_loop().create_future()
        seen = 0

        def listener(result: ProbeResult) -> None:
            nonlocal seen
            if not found.done() and predicate(result):
                seen += 1
                if seen >= count:
                    found.set_result(result)

        self.exporter.listeners.append(listener)
        async with asyncio.timeout(timeout):
            return await found

    async def wait_canary(
        self, target: str = "t1", *, ok: bool | None = None, count: int = 1
    ) -> ProbeResult:
        """Wait for a canary result of ``target`` (optionally with a given outcome)."""
        return await self.wait_for(
            lambda r: r.target == target and r.probe is ProbeKind.CANARY and ok in (None, r.ok),
            count=count,
        )

    async def wait_ping(self, target: str = "t1", *, ok: bool | None = None) -> ProbeResult:
        """Wait for a ping result of ``target`` (optionally with a given outcome)."""
        return await self.wait_for(
            lambda r: r.target == target and r.probe is ProbeKind.PING and ok in (None, r.ok)
        )

    async def recovered(self, target: str = "t1") -> None:
        """Wait until both the canary and the ping of ``target`` succeed again."""
        await self.wait_canary(target, ok=True)
        await self.wait_ping(target, ok=True)

    async def quiesce(self) -> None:
        """Park every probe loop, so nothing is in flight until :meth:`resume`."""
        expected = set()
        for name, state in self.exporter.targets.items():
            expected.add((name, ProbeKind.PING))
            if state.config.canary is not None and state.credential_problem is None:
                expected.add((name, ProbeKind.CANARY))
        await self.gate.close(expected)

    async def quiesce_healthy(self, target: str = "t1") -> None:
        """Park every probe loop where ``target``'s latest canary and PING both succeeded.

        On a busy machine a run after recovery can still time out; then the loops run on
        until both succeed again, so the comparison starts from a healthy, quiet state.
        """
        async with asyncio.timeout(3 * WAIT):
            while True:
                await self.recovered(target)
                await self.quiesce()
                latest = {r.probe: r.ok for r in self.results if r.target == target}
                if latest.get(ProbeKind.CANARY) and latest.get(ProbeKind.PING):
                    return
                self.resume()

    def resume(self) -> None:
        """Let the probe loops run again after :meth:`quiesce`."""
        self.gate.open()

    async def get(self, path: str, *, method: str = "GET") -> tuple[int, str]:
        """Request a page and return its status and body."""
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.url + path) as resp,
        ):
            return resp.status, await resp.text()

    async def scrape(self) -> Samples:
        """Scrape /metrics and index every sample by (name, labels)."""
        status, text = await self.get("/metrics")
        assert status == 200
        return parse_samples(text)


@contextlib.asynccontextmanager
async def running_exporter(config_file: Path, gate: Gate, **options: Any) -> AsyncIterator[Rig]:
    """Run the exporter and its web server on 127.0.0.1:0; stop both (and wait) on exit."""
    exporter = Exporter(config.load(config_file), config_file=str(config_file), **options)
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(exporter, Listening(("127.0.0.1", 0)), stop, on_listening=ready.set_result)
    )
    try:
        async with asyncio.timeout(WAIT):
            await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
        assert ready.done(), f"exporter exited before listening: {task.result()}"
        rig = Rig(exporter, ready.result(), gate)
        exporter.listeners.append(rig.results.append)
        yield rig
    finally:
        gate.open()  # parked loops must see their cancellation, not wait for the gate
        stop.set()
        assert await task == 0


# -- ground truth ------------------------------------------------------------------------------


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lbls), v in samples.items() if n == name and want <= lbls)


def ground_truth_mismatches(samples: Samples, mock: MockAPNs, target: str = "t1") -> list[str]:
    """Every count where the exporter's metrics disagree with what the mock actually did.

    Counts are compared at a quiescent point (every probe loop parked), so nothing is in
    flight. One disagreement is inherent and accounted for exactly: a push or PING that the
    mock answered after the exporter's timeout had fired (a busy machine can delay a healthy
    answer past 200 ms). The exporter counts it as a timeout, the mock as answered. Such
    *late* answers are the exporter's timeouts beyond the faults the mock injected (stalled
    streams, withheld PING ACKs); the mock's answers must exceed the exporter's by exactly
    that many, and no (status, reason) may have fewer answers at the mock than at the exporter.
    """
    t = {"target": target, "apns_environment": ENV}
    stats = mock.stats
    problems: list[str] = []

    def compare(what: str, exporter_value: float, mock_value: float) -> None:
        if exporter_value != mock_value:
            problems.append(f"{what}: exporter {exporter_value:g} != mock {mock_value:g}")

    # Every push the exporter counted was processed by the mock, refused as a stream, or
    # lost with its connection: written while the server was already closing it (a GOAWAY
    # or reset in flight), so the server never read it.
    lost = sum(
        total(samples, "apns_canary_request_errors_total", **t, error=error)
        for error in ("connection_reset", "goaway", "protocol")
    )
    compare(
        "pushes",
        total(samples, "apns_canary_pushes_total", **t) - lost,
        stats.requests + stats.refused_streams,
    )
    timeouts = total(samples, "apns_canary_request_errors_total", **t, error="timeout")
    late_pushes = timeouts - stats.stalled_streams
    if late_pushes < 0:
        compare("stalled pushes timed out", timeouts, stats.stalled_streams)
    for (status, reason), count in sorted(stats.responses.items()):
        counted = total(
            samples,
            "apns_canary_responses_total",
            **t,
            status=str(status),
            reason=reason or "none",
        )
        if not count - late_pushes <= counted <= count:
            compare(f"responses {status} {reason or 'none'}", counted, count)
    compare(
        "responses in all (plus late answers)",
        total(samples, "apns_canary_responses_total", **t) + late_pushes,
        sum(stats.responses.values()),
    )
    compare(
        "refused streams",
        total(samples, "apns_canary_request_errors_total", **t, error="stream_reset"),
        stats.refused_streams,
    )
    compare("GOAWAYs", total(samples, "apns_goaway_received_total", **t), stats.goaways)
    ping_timeouts = total(samples, "apns_ping_failures_total", **t, reason="timeout")
    late_pings = ping_timeouts - stats.ping_acks_withheld
    if late_pings < 0:
        compare("PINGs never acknowledged", ping_timeouts, stats.ping_acks_withheld)
    compare(
        "PINGs acknowledged (plus late ACKs)",
        total(samples, "apns_ping_rtt_seconds_count", **t) + late_pings,
        stats.pings - stats.ping_acks_withheld,
    )
    attempts = total(samples, "apns_connection_attempts_total", **t)
    failures = total(samples, "apns_connection_failures_total", **t)
    compare("connections opened", attempts - failures, stats.connections)
    return problems


# -- hostile servers -----------------------------------------------------------------------

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def server_context(ca: CertificateAuthority, directory: Path, alpn: list[str] | None) -> Any:
    """A TLS server context with a certificate the exporter trusts, offering ``alpn``."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert, key = ca.issue_server().write(directory, "hostile")
    context.load_cert_chain(cert, key)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


class HostileServer:
    """A loopback server that misbehaves as ``behaviour`` says; stops every handler on exit."""

    def __init__(
        self, behaviour: Behaviour, ssl_context: Any = None, *, receive_buffer: int | None = None
    ) -> None:
        self._behaviour = behaviour
        self._ssl = ssl_context
        self._receive_buffer = receive_buffer  # SO_RCVBUF, so a peer that never reads fills up
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.accepted = 0

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> HostileServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self._receive_buffer is not None:
            # Set before listen(), so accepted sockets advertise the small window from the start.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)
        sock.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._handle, sock=sock, ssl=self._ssl)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        self.accepted += 1
        try:
            await self._behaviour(reader, writer)
            await drain_until_eof(reader)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            self._writers.discard(writer)
            self._handlers.discard(task)


async def drain_until_eof(reader: asyncio.StreamReader) -> None:
    """Read and discard until the peer closes."""
    while await reader.read(65536):
        pass


def raw_frame(frame_type: int, payload: bytes, *, flags: int = 0, stream_id: int = 0) -> bytes:
    """One HTTP/2 frame, written by hand so it can break every rule."""
    header = len(payload).to_bytes(3, "big") + bytes([frame_type, flags])
    return header + stream_id.to_bytes(4, "big") + payload


# The five SETTINGS APNs sends, as raw bytes.
APPLE_SETTINGS = raw_frame(
    0x4,
    b"".join(
        code.to_bytes(2, "big") + value.to_bytes(4, "big")
        for code, value in ((1, 4096), (3, 1000), (4, 65535), (5, 16384), (6, 8000))
    ),
)


async def serve_h2(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    on_request: Callable[[Any, int, asyncio.StreamWriter], Awaitable[bytes | None]],
) -> None:
    """A minimal h2 server.

    ``on_request`` has sent the response headers (or anything else) and returns a body to
    stream within flow control, ending the stream, or None to stop serving the connection.
    """
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions

    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    bodies: dict[int, bytes] = {}
    while data := await reader.read(65536):
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                writer.write(conn.data_to_send())
                body = await on_request(conn, int(event.stream_id or 0), writer)
                if body is None:
                    return
                if body:
                    bodies[int(event.stream_id or 0)] = body
            elif isinstance(event, h2.events.StreamReset):
                bodies.pop(int(event.stream_id or 0), None)
        for stream_id, body in list(bodies.items()):
            size = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            while body and size > 0:
                chunk, body = body[:size], body[size:]
                conn.send_data(stream_id, chunk, end_stream=not body)
                size = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            bodies[stream_id] = body
            if not body:
                del bodies[stream_id]
        writer.write(conn.data_to_send())
        await writer.drain()
