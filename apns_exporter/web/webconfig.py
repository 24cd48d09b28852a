"""exporter-toolkit compatible ``--web.config.file``: TLS, client certificates, basic auth, headers.

The file format is that of prometheus/exporter-toolkit (``docs/web-configuration.md``)::

    tls_server_config:
      cert_file: server.crt               # relative paths start at the file's directory
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: clients-ca.crt
      client_allowed_sans: [prometheus.example.org]
      min_version: TLS12                  # TLS10 | TLS11 | TLS12 (default) | TLS13
      max_version: TLS13
    http_server_config:
      headers: {X-Frame-Options: deny}
    basic_auth_users:
      prometheus: $2y$10$...              # from: htpasswd -nBC 10 "" prometheus

How the web server uses it::

    watcher = WebConfigWatcher(path)                      # raises WebConfigError
    app.middlewares.append(middleware(watcher))          # auth + headers on every response
    site = web.TCPSite(runner, host, port, ssl_context=watcher.ssl_context())
    tasks.create_task(watcher.run())                      # optional: notice cert rotation idly

Users, headers and SANs apply from the next request after the file changes. A listening
socket keeps its ``SSLContext``, so rotated certificate/key files are loaded into that same
context; changes to versions or client authentication need a restart (a warning says so).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import hashlib
import ipaddress
import logging
import os
import re
import ssl
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from apns_exporter.config.yamlsource import KeyPath, Position, YamlSource
from apns_exporter.errors import WebConfigError

log = logging.getLogger(__name__)

# The file is checked at most this often: cheap enough per request, fast enough for rotation.
CHECK_INTERVAL_SECONDS = 1.0

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# Go's crypto/tls modes and their nearest OpenSSL equivalent. Python cannot request or
# require a client certificate without also verifying it, so:
# - RequestClientCert (Go: ask, never verify) does not ask at all; neither authenticates.
# - RequireAnyClientCert (Go: require any certificate, never verify) verifies it against
#   client_ca_file, which load() therefore demands: stricter than Go, never looser.
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_NEEDS_CLIENT_CA = {"RequireAnyClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"}

# exporter-toolkit's allow-list; None means any value. Values compare case-insensitively.
ALLOWED_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
}

# Keys exporter-toolkit knows that we cannot honour: refusing them beats silently ignoring a
# security setting.
_UNSUPPORTED: dict[KeyPath, str] = {
    ("tls_server_config", "cert"): "inline certificates are not supported; use cert_file",
    ("tls_server_config", "key"): "inline keys are not supported; use key_file",
    ("tls_server_config", "client_ca"): "inline CAs are not supported; use client_ca_file",
    ("tls_server_config", "cipher_suites"): (
        "is not supported (OpenSSL's default cipher list is used); remove it"
    ),
    ("tls_server_config", "curve_preferences"): (
        "is not supported (OpenSSL's default curves are used); remove it"
    ),
    ("rate_limit",): "is not supported; rate-limit in a reverse proxy, or remove it",
}

_KEYS: dict[KeyPath, tuple[str, ...]] = {
    (): ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"),
    ("tls_server_config",): (
        "cert_file",
        "key_file",
        "client_auth_type",
        "client_ca_file",
        "client_allowed_sans",
        "min_version",
        "max_version",
        "prefer_server_cipher_suites",
        "cert",
        "key",
        "client_ca",
        "cipher_suites",
        "curve_preferences",
    ),
    ("http_server_config",): ("http2", "headers"),
}

_BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_HASH_HINT = "generate one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"

# bcrypt only reads the first 72 bytes; htpasswd and Go truncate silently, pyca/bcrypt raises.
_BCRYPT_MAX_PASSWORD = 72
_CACHE_SIZE = 256
REALM = "apns-exporter"


@dataclass(frozen=True)
class TLSServerConfig:
    """``tls_server_config``: where the server's certificate is and how clients authenticate."""

    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str | None = None
    prefer_server_cipher_suites: bool = True

    def restart_settings(self) -> tuple[object, ...]:
        """The settings a live SSLContext cannot change: a difference needs a restart."""
        return (
            self.client_auth_type,
            self.min_version,
            self.max_version,
            self.prefer_server_cipher_suites,
        )


