"""Egress through an HTTP CONNECT proxy: which proxy a host goes through, and the tunnel.

The environment is read the way curl reads it: ``https_proxy`` (then ``HTTPS_PROXY``, then
``all_proxy``/``ALL_PROXY``) names the proxy, and ``no_proxy`` (then ``NO_PROXY``) lists
the hosts that go direct: a comma list where ``*`` matches every host, a name matches
itself and every host under it (``example.com`` and ``.example.com`` both cover
``example.com`` and ``api.example.com``), and an IP address or CIDR block matches
addresses only. A proxy given explicitly (the ``proxy_url`` setting) replaces the
environment's proxy, while ``no_proxy`` still applies, as with curl's ``--proxy``.

The proxy's password never leaves this module in clear: :class:`Proxy` redacts it in
``repr``, ``str`` and every message, and sends it only in the CONNECT request.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from apns_exporter.errors import ConnectFailed

# curl's default proxy port when the URL gives none.
DEFAULT_PROXY_PORT = 1080
# A CONNECT answer is a status line and a few headers; a proxy that sends more is broken.
MAX_RESPONSE_BYTES = 16 * 1024
MAX_RESPONSE_LINES = 100
# Printable ASCII only, and short: the status line goes into logs and pages.
_STATUS_CHARS = frozenset(map(chr, range(0x20, 0x7F)))
_STATUS_SHOWN = 120
_PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
_NO_PROXY_VARIABLES = ("no_proxy", "NO_PROXY")


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy to tunnel through with CONNECT, optionally with basic auth."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # The hosts that bypass this proxy, in no_proxy syntax.
    no_proxy: str = ""

    @classmethod
    def from_url(cls, url: str, *, password: str | None = None, no_proxy: str = "") -> Proxy:
        """Parse ``http://[user[:password]@]host[:port]``; ``password`` overrides the URL's.

        A URL without a scheme is taken as http, as curl does. ValueError (whose message
        never holds the password) for anything else.
        """
        text = url.strip()
        if "://" not in text:
            text = "http://" + text
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            raise ValueError(f"not a proxy URL: {redact(url)}") from None
        if parts.scheme.lower() != "http":
            raise ValueError(
                f"proxy URL {redact(url)} uses {parts.scheme}://; only http:// proxies "
                "(CONNECT over plain HTTP) are supported"
            )
        if not parts.hostname:
            raise ValueError(f"proxy URL {redact(url)} has no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"proxy URL {redact(url)} must not have a path or query")
        username = unquote(parts.username) if parts.username else None
        secret = password if password is not None else unquote(parts.password or "") or None
        return cls(parts.hostname, port or DEFAULT_PROXY_PORT, username, secret, no_proxy=no_proxy)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Proxy | None:
        """The proxy the environment names for https, with its no_proxy list; None if none.

        ConnectFailed("proxy") naming the variable when its value is not a usable proxy URL.
        """
        env = os.environ if environ is None else environ
        name = next((n for n in _PROXY_VARIABLES if env.get(n)), None)
        if name is None:
            return None
        try:
            return cls.from_url(env[name], no_proxy=no_proxy_list(env))
        except ValueError as exc:
            raise ConnectFailed("proxy", f"environment variable {name}: {exc}") from None

    @property
    def address(self) -> str:
        """``host:port`` of the proxy (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The proxy as a URL with the password masked: safe for logs, pages and /config."""
        user = f"{self.username}{':***' if self.password else ''}@" if self.username else ""
        return f"http://{user}{self.address}"

    def __str__(self) -> str:
        return self.url

    def for_host(self, host: str, environ: Mapping[str, str] | None = None) -> Proxy | None:
        """Itself, or None (go direct) when its no_proxy or the environment's covers ``host``."""
        if bypasses(host, self.no_proxy) or bypasses(host, no_proxy_list(environ)):
            return None
        return self

    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` value for basic auth, when a username is set."""
        if self.username is None:
            return None
        raw = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def no_proxy_list(environ: Mapping[str, str] | None = None) -> str:
    """The environment's no_proxy list (lower-case name first, as curl reads it)."""
    env = os.environ if environ is None else environ
    return next((env[name] for name in _NO_PROXY_VARIABLES if name in env), "")


def route(
    host: str, proxy: Proxy | None = None, environ: Mapping[str, str] | None = None
) -> Proxy | None:
    """The proxy that ``host`` is reached through, or None for a direct connection.

    An explicit ``proxy`` replaces the environment's proxy; the environment's no_proxy
    list applies to either (as with curl), plus the explicit proxy's own list.
    """
    chosen = proxy if proxy is not None else Proxy.from_environment(environ)
    return chosen.for_host(host, environ) if chosen is not None else None


def bypasses(host: str, no_proxy: str) -> bool:
    """Whether ``host`` matches a ``no_proxy`` list (curl's rules; see the module docstring)."""
    name = host.strip().strip("[]").rstrip(".").lower()
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(name)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().strip("[]").lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None:
            if _address_matches(address, entry):
                return True
            continue
        domain = entry.lstrip(".").rstrip(".")
        if domain and (name == domain or name.endswith("." + domain)):
            return True
    return False


def _address_matches(address: ipaddress.IPv4Address | ipaddress.IPv6Address, entry: str) -> bool:
    try:
        return address in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False  # a name never matches an IP literal


def redact(url: str) -> str:
    """``url`` with any password in its userinfo replaced by ``***``."""
    scheme, sep, rest = url.rpartition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{sep}{user}{':***' if colon else ''}@{hostpart}"


async def open_tunnel(
    proxy: Proxy, host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to the proxy, with CONNECT ``host:port`` answered 2xx.

    ConnectFailed("proxy") when the proxy cannot be reached, refuses, or answers nonsense;
    the message names the proxy (password masked) and its status line.
    """
    try:
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    except OSError as exc:
        raise ConnectFailed(
            "proxy", f"cannot reach proxy {proxy.url}: {exc.strerror or exc}"
        ) from None
    try:
        await _connect(reader, writer, proxy, host, port)
    except BaseException:
        writer.transport.abort()
        raise
    return reader, writer


async def _connect(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    proxy: Proxy,
    host: str,
    port: int,
) -> None:
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    credentials = proxy.authorization()
    if credentials is not None:
        lines.append(f"Proxy-Authorization: {credentials}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        status = await _read_head(reader)
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        why = "closed the connection" if isinstance(exc, asyncio.IncompleteReadError) else exc
        raise ConnectFailed(
            "proxy", f"proxy {proxy.url} gave no usable answer to CONNECT {authority}: {why}"
        ) from None
    words = status.split(" ", 2)
    code = words[1] if len(words) > 1 else ""
    if not words[0].startswith("HTTP/") or not (code.isdigit() and len(code) == 3):
        raise ConnectFailed(
            "proxy", f"proxy {proxy.url} answered CONNECT {authority} with {status!r}"
        )
    if not 200 <= int(code) < 300:
        hint = ""
        if code in ("401", "407"):  # 407 is the standard; tinyproxy answers a wrong one with 401
            hint = " (check the proxy username and proxy_password_file)"
        raise ConnectFailed(
            "proxy", f"proxy {proxy.url} refused CONNECT {authority}: {status}{hint}"
        )


async def _read_head(reader: asyncio.StreamReader) -> str:
    """The status line of the proxy's answer, after reading (bounded) up to its blank line."""
    total, status = 0, None
    for _ in range(MAX_RESPONSE_LINES):
        line = await reader.readuntil(b"\n")
        total += len(line)
        if total > MAX_RESPONSE_BYTES:
            raise ValueError(f"answer longer than {MAX_RESPONSE_BYTES} bytes")
        text = line.decode("latin-1").rstrip("\r\n")
        if status is None:
            status = "".join(c for c in text if c in _STATUS_CHARS)[:_STATUS_SHOWN]
        elif not text:
            return status
    raise ValueError(f"answer has more than {MAX_RESPONSE_LINES} header lines")
