"""The APNs server's TLS chain: what it presents, whether it verifies, and when it expires.

How :func:`inspect` works: one handshake with verification off fetches what the server
presents (leaf, intermediates, TLS version, ALPN); then one handshake per trust store with a
verifying context, exactly as :mod:`ssl` would verify the real connection (hostname
included): (a) ``ca_file`` alone, when configured, and (b) the system default store. Real
handshakes were chosen over re-verifying the fetched certificates with cryptography's
``x509.verification``, because the system store may be a hashed ``capath`` directory that
cryptography cannot read, and OpenSSL's verdict is the one the exporter's connections get.
The cost is two or three short handshakes per check, at the ``tls_check`` interval.

What the chain is, per Python version (all in :func:`peer_chain`):

- 3.13+: the documented ``SSLObject.get_unverified_chain()``: every certificate sent.
- 3.11/3.12: the same accessor exists undocumented on ``SSLObject._sslobj`` (CPython
  3.10-3.12); it is used when present, so these versions see the whole chain too.
- Without either (another implementation): ``getpeercert(binary_form=True)``, the leaf only,
  and ``full_chain`` is False.

``earliest_not_after`` is therefore the earliest notAfter over every certificate the server
presented (never the trust anchor, which servers do not send) on 3.13+ and, through the
private accessor, on CPython 3.11/3.12; when ``full_chain`` is False it is the leaf's alone,
and an intermediate expiring first goes unnoticed.

``root_subject`` is the anchor a verified chain ended in; when no check verified, the issuer
of the topmost presented certificate (the root the server claims); None if only the leaf is
visible. ``verify_error`` is one line naming each failed check, e.g. ``system store: unable
to get local issuer certificate``.
"""

from __future__ import annotations

import _ssl
import asyncio
import ssl
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from apns_exporter.client.dial import Resolver, dial, hang_up, resolve
from apns_exporter.client.proxy import Proxy, route
from apns_exporter.client.tls import client_context
from apns_exporter.errors import ConnectFailed, FileError

# The private accessor's Certificate.public_bytes() takes _ssl's encoding constant.
_ENCODING_DER: int = getattr(_ssl, "ENCODING_DER", 2)
# Addresses of one host inspected per check: enough to see a rollout, bounded in cost.
MAX_ADDRESSES = 8


@dataclass(frozen=True)
class ChainReport:
    """One look at an endpoint's server chain and how it verifies."""

    endpoint: str
    tls_version: str | None
    leaf_subject: str
    leaf_issuer: str
    root_subject: str | None
    leaf_fingerprint_sha256: str
    earliest_not_after: float
    full_chain: bool
    verified_ca_file: bool | None
    verified_system: bool
    verify_error: str | None
    chain_fingerprints: tuple[str, ...]
    alpn_protocol: str | None = None
    # SHA-256 of the trust anchor a verified chain ended in (servers do not send roots).
    root_fingerprint_sha256: str | None = None

    @property
    def trusted(self) -> bool:
        """Whether the exporter's own connections (system store plus ca_file) accept the chain."""
        return self.verified_system or bool(self.verified_ca_file)

    @property
    def root_name(self) -> str | None:
        """The root's common name (e.g. "USERTrust RSA Certification Authority"), else its DN."""
        return common_name(self.root_subject) if self.root_subject is not None else None


@dataclass(frozen=True)
class AddressCheck:
    """The chain one address of a host presented, or why it could not be fetched."""

    address: str | None  # None through a proxy: the proxy chose the address
    report: ChainReport | None
    error: str | None = None  # the ConnectFailed reason when there is no report
    problem: str | None = None  # ... and its one-line message


def common_name(subject: str) -> str:
    """The CN of an RFC 4514 distinguished name, or the name itself when it has none."""
    try:
        names = x509.Name.from_rfc4514_string(subject).get_attributes_for_oid(
            x509.NameOID.COMMON_NAME
        )
    except ValueError:
        return subject
    return str(names[0].value) if names else subject


