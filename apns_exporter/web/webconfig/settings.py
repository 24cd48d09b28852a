"""The web config file: its keys, their validation, and the one-line errors naming them."""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apns_exporter import files
from apns_exporter.config.yamlsource import KeyPath, Position, YamlSource
from apns_exporter.errors import FileError, WebConfigError
from apns_exporter.web.webconfig.servertls import (
    CLIENT_AUTH_TYPES,
    NEEDS_CLIENT_CA,
    TLS_VERSIONS,
    TLSServerConfig,
    build_context,
)

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
# Each step doubles the work: cost 14 is about a second of one core per check, and every
# request that is not cached pays it. Above this, one anonymous request could hold the
# authenticator (and a core) for minutes to days, and shutdown would wait for it.
MAX_BCRYPT_COST = 14
# A header value with these would split the response (or make every response fail).
_HEADER_BREAKERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HASH_HINT = "generate one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"


@dataclass(frozen=True)
class WebConfig:
    """One validated web config file; the default instance means plain HTTP, no auth."""

    source: str = ""
    tls: TLSServerConfig | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # user -> bcrypt hash; kept out of repr so a logged config never shows a hash.
    basic_auth_users: dict[str, str] = field(default_factory=dict, repr=False)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A new server SSLContext for these settings, or None when TLS is not configured."""
        if self.tls is None:
            return None
        return build_context(self.tls)

    @property
    def protections(self) -> frozenset[str]:
        """What guards the endpoints; a change at runtime must never drop one of these."""
        found = set()
        if self.tls is not None:
            found.add("TLS")
            if CLIENT_AUTH_TYPES[self.tls.client_auth_type] != ssl.CERT_NONE:
                found.add("client certificates")
            if self.tls.client_allowed_sans:
                found.add("client_allowed_sans")
        if self.basic_auth_users:
            found.add("basic auth")
        return frozenset(found)

    @property
    def fake_hash_cost(self) -> int:
        """The highest bcrypt cost of any user: unknown users are checked at that cost."""
        return max((bcrypt_cost(h) for h in self.basic_auth_users.values()), default=10)


def bcrypt_cost(hashed: str) -> int:
    """The cost factor of a ``$2y$NN$…`` hash."""
    return int(hashed[4:6])


def load(path: str | os.PathLike[str]) -> WebConfig:
    """Read and validate a web config file; raises WebConfigError with a one-line message."""
    source = os.fspath(path)
    try:
        raw = files.read_bytes(path, kind="web config file", limit=files.CONFIG_LIMIT)
        text = raw.decode("utf-8-sig")
    except FileError as exc:
        if exc.reason == "not_found":
            raise WebConfigError(f"{source}: web config file not found (check the path)") from None
        raise WebConfigError(f"{source}: cannot read web config file: {exc.problem}") from None
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
        if self.boolean(("http_server_config", "http2"), http.get("http2"), False):
            raise self.fail(
                ("http_server_config", "http2"),
                "aiohttp serves HTTP/1.1 only; set http2: false or remove the key",
            )
        return WebConfig(
            source=self.source,
            tls=self.tls(self.mapping(("tls_server_config",), top.get("tls_server_config"))),
            headers=self.headers(http.get("headers")),
            basic_auth_users=self.users(top.get("basic_auth_users")),
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
            # Only checked here; build_context reads the files.
            files.check(name, kind=str(path[-1]), limit=files.CERTIFICATE_LIMIT)
        except FileError as exc:
            if exc.reason == "not_found":
                raise self.fail(path, f"file {str(name)!r} not found (check the path)") from None
            raise self.fail(path, f"cannot read {str(name)!r}: {exc.problem}") from None
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
        elif auth_type in NEEDS_CLIENT_CA:
            raise self.fail(
                (*base, "client_auth_type"),
                f"{auth_type} needs client_ca_file (the CA that issued the client certificates)",
            )
        sans = self.sans((*base, "client_allowed_sans"), data.get("client_allowed_sans", []))
        if sans and auth_type not in NEEDS_CLIENT_CA:
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
            build_context(tls)
        except WebConfigError as exc:
            raise self.fail((*base, exc.key or "cert_file"), str(exc)) from None
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
            if _HEADER_BREAKERS.search(text):
                raise self.fail(
                    (*path, name),
                    "contains a control character (CR, LF, NUL or similar); "
                    "a header value must be one line of printable text",
                )
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
            if bcrypt_cost(hashed) > MAX_BCRYPT_COST:
                raise self.fail(
                    (*path, user),
                    f"bcrypt cost {bcrypt_cost(hashed)} is above the maximum of "
                    f"{MAX_BCRYPT_COST}: every login would take minutes or more "
                    f"({_HASH_HINT})",
                )
        return dict(data)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names.update({list: "a list", dict: "a mapping"})
    return names.get(type(value), type(value).__name__)
