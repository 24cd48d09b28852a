"""The one way out of the process: resolve, connect and TLS for every outgoing connection.

The APNs connection, the chain check and the reachability probe all dial here, with the
same injectable :data:`Resolver`, so a DNS or network fault injected once reaches each.
Through a proxy (``HTTPS_PROXY`` by default, see :mod:`client.proxy`) the TCP leg goes to
the proxy and a CONNECT tunnel; TLS and HTTP/2 then run to APNs inside it.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from asyncio import sslproto
from collections.abc import Awaitable, Callable, Sequence

from apns_exporter.client.proxy import Proxy, open_tunnel, route
from apns_exporter.errors import ConnectFailed

# host, port -> addresses; injectable so tests can simulate DNS without a network.
Resolver = Callable[[str, int], Awaitable[list[str]]]

CLOSE_TIMEOUT_SECONDS = 1.0
# asyncio gives every TLS connection a zero-filled 256 KiB read buffer (SSLProtocol.max_size):
# most of the exporter's memory per target. A TLS record holds at most 16 KiB.
TLS_READ_BUFFER_BYTES = 16 * 1024
# ...and one such buffer serves every connection of a thread. asyncio's SSLProtocol lends it
# to the socket read (get_buffer, recv_into) and buffer_updated copies the bytes into the
# connection's own MemoryBIO before returning: nothing stays in it between two reads, and an
# event loop runs one callback at a time. Per thread, as each thread may run its own loop.
_shared = threading.local()


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve a host to its addresses, in the order the system prefers."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def resolve(host: str, port: int, resolver: Resolver | None = None) -> list[str]:
    """The addresses of ``host`` from ``resolver`` (the system's by default); ConnectFailed(dns)."""
    try:
        addresses = await (resolver or system_resolver)(host, port)
    except OSError as exc:
        raise ConnectFailed("dns", f"cannot resolve {host}: {exc}") from None
    if not addresses:
        raise ConnectFailed("dns", f"cannot resolve {host}: no addresses")
    return addresses


def rotated(addresses: Sequence[str], start: int) -> list[str]:
    """``addresses`` starting at index ``start`` (modulo), wrapping round: one per dial."""
    if not addresses:
        return []
    offset = start % len(addresses)
    return [*addresses[offset:], *addresses[:offset]]


async def connect(
    host: str, port: int, addresses: Sequence[str], *, start: int = 0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to the first of ``addresses`` (from ``start``) that answers.

    ConnectFailed(connect) when none does. Callers pass a growing ``start`` so that
    successive dials spread over every address of a host instead of always the first.
    """
    last_error: OSError | None = None
    for address in rotated(addresses, start):
        try:
            return await asyncio.open_connection(address, port)
        except OSError as exc:
            last_error = exc
    raise ConnectFailed("connect", f"cannot connect to {host}:{port}: {last_error}")


async def dial(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext,
    resolver: Resolver | None = None,
    server_hostname: str | None = None,
    require_h2: bool = True,
    timings: dict[str, float] | None = None,
    proxy: Proxy | None = None,
    routed: bool = False,
    start: int = 0,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Resolve, connect and complete TLS: every outgoing TLS connection starts here.

    Failures are ConnectFailed with reason dns, connect, proxy, tls_verify, tls_handshake or
    alpn (only with ``require_h2``); a tls_verify failure has the ssl.SSLCertVerificationError
    as its ``__cause__``. ``timings`` receives the seconds spent in resolve, connect and tls
    (no resolve through a proxy: the proxy resolves APNs' name).

    The route is :func:`client.proxy.route` of ``host`` and ``proxy`` (the environment's
    proxy unless one is given); with ``routed`` the caller has chosen already and
    ``proxy`` None means direct. ``start`` rotates the resolved addresses (see
    :func:`connect`).
    """
    phases = timings if timings is not None else {}
    via = proxy if routed else route(host, proxy)
    if via is not None:
        started = time.perf_counter()
        reader, writer = await open_tunnel(via, host, port)
        phases["connect"] = time.perf_counter() - started
    else:
        started = time.perf_counter()
        addresses = await resolve(host, port, resolver)
        phases["resolve"] = time.perf_counter() - started

        started = time.perf_counter()
        reader, writer = await connect(host, port, addresses, start=start)
        phases["connect"] = time.perf_counter() - started

    started = time.perf_counter()
    try:
        await _handshake(writer, host, port, ssl_context, server_hostname or host, require_h2)
    except BaseException:
        # Includes cancellation by the caller's timeout: never leak the socket.
        writer.transport.abort()
        raise
    phases["tls"] = time.perf_counter() - started
    return reader, writer


async def hang_up(writer: asyncio.StreamWriter) -> None:
    """Close a dialled socket; drop it if the peer does not answer close_notify in time."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await writer.wait_closed()
    except (OSError, ssl.SSLError, TimeoutError):
        # A peer that keeps sending instead of answering close_notify would hold the socket
        # until asyncio's 30 s SSL shutdown timeout; drop it now.
        writer.transport.abort()
    except BaseException:
        # The caller's deadline struck mid-close: drop the socket rather than leak it.
        writer.transport.abort()
        raise


async def _handshake(
    writer: asyncio.StreamWriter,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext,
    server_hostname: str,
    require_h2: bool,
) -> None:
    try:
        await writer.start_tls(ssl_context, server_hostname=server_hostname)
    except ssl.SSLCertVerificationError as exc:
        raise ConnectFailed(
            "tls_verify", f"server certificate of {host} not trusted: {exc.verify_message}"
        ) from exc
    except (ssl.SSLError, OSError) as exc:
        raise ConnectFailed(
            "tls_handshake", f"TLS handshake with {host}:{port} failed: {exc}"
        ) from None
    share_read_buffer(writer)
    if not require_h2:
        return
    ssl_object = writer.get_extra_info("ssl_object")
    protocol = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
    if protocol != "h2":
        raise ConnectFailed(
            "alpn",
            f"{host}:{port} did not negotiate HTTP/2 via ALPN (got {protocol!r}); "
            "is this an APNs endpoint?",
        )


def shared_read_buffer() -> bytearray:
    """The TLS read buffer of the calling thread, shared by its connections under asyncio."""
    buffer: bytearray | None = getattr(_shared, "buffer", None)
    if buffer is None:
        buffer = _shared.buffer = bytearray(TLS_READ_BUFFER_BYTES)
        _shared.view = memoryview(buffer)
    return buffer


def share_read_buffer(writer: asyncio.StreamWriter) -> bool:
    """Read ``writer``'s TLS through the thread's shared buffer; False where the loop cannot.

    uvloop's SSLProtocol keeps its 256 KiB read buffer in C, out of reach: there this is
    a no-op. That buffer is malloc'd, not zero-filled, so only the pages a read writes
    to become resident (a few KiB for APNs' small answers).
    """
    protocol = getattr(writer.transport, "_ssl_protocol", None)
    if not isinstance(protocol, sslproto.SSLProtocol) or not hasattr(protocol, "_ssl_buffer"):
        return False
    # asyncio has no public knob for this buffer; the attributes are CPython 3.11-3.14's.
    protocol.max_size = TLS_READ_BUFFER_BYTES  # type: ignore[misc]
    protocol._ssl_buffer = shared_read_buffer()
    protocol._ssl_buffer_view = _shared.view  # type: ignore[attr-defined]
    return True
