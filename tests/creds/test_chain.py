"""Tests for apns_exporter.creds.chain against real TLS servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization

from apns_exporter.client.tls import client_context
from apns_exporter.creds.chain import ChainReport, chain_changed, inspect, peer_chain
from apns_exporter.errors import ConnectFailed
from apns_exporter.mock.pki import CertificateAuthority, Keypair, generate_ca

ROOT = "CN=apns-exporter test root CA"
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def intermediate(ca: CertificateAuthority) -> CertificateAuthority:
    return ca.issue_intermediate("test intermediate CA")


@pytest.fixture
def ca_file(tmp_path: Path, ca: CertificateAuthority) -> str:
    path = tmp_path / "ca.pem"
    path.write_bytes(ca.cert_pem)
    return str(path)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serve(handler: Handler, ctx: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """Run ``handler`` per connection on 127.0.0.1; on exit wait until every one has closed."""
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handler(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    async with server:
        yield server.sockets[0].getsockname()[1]
        # Python 3.11's Server.wait_closed() does not wait for connections; do it here so
        # no socket outlives the test's event loop.
        await asyncio.wait_for(asyncio.gather(*handlers), TIMEOUT)


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close right after the handshake: all a chain check needs."""


@contextlib.asynccontextmanager
async def tls_server(
    keypair: Keypair, directory: Path, *, max_version: ssl.TLSVersion | None = None
) -> AsyncIterator[int]:
    """A TLS server on 127.0.0.1 that presents ``keypair`` (with its chain) and hangs up."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*keypair.write(directory, f"server-{id(keypair)}"))
    ctx.set_alpn_protocols(["h2"])
    if max_version is not None:
        ctx.maximum_version = max_version
    async with serve(_hang_up, ctx) as port:
        yield port


async def _inspect(port: int, ca_file: str | None) -> ChainReport:
    return await inspect("127.0.0.1", port, server_hostname=None, ca_file=ca_file, timeout=TIMEOUT)


def _fp(der_or_cert: object) -> str:
    return der_or_cert.fingerprint(hashes.SHA256()).hex()  # type: ignore[attr-defined,no-any-return]


async def test_chain_verifies_against_ca_file_but_not_the_system_store(
    tmp_path: Path, intermediate: CertificateAuthority, ca_file: str
) -> None:
    """A leaf + intermediate from the test root verifies with ca_file only, not the system."""
    keypair = intermediate.issue_server()
    async with tls_server(keypair, tmp_path) as port:
        report = await _inspect(port, ca_file)
    assert report.endpoint == f"127.0.0.1:{port}"
    assert report.verified_ca_file is True
    assert report.verified_system is False
    assert report.verify_error is not None
    assert report.verify_error.startswith("system store: ")
    assert "ca_file" not in report.verify_error
    assert report.full_chain  # CPython 3.11+ sees the intermediate too
    assert report.chain_fingerprints == (_fp(keypair.certificate), _fp(intermediate.certificate))
    assert report.leaf_fingerprint_sha256 == _fp(keypair.certificate)
    assert report.leaf_subject == "CN=localhost"
    assert report.leaf_issuer == "CN=test intermediate CA"
    assert report.root_subject == ROOT  # the anchor the verified chain ended in
    assert report.earliest_not_after == keypair.certificate.not_valid_after_utc.timestamp()
    assert report.alpn_protocol == "h2"


async def test_without_ca_file_only_the_system_store_is_checked(
    tmp_path: Path, intermediate: CertificateAuthority
) -> None:
    """No ca_file gives verified_ca_file None and still names the claimed root."""
    async with tls_server(intermediate.issue_server(), tmp_path) as port:
        report = await _inspect(port, None)
    assert report.verified_ca_file is None
    assert report.verified_system is False
    assert report.root_subject == ROOT  # unverified: the issuer of the top presented cert


async def test_chain_from_another_root_fails_ca_file_verification(
    tmp_path: Path, ca_file: str
) -> None:
    """A server chaining to a root not in ca_file is unverified, with OpenSSL's reason."""
    other = generate_ca("other root CA").issue_intermediate("other intermediate")
    async with tls_server(other.issue_server(), tmp_path) as port:
        report = await _inspect(port, ca_file)
    assert report.verified_ca_file is False
    assert report.verify_error is not None
    assert "ca_file: unable to get local issuer certificate" in report.verify_error
    assert "\n" not in report.verify_error
    assert report.root_subject == "CN=other root CA"