@dataclass(frozen=True)
class WebConfig:
    """One validated web config file; the default instance means plain HTTP, no auth."""

    source: str = ""
    tls: TLSServerConfig | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # user -> bcrypt hash; kept out of repr so a logged config never shows a hash.
    basic_auth_users: dict[str, str] = field(default_factory=dict, repr=False)
    http2: bool = True

    def ssl_context(self) -> ssl.SSLContext | None:
        """A new server SSLContext for these settings, or None when TLS is not configured."""
        if self.tls is None:
            return None
        return _build_context(self.tls)

    @property
    def fake_hash_cost(self) -> int:
        """The bcrypt cost most users have: unknown users are checked at that cost too."""
        costs = collections.Counter(int(h[4:6]) for h in self.basic_auth_users.values())
        return max(costs, key=lambda c: (costs[c], c)) if costs else 10


def load(path: str | os.PathLike[str]) -> WebConfig:
    """Read and validate a web config file; raises WebConfigError with a one-line message."""
    source = os.fspath(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise WebConfigError(f"{source}: web config file not found (check the path)") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise WebConfigError(f"{source}: cannot read web config file: {reason}") from None
    except UnicodeDecodeError:
        raise WebConfigError(f"{source}: web config file is not UTF-8 text") from None
    return _Parser(text, source, Path(path).parent.absolute()).parse()


class _Parser:
    """Hand-written validation, so each message says exactly which key is wrong and why."""

    def __init__(self, text: str, source: str, base_dir: Path) -> None:
        self.document = YamlSource(text)
        self.source = source
        self.base_dir = base_dir

    def fail(self, path: KeyPath, message: str, where: Position | None = None) -> WebConfigError:
        where = where or self.document.position(path)
        key = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in path).lstrip(".")
        prefix = f"{self.source}:{where.line}:{where.column}: "
        return WebConfigError(prefix + (f"{key}: {message}" if key else message))

    def parse(self) -> WebConfig:
        if self.document.problems:
            first = min(self.document.problems, key=lambda p: (p.position.line, p.position.column))
            raise self.fail(first.path, first.message, first.position)
        data = self.document.data
        if data is None:
            return WebConfig(source=self.source)  # an empty file: as exporter-toolkit, no TLS/auth
        top = self.mapping((), data)
        http = self.mapping(("http_server_config",), top.get("http_server_config"))
        return WebConfig(
            source=self.source,
            tls=self.tls(self.mapping(("tls_server_config",), top.get("tls_server_config"))),
            headers=self.headers(http.get("headers")),
            basic_auth_users=self.users(top.get("basic_auth_users")),
            http2=self.boolean(("http_server_config", "http2"), http.get("http2"), True),
        )

    def mapping(self, path: KeyPath, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a mapping, not {_kind(value)}")
        known = _KEYS.get(path)
        for key in value:
            if (*path, key) in _UNSUPPORTED:
                raise self.fail((*path, key), _UNSUPPORTED[(*path, key)])
            if known is not None and key not in known:
                supported = [k for k in known if (*path, k) not in _UNSUPPORTED]
                raise self.fail(
                    (*path, key), f"unknown key (expected one of: {', '.join(supported)})"
                )
        return {k: v for k, v in value.items() if v is not None}

    def string(self, path: KeyPath, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"must be a non-empty string, not {_kind(value)}")
        return value

    def boolean(self, path: KeyPath, value: Any, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(path, f"must be true or false, not {_kind(value)}")
        return value

    def choice(self, path: KeyPath, value: Any, choices: Sequence[str]) -> str:
        text = self.string(path, value)
        if text not in choices:
            raise self.fail(path, f"unknown value {text!r} (use one of: {', '.join(choices)})")
        return text

    def file(self, path: KeyPath, value: Any) -> Path:
        name = self.base_dir / self.string(path, value)
        try:
            with name.open("rb"):
                pass
        except FileNotFoundError:
            raise self.fail(path, f"file {str(name)!r} not found (check the path)") from None
        except OSError as exc:
            raise self.fail(path, f"cannot read {str(name)!r}: {exc.strerror}") from None
        return name

    def tls(self, data: dict[str, Any]) -> TLSServerConfig | None:
        if not data:
            return None  # as exporter-toolkit: an empty tls_server_config serves plain HTTP
        base: KeyPath = ("tls_server_config",)
        for key in ("cert_file", "key_file"):
            if key not in data:
                raise self.fail(base, f"{key} is missing (TLS needs both cert_file and key_file)")
        versions = list(TLS_VERSIONS)
        min_version = self.choice(
            (*base, "min_version"), data.get("min_version", "TLS12"), versions
        )
        max_version = None
        if "max_version" in data:
            max_version = self.choice((*base, "max_version"), data["max_version"], versions)
            if versions.index(max_version) < versions.index(min_version):
                raise self.fail(
                    (*base, "max_version"),
                    f"{max_version} is below min_version {min_version}; raise it or remove it",
                )
        auth_type = self.choice(
            (*base, "client_auth_type"),
            data.get("client_auth_type", "NoClientCert"),
            list(CLIENT_AUTH_TYPES),
        )
        client_ca = None
        if "client_ca_file" in data:
            client_ca = self.file((*base, "client_ca_file"), data["client_ca_file"])
            if auth_type == "NoClientCert":
                raise self.fail(
                    (*base, "client_ca_file"),
                    "is set but client_auth_type is NoClientCert; "
                    "set client_auth_type: RequireAndVerifyClientCert or remove client_ca_file",
                )
        elif auth_type in _NEEDS_CLIENT_CA:
            raise self.fail(
                (*base, "client_auth_type"),
                f"{auth_type} needs client_ca_file (the CA that issued the client certificates)",
            )
        sans = self.sans((*base, "client_allowed_sans"), data.get("client_allowed_sans", []))
        if sans and auth_type not in _NEEDS_CLIENT_CA:
            raise self.fail(
                (*base, "client_allowed_sans"),
                "needs verified client certificates; "
                "set client_auth_type: RequireAndVerifyClientCert",
            )
        tls = TLSServerConfig(
            cert_file=self.file((*base, "cert_file"), data["cert_file"]),
            key_file=self.file((*base, "key_file"), data["key_file"]),
            client_auth_type=auth_type,
            client_ca_file=client_ca,
            client_allowed_sans=sans,
            min_version=min_version,
            max_version=max_version,
            prefer_server_cipher_suites=self.boolean(
                (*base, "prefer_server_cipher_suites"),
                data.get("prefer_server_cipher_suites"),
                True,
            ),
        )
        try:
            _build_context(tls)
        except _ContextError as exc:
            raise self.fail((*base, exc.key), exc.message) from None
        return tls

    def sans(self, path: KeyPath, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list of strings, not {_kind(value)}")
        return tuple(self.string((*path, i), item) for i, item in enumerate(value))

    def headers(self, value: Any) -> dict[str, str]:
        path: KeyPath = ("http_server_config", "headers")
        data = self.mapping(path, value)
        for name, header in data.items():
            if name not in ALLOWED_HEADERS:
                allowed = ", ".join(ALLOWED_HEADERS)
                raise self.fail((*path, name), f"this header cannot be set (allowed: {allowed})")
            text = self.string((*path, name), header)
            choices = ALLOWED_HEADERS[name]
            if choices is not None and text.lower() not in choices:
                raise self.fail(
                    (*path, name), f"invalid value {text!r} (use one of: {', '.join(choices)})"
                )
        return {name: str(header) for name, header in data.items()}

    def users(self, value: Any) -> dict[str, str]:
        path: KeyPath = ("basic_auth_users",)
        data = self.mapping(path, value)
        for user, hashed in data.items():
            # Never echo the value: it is a password hash.
            if not isinstance(hashed, str) or not _BCRYPT_HASH.fullmatch(hashed):
                raise self.fail((*path, user), f"not a bcrypt hash ({_HASH_HINT})")
        return dict(data)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names.update({list: "a list", dict: "a mapping"})
    return names.get(type(value), type(value).__name__)


class _ContextError(Exception):
    """A TLS file that does not load, with the key it came from."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key, self.message = key, message


def _check_pem_files(tls: TLSServerConfig) -> None:
    # ssl's errors ("[SSL] PEM lib") do not say which file is wrong; read each one first.
    try:
        x509.load_pem_x509_certificates(tls.cert_file.read_bytes())
    except (OSError, ValueError):
        raise _ContextError("cert_file", "no PEM certificate in the file") from None
    try:
        serialization.load_pem_private_key(tls.key_file.read_bytes(), password=None)
    except TypeError:
        raise _ContextError("key_file", "the key is encrypted; store it unencrypted") from None
    except (OSError, ValueError):
        raise _ContextError("key_file", "no PEM private key in the file") from None
    if tls.client_ca_file is not None:
        try:
            x509.load_pem_x509_certificates(tls.client_ca_file.read_bytes())
        except (OSError, ValueError):
            raise _ContextError("client_ca_file", "no PEM certificate in the file") from None


def _load_chain(context: ssl.SSLContext, tls: TLSServerConfig) -> None:
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError):
        message = "does not match cert_file (use the key the certificate was made for)"
        raise _ContextError("key_file", message) from None


def _build_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """A server context for ``tls``; raises _ContextError naming the key of a bad file."""
    _check_pem_files(tls)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        # TLS 1.0/1.1 are deprecated in Python, but a user who asks for them gets them.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = TLS_VERSIONS[tls.min_version]
        if tls.max_version is not None:
            context.maximum_version = TLS_VERSIONS[tls.max_version]
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    _load_chain(context, tls)
    context.verify_mode = CLIENT_AUTH_TYPES[tls.client_auth_type]
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (OSError, ssl.SSLError):
            raise _ContextError("client_ca_file", "cannot load the CA certificates") from None
    return context


def _digest(path: Path | None) -> bytes | None:
    """A hash of the content, None if unreadable; sees symlink swaps and same-size edits."""
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


def _tls_state(tls: TLSServerConfig) -> tuple[tuple[Path | None, ...], tuple[bytes | None, ...]]:
    """The TLS file paths and their content digests, to tell when a reload is due."""
    files = (tls.cert_file, tls.key_file, tls.client_ca_file)
    return files, tuple(_digest(f) for f in files)


class WebConfigWatcher:
    """The current web config, re-read when the file or its TLS files change."""

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._file_digest = _digest(self.path)
        self._config = load(path)
        self._checked_at = clock()
        self._last_error: str | None = None
        self._context: ssl.SSLContext | None = None
        # What the live context was built with, and which files (and contents) it holds now.
        self._context_settings: tuple[object, ...] | None = None
        self._loaded: tuple[tuple[Path | None, ...], tuple[bytes | None, ...]] = ((), ())
        self._restart_warned: tuple[object, ...] | None = None

    def current(self) -> WebConfig:
        """The config to apply now; looks at the files at most once per second."""
        now = self._clock()
        if now - self._checked_at >= CHECK_INTERVAL_SECONDS:
            self._checked_at = now
            self._check()
        return self._config

    def reload(self) -> WebConfig:
        """Look at the files now (e.g. on SIGHUP), whatever the time since the last look."""
        self._checked_at = self._clock()
        self._check()
        return self._config

    def ssl_context(self) -> ssl.SSLContext | None:
        """The one SSLContext to listen with; rotated certificates are loaded into it."""
        tls = self._config.tls
        if self._context is None and tls is not None:
            self._context = self._config.ssl_context()
            self._context_settings = tls.restart_settings()
            self._loaded = _tls_state(tls)
        return self._context

    async def run(self) -> None:
        """Check the files every second until cancelled, so rotation is noticed without requests."""
        while True:
            await asyncio.sleep(CHECK_INTERVAL_SECONDS)
            self.current()

    def _check(self) -> None:
        digest = _digest(self.path)
        if digest != self._file_digest:
            # A failed load is retried every check, because it may be a TLS file caught
            # mid-rotation rather than the YAML; each distinct problem is logged once.
            try:
                config = load(self.path)
            except WebConfigError as exc:
                if str(exc) != self._last_error:
                    self._last_error = str(exc)
                    log.error("%s; keeping the previous web config", exc)
            else:
                self._config, self._file_digest, self._last_error = config, digest, None
                log.info("web config %s reloaded", self.path)
        if self._context is not None:
            self._update_context(self._context)

    def _update_context(self, context: ssl.SSLContext) -> None:
        tls = self._config.tls
        wanted = None if tls is None else tls.restart_settings()
        if wanted != self._context_settings and wanted != self._restart_warned:
            self._restart_warned = wanted
            log.warning(
                "%s: TLS was turned off, or its versions or client authentication changed; "
                "restart the exporter to apply that",
                self.path,
            )
        if tls is None:
            return
        state = _tls_state(tls)
        (files, digests), (old_files, old_digests) = state, self._loaded
        chain_changed = (files[:2], digests[:2]) != (old_files[:2], old_digests[:2])
        ca_changed = tls.client_ca_file is not None and (
            (files[2:], digests[2:]) != (old_files[2:], old_digests[2:])
        )
        if not chain_changed and not ca_changed:
            return
        # Record even a failed attempt, so it is logged once; the next change retries.
        self._loaded = state
        try:
            # Validate on a scratch context first: a failed load_cert_chain can leave the
            # live context holding a certificate without its key.
            _build_context(tls)
            if chain_changed:
                _load_chain(context, tls)
            if ca_changed:
                # OpenSSL can add trust anchors to a live context but never remove them.
                context.load_verify_locations(cafile=tls.client_ca_file)
        except (_ContextError, OSError, ssl.SSLError) as exc:
            message = exc.message if isinstance(exc, _ContextError) else str(exc)
            log.error(
                "%s: cannot load the changed TLS files: %s; keeping the previous ones",
                self.path,
                message,
            )
            return
        log.info("%s: loaded the changed TLS certificate files", self.path)
        if ca_changed:
            log.warning(
                "%s: client_ca_file changed; its new CAs are trusted now, but CAs removed "
                "from it stay trusted until the exporter restarts",
                self.path,
            )


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


class _Authenticator:
    """bcrypt checks off the event loop, one at a time, with successes cached."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        # sha256 of (user, hash, password) for checks that passed; never the password itself.
        self._passed: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._fake_hashes: dict[int, bytes] = {}

    async def check(self, users: Mapping[str, str], fake_cost: int, header: str | None) -> bool:
        credentials = _parse_basic(header) if header else None
        if credentials is None:
            return False
        user, password = credentials
        hashed = users.get(user)
        key = hashlib.sha256(
            b"\0".join(
                part.hex().encode() for part in (user.encode(), (hashed or "").encode(), password)
            )
        ).digest()
        if hashed is not None and key in self._passed:
            self._passed.move_to_end(key)
            return True
        # bcrypt takes tens of milliseconds: a thread keeps the loop serving, the lock keeps
        # a flood of bad passwords from using every core.
        async with self._lock:
            ok = await asyncio.to_thread(self._verify, hashed, fake_cost, password)
        if ok and hashed is not None:
            self._passed[key] = None
            if len(self._passed) > _CACHE_SIZE:
                self._passed.popitem(last=False)
        return ok and hashed is not None

    def _verify(self, hashed: str | None, fake_cost: int, password: bytes) -> bool:
        if hashed is None:
            # An unknown user still pays one bcrypt at the usual cost, so response times do
            # not reveal which users exist.
            if fake_cost not in self._fake_hashes:
                self._fake_hashes[fake_cost] = bcrypt.hashpw(
                    b"not a password", bcrypt.gensalt(fake_cost)
                )
            bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], self._fake_hashes[fake_cost])
            return False
        try:
            return bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], hashed.encode())
        except ValueError:
            return False


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


def middleware(watcher: WebConfigWatcher) -> Middleware:
    """An aiohttp middleware applying SAN checks, basic auth and extra headers to every response."""
    authenticator = _Authenticator()

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
    config: WebConfig, authenticator: _Authenticator, request: web.Request, handler: Handler
) -> web.StreamResponse:
    # Go checks SANs during the handshake; Python has no hook there, so refuse per request.
    sans = config.tls.client_allowed_sans if config.tls is not None else ()
    if sans and not _san_allowed(request, sans):
        return web.Response(status=403, text="Forbidden: client certificate SAN not allowed\n")
    if config.basic_auth_users:
        header = request.headers.get("Authorization")
        if not await authenticator.check(config.basic_auth_users, config.fake_hash_cost, header):
            return web.Response(
                status=401,
                text="Unauthorized\n",
                headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
            )
    return await handler(request)
