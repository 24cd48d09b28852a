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
import contextlib
import functools
import os
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from apns_exporter.errors import ConnectFailed

# The private accessor's Certificate.public_bytes() takes _ssl's encoding constant.
_ENCODING_DER: int = getattr(_ssl, "ENCODING_DER", 2)
# How long a clean TLS close may take before the socket is simply dropped.
_CLOSE_SECONDS = 1.0


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


def _verified_root(ssl_object: ssl.SSLObject) -> str | None:
    """Subject of the trust anchor a verified chain ends in, when the chain is visible."""
    ders = _ders(ssl_object, "verified")
    return x509.load_der_x509_certificate(ders[-1]).subject.rfc4514_string() if ders else None


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _context(*, verify: bool, ca_file: str | None = None) -> ssl.SSLContext:
    """No verification, or verification against ``ca_file`` alone / the system store (None)."""
    # Built once per trust configuration (and ca_file version): each costs about 20 ms on
    # the event loop, which thousands of targets checking their chains would feel.
    version = None
    if ca_file is not None:
        with contextlib.suppress(OSError):
            st = os.stat(ca_file)
            version = (st.st_mtime_ns, st.st_size, st.st_ino)
    return _build_context(verify, ca_file, version)


@functools.lru_cache(maxsize=32)
def _build_context(verify: bool, ca_file: str | None, version: object) -> ssl.SSLContext:
    # create_default_context for both verifying variants: the same flags (3.13 adds
    # VERIFY_X509_STRICT) as the exporter's own connections get.
    if verify:
        ctx = ssl.create_default_context(cafile=ca_file)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["h2"])
    return ctx


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        async with asyncio.timeout(_CLOSE_SECONDS):
            await writer.wait_closed()
    except (OSError, ssl.SSLError, TimeoutError):
        # A peer that never answers close_notify must not hold the probe up.
        writer.transport.abort()
    except BaseException:
        # The caller's deadline struck mid-close: drop the socket rather than leak it.
        writer.transport.abort()
        raise


async def _handshake(
    host: str, port: int, ctx: ssl.SSLContext, server_hostname: str
) -> asyncio.StreamWriter:
    """Resolve, connect and complete TLS; SSLCertVerificationError passes through."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectFailed("dns", f"cannot resolve {host}: {exc.strerror}") from None
    last: OSError | None = None
    for *_, sockaddr in infos:
        try:
            _, writer = await asyncio.open_connection(str(sockaddr[0]), port)
            break
        except OSError as exc:
            last = exc
    else:
        raise ConnectFailed("connect", f"cannot connect to {host}:{port}: {last}")
    try:
        await writer.start_tls(ctx, server_hostname=server_hostname)
    except ssl.SSLCertVerificationError:
        writer.transport.abort()
        raise
    except (ssl.SSLError, OSError) as exc:
        writer.transport.abort()
        raise ConnectFailed(
            "tls_handshake", f"TLS handshake with {host}:{port} failed: {exc}"
        ) from None
    except BaseException:
        # Cancellation by the caller's timeout: never leak the socket.
        writer.transport.abort()
        raise
    return writer


async def _verify(
    host: str, port: int, ctx: ssl.SSLContext, server_hostname: str
) -> tuple[bool, str | None, str | None]:
    """``(verified, root subject, error)`` from one verifying handshake."""
    try:
        writer = await _handshake(host, port, ctx, server_hostname)
    except ssl.SSLCertVerificationError as exc:
        return False, None, exc.verify_message or str(exc)
    try:
        return True, _verified_root(writer.get_extra_info("ssl_object")), None
    finally:
        await _close(writer)


async def _inspect(host: str, port: int, server_hostname: str, ca_file: str | None) -> ChainReport:
    writer = await _handshake(host, port, _context(verify=False), server_hostname)
    try:
        ssl_object: ssl.SSLObject = writer.get_extra_info("ssl_object")
        certs, full_chain = peer_chain(ssl_object)
        tls_version, alpn = ssl_object.version(), ssl_object.selected_alpn_protocol()
    except ValueError:
        raise ConnectFailed(
            "tls_handshake", f"{host}:{port} presented a certificate that cannot be parsed"
        ) from None
    finally:
        await _close(writer)
    if not certs:
        raise ConnectFailed("tls_handshake", f"{host}:{port} presented no certificate")

    errors: list[str] = []
    roots: list[str | None] = []
    verified_ca_file: bool | None = None
    error: str | None
    if ca_file is not None:
        try:
            ca_context = _context(verify=True, ca_file=ca_file)
        except (OSError, ssl.SSLError) as exc:
            verified_ca_file, error = False, f"cannot load {ca_file}: {exc}"
        else:
            verified_ca_file, root, error = await _verify(host, port, ca_context, server_hostname)
            roots.append(root)
        if error:
            errors.append(f"ca_file: {error}")
    verified_system, root, error = await _verify(host, port, _context(verify=True), server_hostname)
    roots.append(root)
    if error:
        errors.append(f"system store: {error}")

    leaf, top = certs[0], certs[-1]
    root_subject = next((r for r in roots if r), None)
    if root_subject is None and top.issuer == top.subject:
        root_subject = top.subject.rfc4514_string()
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
    )


async def inspect(
    host: str, port: int, *, server_hostname: str | None, ca_file: str | None, timeout: float
) -> ChainReport:
    """Fetch the chain, verify it per trust store; ConnectFailed if the server is unreachable."""
    try:
        async with asyncio.timeout(timeout):
            return await _inspect(host, port, server_hostname or host, ca_file)
    except TimeoutError:
        raise ConnectFailed(
            "timeout", f"TLS check of {host}:{port} timed out after {timeout:g}s"
        ) from None


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
