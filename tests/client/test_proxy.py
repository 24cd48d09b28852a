"""Proxy egress: curl's HTTPS_PROXY/NO_PROXY rules, and a real tinyproxy in front of the mock."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apns_exporter.client.connection import Connection, Endpoint
from apns_exporter.client.proxy import Proxy, bypasses, open_tunnel, redact, route
from apns_exporter.client.tls import client_context
from apns_exporter.creds import chain
from apns_exporter.errors import ConnectFailed
from apns_exporter.mock.pki import CertificateAuthority
from apns_exporter.mock.server import MockAPNs
from tests.proxy_support import (
    PROXY_PASSWORD,
    TinyProxy,
    clear_proxy_environment,
    free_port,
    running_tinyproxy,
)

LOG_WAIT_SECONDS = 5.0


@pytest.fixture
async def tinyproxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TinyProxy]:
    """A tinyproxy with basic auth, and an environment with no proxy variables of its own."""
    clear_proxy_environment(monkeypatch)
    async with running_tinyproxy(tmp_path / "tinyproxy") as proxy:
        yield proxy


def _trusting(ca: CertificateAuthority, tmp_path: Path) -> ssl.SSLContext:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    return client_context(str(ca_file), system_store=False)


async def _logged_connect(proxy: TinyProxy, target: str) -> None:
    """Wait (bounded) until tinyproxy's log shows CONNECT ``target``."""
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while f"CONNECT {target}" not in proxy.connects():
        assert time.monotonic() < deadline, f"no CONNECT {target} in:\n{proxy.log_text()}"
        await asyncio.sleep(0.02)


# -- curl's rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "no_proxy", "direct"),
    [
        ("api.push.apple.com", "*", True),
        ("api.push.apple.com", "apple.com", True),
        ("api.push.apple.com", ".apple.com", True),
        ("apple.com", ".apple.com", True),
        ("apple.com", "apple.com", True),
        ("api.push.apple.com", "push.apple.com.", True),
        ("API.Push.Apple.COM.", "push.apple.com", True),
        ("api.push.apple.com", "  example.org , push.apple.com ", True),
        ("notapple.com", "apple.com", False),
        ("apple.com.evil", "apple.com", False),
        ("api.push.apple.com", "", False),
        ("api.push.apple.com", ",,", False),
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.2", "127.0.0.0/8", True),
        ("10.0.0.1", "127.0.0.0/8", False),
        ("::1", "::1", True),
        ("[::1]", "[::1]", True),
        ("2620:149:a44::1", "2620:149:a44::/48", True),
        ("127.0.0.1", "0.0.1", False),
        ("17.1.2.3", "apple.com", False),
    ],
)
def test_no_proxy_follows_curl(host: str, no_proxy: str, direct: bool) -> None:
    """NO_PROXY matches like curl: *, domain suffixes with or without a dot, IPs and CIDR."""
    assert bypasses(host, no_proxy) is direct


def test_environment_names_follow_curl() -> None:
    """https_proxy wins over HTTPS_PROXY and ALL_PROXY; no_proxy over NO_PROXY."""
    env = {
        "https_proxy": "http://lower:3128",
        "HTTPS_PROXY": "http://upper:3128",
        "ALL_PROXY": "http://all:3128",
        "no_proxy": "example.org",
        "NO_PROXY": "apple.com",
    }
    chosen = route("api.push.apple.com", environ=env)
    assert chosen is not None
    assert chosen.host == "lower"
    assert route("api.push.apple.com", environ={**env, "no_proxy": "apple.com"}) is None
    only_all = route("api.push.apple.com", environ={"ALL_PROXY": "http://all:8080"})
    assert only_all is not None
    assert only_all.address == "all:8080"
    assert route("api.push.apple.com", environ={}) is None


def test_unusable_environment_proxy_is_reason_proxy() -> None:
    """A malformed HTTPS_PROXY fails the dial as reason proxy, naming the variable, not crashing."""
    with pytest.raises(ConnectFailed) as caught:
        route("api.push.apple.com", environ={"HTTPS_PROXY": "socks5://u:hunter2@proxy:1080"})
    assert caught.value.reason == "proxy"
    assert "HTTPS_PROXY" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_explicit_proxy_overrides_the_environment_but_not_no_proxy() -> None:
    """A configured proxy replaces HTTPS_PROXY, while the environment's NO_PROXY still applies."""
    mine = Proxy.from_url("http://configured:3128")
    env = {"HTTPS_PROXY": "http://from-env:3128"}
    assert route("api.push.apple.com", mine, environ=env) == mine
    assert route("api.push.apple.com", mine, environ={**env, "NO_PROXY": "apple.com"}) is None


