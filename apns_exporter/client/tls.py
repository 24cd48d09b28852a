"""Every client TLS context, built in one place and shared through one cache.

A context is keyed by what decides its behaviour: whether it verifies, which trust stores
it uses (the system store and/or ``ca_file``, PEM or DER, identified by path and SHA-256 of
its content, so an edited file gets a fresh context and an untouched one is reused), and the
client certificate it presents (by SHA-256 of the PEM). Building one costs about 20 ms and
1 MiB (the system store is parsed each time), so thousands of targets sharing one trust
configuration must share one context. Contexts handed out are shared: never mutate one.
"""

from __future__ import annotations

import collections
import hashlib
import ssl

from apns_exporter import files

# Trust configurations are few; certificate contexts are held by their channels anyway, so
# evicting one only costs a rebuild for the next target presenting the same certificate.
CACHE_SIZE = 64

_Key = tuple[bool, bool, str | None, str | None, str | None]
_cache: collections.OrderedDict[_Key, ssl.SSLContext] = collections.OrderedDict()


def client_context(
    ca_file: str | None = None,
    *,
    system_store: bool = True,
    verify: bool = True,
    certificate_pem: bytes | None = None,
) -> ssl.SSLContext:
    """A TLS 1.2+ client context offering only ALPN ``h2``, as APNs requires.

    It trusts the system store and/or ``ca_file`` (``verify=False`` trusts anything, for
    reading a chain that may not verify), and presents ``certificate_pem`` (certificate,
    chain and unencrypted key) when given. Raises FileError for a ``ca_file`` that cannot
    be read or holds no certificate; the file is read once, off no path OpenSSL re-opens.
    """
    if not verify:
        ca_file, system_store = None, False
    elif not system_store and ca_file is None:
        raise ValueError("a verifying context without the system store needs a ca_file")
    ca_bytes = (
        files.read_bytes(ca_file, kind="CA file", limit=files.CERTIFICATE_LIMIT)
        if ca_file is not None
        else None
    )
    ca_digest = _digest(ca_bytes) if ca_bytes is not None else None
    identity = _digest(certificate_pem) if certificate_pem is not None else None
    key: _Key = (verify, system_store, ca_file, ca_digest, identity)
    context = _cache.get(key)
    if context is None:
        cadata = (
            files.ca_data(ca_bytes, path=ca_file)
            if ca_file is not None and ca_bytes is not None
            else None
        )
        context = _build(cadata, system_store=system_store, verify=verify)
        if certificate_pem is not None:
            _load_certificate(context, certificate_pem)
        _cache[key] = context
        if len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    _cache.move_to_end(key)
    return context


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _build(cadata: str | bytes | None, *, system_store: bool, verify: bool) -> ssl.SSLContext:
    # create_default_context for every verifying variant: the same flags (3.13 adds
    # VERIFY_X509_STRICT) whichever store is used, so the chain check judges as connections do.
    if not verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif system_store:
        ctx = ssl.create_default_context()
        if cadata is not None:
            ctx.load_verify_locations(cadata=cadata)
    else:
        ctx = ssl.create_default_context(cadata=cadata)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["h2"])
    return ctx


def _load_certificate(ctx: ssl.SSLContext, pem: bytes) -> None:
    # ssl only loads client certificates from a path: a 0600 temp file that exists just
    # for the duration of the call, holding the decrypted key.
    with files.private_copy(pem) as name:
        ctx.load_cert_chain(name)