def _ders(ssl_object: Any, which: str) -> list[bytes] | None:
    """DER certificates from ``get_<which>_chain``: public (3.13+), private (3.10-3.12), or None."""
    public = getattr(ssl_object, f"get_{which}_chain", None)
    if public is not None:
        return [bytes(c) for c in public() or []]
    private = getattr(getattr(ssl_object, "_sslobj", None), f"get_{which}_chain", None)
    if private is not None:
        return [bytes(c.public_bytes(_ENCODING_DER)) for c in private() or []]
    return None


def peer_chain(ssl_object: ssl.SSLObject) -> tuple[list[x509.Certificate], bool]:
    """The peer's certificates, leaf first, and whether more than the leaf was visible."""
    ders = _ders(ssl_object, "unverified")
    if ders:
        return [x509.load_der_x509_certificate(d) for d in ders], True
    leaf = ssl_object.getpeercert(binary_form=True)
    return ([x509.load_der_x509_certificate(leaf)] if leaf else []), False


def _verified_root(ssl_object: ssl.SSLObject) -> tuple[str, str] | None:
    """Subject and fingerprint of the anchor a verified chain ends in, when it is visible."""
    ders = _ders(ssl_object, "verified")
    if not ders:
        return None
    anchor = x509.load_der_x509_certificate(ders[-1])
    return anchor.subject.rfc4514_string(), _fingerprint(anchor)


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


async def _verify(
    host: str,
    port: int,
    ctx: ssl.SSLContext,
    server_hostname: str,
    resolver: Resolver | None,
    proxy: Proxy | None,
) -> tuple[bool, tuple[str, str] | None, str | None]:
    """``(verified, (root subject, fingerprint), error)`` from one verifying handshake."""
    try:
        _, writer = await _dial(host, port, ctx, server_hostname, resolver, proxy)
    except ConnectFailed as exc:
        if not isinstance(exc.__cause__, ssl.SSLCertVerificationError):
            raise
        return False, None, exc.__cause__.verify_message or str(exc.__cause__)
    try:
        return True, _verified_root(writer.get_extra_info("ssl_object")), None
    finally:
        await hang_up(writer)