def test_proxy_url_parsing_follows_curl() -> None:
    """No scheme means http, no port means 1080, userinfo is percent-decoded; https is refused."""
    proxy = Proxy.from_url("us%40er:p%3Ass@proxy.example")
    assert (proxy.host, proxy.port, proxy.username, proxy.password) == (
        "proxy.example",
        1080,
        "us@er",
        "p:ss",
    )
    assert Proxy.from_url("http://u@p:1", password="file").password == "file"
    with pytest.raises(ValueError, match="only http://"):
        Proxy.from_url("https://u:hunter2@proxy:443")
    with pytest.raises(ValueError, match="not a proxy URL") as caught:
        Proxy.from_url("http://u:hunter2@proxy:notaport")
    assert "hunter2" not in str(caught.value)


def test_password_never_shows() -> None:
    """repr, str, url and redact() mask the proxy password; basic auth still carries it."""
    proxy = Proxy.from_url("http://user:hunter2@proxy:3128")
    for text in (repr(proxy), str(proxy), proxy.url, redact("http://user:hunter2@proxy:3128")):
        assert "hunter2" not in text
    assert str(proxy) == "http://user:***@proxy:3128"
    assert proxy.authorization() == "Basic dXNlcjpodW50ZXIy"


# -- a broken proxy --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fake_proxy(answer: bytes) -> AsyncIterator[Proxy]:
    """A loopback server that reads the CONNECT request, writes ``answer`` and hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        yield Proxy.from_url(f"http://user:hunter2@127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (b"HTTP/1.1 200 OK\r\n" + (b"X-Pad: " + b"a" * 1000 + b"\r\n") * 20, "longer than 16384"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 150 + b"\r\n", "more than 100 header lines"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "answered CONNECT"),
        (b"", "closed the connection"),
        (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", "503 Service Unavailable"),
    ],
)
async def test_broken_proxy_answers_are_reason_proxy(answer: bytes, words: str) -> None:
    """Endless headers, non-HTTP, silence or a 5xx are ConnectFailed(proxy) with a clear line."""
    async with fake_proxy(answer) as proxy:
        with pytest.raises(ConnectFailed) as caught:
            await open_tunnel(proxy, "api.push.apple.com", 443)
    assert caught.value.reason == "proxy"
    assert words in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert "\n" not in str(caught.value)


# -- through a real proxy --------------------------------------------------------------------


async def test_connection_through_https_proxy_env(
    tinyproxy: TinyProxy,
    mock: MockAPNs,
    ca: CertificateAuthority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With only HTTPS_PROXY set, the APNs connection tunnels through the proxy and works."""
    monkeypatch.setenv("HTTPS_PROXY", tinyproxy.url())
    conn = await Connection.open(
        Endpoint("127.0.0.1", mock.port), _trusting(ca, tmp_path), timeout=10
    )
    try:
        assert await conn.ping(timeout=5) >= 0
        assert conn.proxy is not None
        assert conn.peer == f"127.0.0.1:{tinyproxy.port}"
        assert "resolve" not in conn.timings  # the proxy resolves APNs' name
        assert PROXY_PASSWORD not in str(conn.proxy)
    finally:
        await conn.aclose()
    await _logged_connect(tinyproxy, f"127.0.0.1:{mock.port}")