async def test_expired_server_certificate(
    tmp_path: Path, intermediate: CertificateAuthority, ca_file: str
) -> None:
    """An expired leaf puts earliest_not_after in the past and fails verification."""
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    keypair = intermediate.issue_server(valid_from=past, valid_until=past + dt.timedelta(days=5))
    async with tls_server(keypair, tmp_path) as port:
        report = await _inspect(port, ca_file)
    assert report.earliest_not_after < time.time()
    assert report.verified_ca_file is False
    assert report.verified_system is False
    assert report.verify_error is not None
    assert "ca_file: certificate has expired" in report.verify_error


async def test_earliest_not_after_covers_the_intermediate(
    tmp_path: Path, ca: CertificateAuthority, ca_file: str
) -> None:
    """An intermediate expiring before the leaf sets earliest_not_after."""
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    short = ca.issue_intermediate("short-lived intermediate", valid_until=soon)
    async with tls_server(short.issue_server(), tmp_path) as port:
        report = await _inspect(port, ca_file)
    assert report.full_chain
    assert report.earliest_not_after == short.certificate.not_valid_after_utc.timestamp()


async def test_hostname_mismatch_is_a_verify_error(
    tmp_path: Path, intermediate: CertificateAuthority, ca_file: str
) -> None:
    """A chain for another name fails verification, since the check includes the hostname."""
    keypair = intermediate.issue_server(["api.push.apple.com"])
    async with tls_server(keypair, tmp_path) as port:
        report = await _inspect(port, ca_file)
        named = await inspect(
            "127.0.0.1",
            port,
            server_hostname="api.push.apple.com",
            ca_file=ca_file,
            timeout=TIMEOUT,
        )
    assert report.verified_ca_file is False
    assert report.verify_error is not None
    assert "mismatch" in report.verify_error.lower()
    assert named.verified_ca_file is True


@pytest.mark.parametrize(
    ("max_version", "expected"),
    [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (None, "TLSv1.3")],
)
async def test_tls_version_is_reported(
    tmp_path: Path,
    intermediate: CertificateAuthority,
    max_version: ssl.TLSVersion | None,
    expected: str,
) -> None:
    """The negotiated TLS version is reported."""
    async with tls_server(intermediate.issue_server(), tmp_path, max_version=max_version) as port:
        report = await _inspect(port, None)
    assert report.tls_version == expected


async def test_chain_changed_detects_a_new_root(
    tmp_path: Path, intermediate: CertificateAuthority, ca_file: str
) -> None:
    """Switching to a chain under a new root is a change; a renewed leaf is not."""
    async with tls_server(intermediate.issue_server(), tmp_path) as port:
        first = await _inspect(port, ca_file)
    async with tls_server(intermediate.issue_server(), tmp_path) as port:
        renewed = await _inspect(port, ca_file)
    new_root = generate_ca("USERTrust-like new root").issue_intermediate("new intermediate")
    async with tls_server(new_root.issue_server(), tmp_path) as port:
        switched = await _inspect(port, ca_file)
    assert renewed.leaf_fingerprint_sha256 != first.leaf_fingerprint_sha256
    assert not chain_changed(None, first)
    assert not chain_changed(first, first)
    assert not chain_changed(first, renewed)
    assert chain_changed(first, switched)
    assert switched.root_subject == "CN=USERTrust-like new root"


def test_chain_changed_on_root_alone() -> None:
    """A different root with the same presented certificates counts as a change."""
    report = ChainReport(
        endpoint="h:443",
        tls_version="TLSv1.3",
        leaf_subject="CN=a",
        leaf_issuer="CN=i",
        root_subject="CN=old",
        leaf_fingerprint_sha256="aa",
        earliest_not_after=0.0,
        full_chain=True,
        verified_ca_file=None,
        verified_system=True,
        verify_error=None,
        chain_fingerprints=("aa", "bb"),
    )
    assert chain_changed(report, dataclasses.replace(report, root_subject="CN=new"))
    assert chain_changed(report, dataclasses.replace(report, chain_fingerprints=("aa", "cc")))
    assert not chain_changed(report, dataclasses.replace(report, verified_system=False))


async def test_unreadable_ca_file_is_a_verify_error(
    tmp_path: Path, intermediate: CertificateAuthority
) -> None:
    """A ca_file that cannot be loaded reports verified_ca_file False instead of crashing."""
    missing = str(tmp_path / "missing.pem")
    async with tls_server(intermediate.issue_server(), tmp_path) as port:
        report = await _inspect(port, missing)
    assert report.verified_ca_file is False
    assert report.verify_error is not None
    assert f"ca_file: CA file {missing}: file not found" in report.verify_error


# --- peer_chain across Python versions -----------------------------------------------------


class _LeafOnly:
    """An SSL object with neither chain accessor, as on an implementation without them."""

    def __init__(self, leaf: bytes | None) -> None:
        self.leaf = leaf

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        assert binary_form
        return self.leaf