async def _dial(
    host: str,
    port: int,
    ctx: ssl.SSLContext,
    server_hostname: str,
    resolver: Resolver | None,
    proxy: Proxy | None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    # The chain check reports ALPN rather than requiring it.
    return await dial(
        host,
        port,
        ssl_context=ctx,
        resolver=resolver,
        server_hostname=server_hostname,
        require_h2=False,
        proxy=proxy,
    )


async def _inspect(
    host: str,
    port: int,
    server_hostname: str,
    ca_file: str | None,
    resolver: Resolver | None,
    proxy: Proxy | None,
) -> ChainReport:
    _, writer = await _dial(
        host, port, client_context(verify=False), server_hostname, resolver, proxy
    )
    try:
        ssl_object: ssl.SSLObject = writer.get_extra_info("ssl_object")
        certs, full_chain = peer_chain(ssl_object)
        tls_version, alpn = ssl_object.version(), ssl_object.selected_alpn_protocol()
    except ValueError:
        raise ConnectFailed(
            "tls_handshake", f"{host}:{port} presented a certificate that cannot be parsed"
        ) from None
    finally:
        await hang_up(writer)
    if not certs:
        raise ConnectFailed("tls_handshake", f"{host}:{port} presented no certificate")

    errors: list[str] = []
    roots: list[tuple[str, str] | None] = []
    verified_ca_file: bool | None = None
    error: str | None
    if ca_file is not None:
        try:
            ca_context = client_context(ca_file, system_store=False)
        except FileError as exc:
            verified_ca_file, error = False, str(exc)
        else:
            verified_ca_file, root, error = await _verify(
                host, port, ca_context, server_hostname, resolver, proxy
            )
            roots.append(root)
        if error:
            errors.append(f"ca_file: {error}")
    verified_system, root, error = await _verify(
        host, port, client_context(), server_hostname, resolver, proxy
    )
    roots.append(root)
    if error:
        errors.append(f"system store: {error}")

    leaf, top = certs[0], certs[-1]
    anchor = next((r for r in roots if r), None)
    root_subject, root_fingerprint = anchor if anchor is not None else (None, None)
    if root_subject is None and top.issuer == top.subject:
        root_subject, root_fingerprint = top.subject.rfc4514_string(), _fingerprint(top)
    elif root_subject is None and full_chain:
        # Unverified: name the root the server's chain claims, so a CA switch is still visible.
        root_subject = top.issuer.rfc4514_string()
    return ChainReport(
        endpoint=f"{host}:{port}",
        tls_version=tls_version,
        leaf_subject=leaf.subject.rfc4514_string(),
        leaf_issuer=leaf.issuer.rfc4514_string(),
        root_subject=root_subject,
        leaf_fingerprint_sha256=_fingerprint(leaf),
        earliest_not_after=min(c.not_valid_after_utc.timestamp() for c in certs),
        full_chain=full_chain,
        verified_ca_file=verified_ca_file,
        verified_system=verified_system,
        verify_error="; ".join(errors) or None,
        chain_fingerprints=tuple(_fingerprint(c) for c in certs),
        alpn_protocol=alpn,
        root_fingerprint_sha256=root_fingerprint,
    )


async def inspect(
    host: str,
    port: int,
    *,
    server_hostname: str | None,
    ca_file: str | None,
    timeout: float,
    resolver: Resolver | None = None,
    proxy: Proxy | None = None,
) -> ChainReport:
    """Fetch the chain, verify it per trust store; ConnectFailed if the server is unreachable.

    ``proxy`` replaces the environment's (``HTTPS_PROXY``), as for the APNs connection.
    """
    try:
        async with asyncio.timeout(timeout):
            return await _inspect(host, port, server_hostname or host, ca_file, resolver, proxy)
    except TimeoutError:
        raise ConnectFailed(
            "timeout", f"TLS check of {host}:{port} timed out after {timeout:g}s"
        ) from None


async def inspect_addresses(
    host: str,
    port: int,
    *,
    ca_file: str | None,
    timeout: float,
    resolver: Resolver | None = None,
    proxy: Proxy | None = None,
    limit: int = MAX_ADDRESSES,
) -> tuple[AddressCheck, ...]:
    """:func:`inspect` each resolved address of ``host`` (at most ``limit``), side by side.

    Apple rolls a new server chain out address by address, so one connection sees one
    server's chain only. The addresses are inspected concurrently, each under ``timeout``;
    a failed address is an :class:`AddressCheck` with its reason. Raises ConnectFailed(dns)
    when the name does not resolve. Through a proxy the proxy picks the address: one check.
    """
    if route(host, proxy) is not None:
        try:
            report = await inspect(
                host, port, server_hostname=None, ca_file=ca_file, timeout=timeout, proxy=proxy
            )
        except ConnectFailed as exc:
            return (AddressCheck(None, None, exc.reason, str(exc)),)
        return (AddressCheck(None, report),)
    try:
        async with asyncio.timeout(timeout):
            addresses = await resolve(host, port, resolver)
    except TimeoutError:
        raise ConnectFailed(
            "dns", f"cannot resolve {host}: no answer within {timeout:g}s"
        ) from None

    async def one(address: str) -> AddressCheck:
        async def pinned(_host: str, _port: int) -> list[str]:
            return [address]

        try:
            report = await inspect(
                host, port, server_hostname=None, ca_file=ca_file, timeout=timeout, resolver=pinned
            )
        except ConnectFailed as exc:
            return AddressCheck(address, None, exc.reason, str(exc))
        return AddressCheck(address, report)

    return tuple(await asyncio.gather(*(one(a) for a in addresses[:limit])))


def chain_changed(previous: ChainReport | None, current: ChainReport) -> bool:
    """Whether the issuing side (intermediates, leaf issuer, root) differs from last time."""
    # The leaf is left out: Apple renews it routinely and may serve several at once behind
    # one name; a CA switch (as in 2025) changes everything compared here.
    if previous is None:
        return False
    return (
        previous.chain_fingerprints[1:] != current.chain_fingerprints[1:]
        or previous.leaf_issuer != current.leaf_issuer
        or previous.root_subject != current.root_subject
    )