async def test_wrong_proxy_password_is_reason_proxy(
    tinyproxy: TinyProxy,
    mock: MockAPNs,
    ca: CertificateAuthority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rejected password is ConnectFailed(proxy) naming proxy and status, not the password.

    tinyproxy answers wrong credentials with ``401 Unauthorized`` (and none with 407).
    """
    wrong = "not-the-Pa55word"
    monkeypatch.setenv("HTTPS_PROXY", tinyproxy.url(password=wrong))
    with pytest.raises(ConnectFailed) as caught:
        await Connection.open(Endpoint("127.0.0.1", mock.port), _trusting(ca, tmp_path), timeout=10)
    message = str(caught.value)
    assert caught.value.reason == "proxy"
    assert "HTTP/1.0 401 Unauthorized" in message
    assert "proxy_password_file" in message
    assert f"127.0.0.1:{tinyproxy.port}" in message
    assert wrong not in message
    assert wrong not in repr(caught.value)
    assert mock.stats.connections == 0


async def test_missing_proxy_credentials_is_407(
    tinyproxy: TinyProxy,
    mock: MockAPNs,
    ca: CertificateAuthority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A proxy that wants credentials none were given for answers 407, reported as proxy."""
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{tinyproxy.port}")
    with pytest.raises(ConnectFailed) as caught:
        await Connection.open(Endpoint("127.0.0.1", mock.port), _trusting(ca, tmp_path), timeout=10)
    assert caught.value.reason == "proxy"
    assert "407 Proxy Authentication Required" in str(caught.value)


async def test_dead_proxy_is_reason_proxy(
    mock: MockAPNs,
    ca: CertificateAuthority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A proxy nobody listens on is ConnectFailed(proxy) naming it, never connect or internal."""
    clear_proxy_environment(monkeypatch)
    port = free_port()
    monkeypatch.setenv("https_proxy", f"http://user:hunter2@127.0.0.1:{port}")
    with pytest.raises(ConnectFailed) as caught:
        await Connection.open(Endpoint("127.0.0.1", mock.port), _trusting(ca, tmp_path), timeout=10)
    assert caught.value.reason == "proxy"
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "hunter2" not in str(caught.value)


async def test_proxy_forbidding_the_port_is_reason_proxy(
    tmp_path: Path, mock: MockAPNs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy that only allows CONNECT to 443 answers 403, reported with its status line."""
    clear_proxy_environment(monkeypatch)
    async with running_tinyproxy(tmp_path / "strict", connect_ports=[443]) as strict:
        with pytest.raises(ConnectFailed) as caught:
            await open_tunnel(Proxy.from_url(strict.url()), "127.0.0.1", mock.port)
    assert caught.value.reason == "proxy"
    assert "403" in str(caught.value)


async def test_no_proxy_covering_the_endpoint_goes_direct(
    tinyproxy: TinyProxy,
    mock: MockAPNs,
    ca: CertificateAuthority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With NO_PROXY covering the endpoint the connection is direct and the proxy sees nothing."""
    monkeypatch.setenv("HTTPS_PROXY", tinyproxy.url())
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.0/8")
    conn = await Connection.open(
        Endpoint("127.0.0.1", mock.port), _trusting(ca, tmp_path), timeout=10
    )
    try:
        assert await conn.ping(timeout=5) >= 0
        assert conn.proxy is None
        assert conn.peer == f"127.0.0.1:{mock.port}"
    finally:
        await conn.aclose()
    assert tinyproxy.connects() == []  # (its own readiness check is the only client logged)


async def test_explicit_proxy_beats_a_dead_environment_proxy(
    tinyproxy: TinyProxy,
    mock: MockAPNs,
    ca: CertificateAuthority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A configured proxy (password from a file) is used instead of the environment's."""
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")
    configured = Proxy.from_url(
        f"http://{tinyproxy.user}@127.0.0.1:{tinyproxy.port}", password=tinyproxy.password
    )
    conn = await Connection.open(
        Endpoint("127.0.0.1", mock.port), _trusting(ca, tmp_path), timeout=10, proxy=configured
    )
    try:
        assert await conn.ping(timeout=5) >= 0
    finally:
        await conn.aclose()
    await _logged_connect(tinyproxy, f"127.0.0.1:{mock.port}")


@pytest.mark.parametrize("source", ["environment", "explicit"])
async def test_tls_check_goes_through_the_proxy(
    tinyproxy: TinyProxy,
    mock: MockAPNs,
    ca: CertificateAuthority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    """The server-chain check dials through HTTPS_PROXY or a given proxy, verifying inside it."""
    explicit = None
    if source == "environment":
        monkeypatch.setenv("HTTPS_PROXY", tinyproxy.url())
    else:
        explicit = Proxy.from_url(tinyproxy.url())
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    report = await chain.inspect(
        "127.0.0.1",
        mock.port,
        server_hostname=None,
        ca_file=str(ca_file),
        timeout=10,
        proxy=explicit,
    )
    assert report.verified_ca_file is True
    await _logged_connect(tinyproxy, f"127.0.0.1:{mock.port}")
