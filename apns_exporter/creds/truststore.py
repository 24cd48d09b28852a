"""Which roots a trust store holds: the system store plus a target's ``ca_file``, by fingerprint.

The store read is the one the exporter's connections verify with
(:func:`client.tls.client_context`): OpenSSL's default CA file is loaded into it eagerly
and listed by ``get_ca_certs``; the default CA directory is looked up lazily and never
listed, so its hashed files (``<hash>.<n>``) are read here too.
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from apns_exporter.client.tls import client_context

_HASHED = re.compile(r"[0-9a-f]{8}\.\d+")
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
_DIR_LIMIT = 4096  # files read from the CA directory at most: a hashed dir holds hundreds


@dataclass(frozen=True)
class RootPresence:
    """Whether a required root (name, SHA-256 fingerprint) is in the trust store."""

    name: str
    fingerprint_sha256: str
    present: bool


def fingerprints(ca_file: str | None) -> frozenset[str]:
    """SHA-256 fingerprints of every anchor the system store and ``ca_file`` hold.

    Raises FileError when ``ca_file`` cannot be read (the config check reports it first).
    """
    context = client_context(ca_file)
    found = {hashlib.sha256(der).hexdigest() for der in context.get_ca_certs(binary_form=True)}
    capath = ssl.get_default_verify_paths().capath
    if capath:
        found |= _directory(Path(capath))
    return frozenset(found)


def check(required: Iterable[tuple[str, str]], ca_file: str | None) -> tuple[RootPresence, ...]:
    """Each required ``(name, fingerprint)`` and whether the trust store holds it."""
    held = fingerprints(ca_file)
    return tuple(RootPresence(name, fp, fp in held) for name, fp in required)


# Every target's tls_check reads the same directory: read it again only when it changes.
_cache: dict[tuple[str, int], frozenset[str]] = {}


def _directory(path: Path) -> frozenset[str]:
    """Fingerprints of the hashed certificate files in an OpenSSL CA directory (cached)."""
    try:
        key = (str(path), os.stat(path).st_mtime_ns)
    except OSError:
        return frozenset()
    if key in _cache:
        return _cache[key]
    found: set[str] = set()
    try:
        names = sorted(n for n in os.listdir(path) if _HASHED.fullmatch(n))[:_DIR_LIMIT]
    except OSError:
        names = []
    for name in names:
        try:
            text = (path / name).read_text("ascii", "ignore")
        except OSError:
            continue  # an unreadable entry: OpenSSL skips it too
        # Fingerprints are of the DER bytes: no need to parse (and judge) each certificate.
        for block in _PEM.findall(text):
            try:
                found.add(hashlib.sha256(ssl.PEM_cert_to_DER_cert(block)).hexdigest())
            except ValueError:
                continue
    _cache.clear()  # one directory in use: keep only its latest listing
    _cache[key] = frozenset(found)
    return _cache[key]