class _PrivateCert:
    def __init__(self, der: bytes) -> None:
        self.der = der

    def public_bytes(self, encoding: int) -> bytes:
        assert encoding == 2  # _ssl.ENCODING_DER
        return self.der


class _PrivateSSLObj:
    def __init__(self, ders: list[bytes]) -> None:
        self.ders = ders

    def get_unverified_chain(self) -> list[_PrivateCert]:
        return [_PrivateCert(d) for d in self.ders]


class _PrivateChain(_LeafOnly):
    """An SSL object shaped like CPython 3.10-3.12's, with the chain only on ``_sslobj``."""

    def __init__(self, ders: list[bytes]) -> None:
        super().__init__(ders[0])
        self._sslobj = _PrivateSSLObj(ders)


def _ders(*keypairs: Keypair) -> list[bytes]:
    return [k.certificate.public_bytes(serialization.Encoding.DER) for k in keypairs]


def test_peer_chain_leaf_only_fallback(intermediate: CertificateAuthority) -> None:
    """Without any chain accessor, only the leaf is returned and full_chain is False."""
    keypair = intermediate.issue_server()
    certs, full = peer_chain(_LeafOnly(_ders(keypair)[0]))  # type: ignore[arg-type]
    assert certs == [keypair.certificate]
    assert full is False
    assert peer_chain(_LeafOnly(None)) == ([], False)  # type: ignore[arg-type]


def test_peer_chain_private_accessor(intermediate: CertificateAuthority) -> None:
    """The CPython 3.10-3.12 private accessor yields the whole presented chain."""
    keypair = intermediate.issue_server()
    ders = [*_ders(keypair), intermediate.certificate.public_bytes(serialization.Encoding.DER)]
    certs, full = peer_chain(_PrivateChain(ders))  # type: ignore[arg-type]
    assert certs == [keypair.certificate, intermediate.certificate]
    assert full is True


async def test_peer_chain_on_a_real_connection(
    tmp_path: Path, intermediate: CertificateAuthority
) -> None:
    """On this interpreter's real SSLObject the leaf and intermediate are both visible."""
    keypair = intermediate.issue_server()
    ctx = client_context(verify=False)
    async with tls_server(keypair, tmp_path) as port:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
        )
        certs, full = peer_chain(writer.get_extra_info("ssl_object"))
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    assert full is True
    assert certs == [keypair.certificate, intermediate.certificate]


# --- failures ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_refused_connection_is_connect_failed() -> None:
    """Nothing listening gives ConnectFailed(connect)."""
    with pytest.raises(ConnectFailed) as info:
        await _inspect(_free_port(), None)
    assert info.value.reason == "connect"


async def test_unresolvable_host_is_dns() -> None:
    """A name that does not resolve gives ConnectFailed(dns), without touching the network."""

    async def fail(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(ConnectFailed) as info:
        await inspect(
            "nowhere.invalid",
            443,
            server_hostname=None,
            ca_file=None,
            timeout=TIMEOUT,
            resolver=fail,
        )
    assert info.value.reason == "dns"
    assert "nowhere.invalid" in str(info.value)


async def test_every_handshake_goes_through_the_injected_resolver(
    tmp_path: Path, intermediate: CertificateAuthority, ca_file: str
) -> None:
    """A name only the injected resolver knows is inspected: fetch and both verifications."""
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    async with tls_server(intermediate.issue_server(), tmp_path) as port:
        report = await inspect(
            "apns.invalid",
            port,
            server_hostname="localhost",
            ca_file=ca_file,
            timeout=TIMEOUT,
            resolver=resolver,
        )
    assert report.verified_ca_file is True
    assert asked == ["apns.invalid"] * 3


async def test_injected_resolver_fault_is_dns() -> None:
    """A resolver that fails gives ConnectFailed(dns) naming the host."""

    async def broken(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(ConnectFailed) as info:
        await inspect(
            "api.push.apple.com",
            443,
            server_hostname=None,
            ca_file=None,
            timeout=TIMEOUT,
            resolver=broken,
        )
    assert info.value.reason == "dns"
    assert "api.push.apple.com" in str(info.value)


async def test_non_tls_server_is_tls_handshake() -> None:
    """A server that answers in plain text gives ConnectFailed(tls_handshake)."""

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    async with serve(http) as port:
        with pytest.raises(ConnectFailed) as info:
            await _inspect(port, None)
    assert info.value.reason == "tls_handshake"


async def test_silent_server_is_timeout() -> None:
    """A server that never completes the handshake gives ConnectFailed(timeout)."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # say nothing until the client gives up

    async with serve(silent) as port:
        with pytest.raises(ConnectFailed) as info:
            await inspect("127.0.0.1", port, server_hostname=None, ca_file=None, timeout=0.2)
    assert info.value.reason == "timeout"
