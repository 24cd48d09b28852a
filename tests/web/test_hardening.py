"""The HTTP side's defences, over real sockets on 127.0.0.1: connection limits, reload
protection, web config rules at runtime, bcrypt fairness and log redaction."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import sys
import threading
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from aiohttp import web

from apns_exporter import logs
from apns_exporter.errors import WebConfigError
from apns_exporter.mock.server import MockAPNs
from apns_exporter.web.app import Site
from apns_exporter.web.webconfig import WebConfigWatcher, middleware
from tests.helpers import Workspace, run_cli
from tests.web.test_webconfig import (
    HASH,
    PASSWORD,
    FakeClock,
    Pki,
    tls_config,
    users_config,
    write,
)

WAIT = 10.0


# The connection limits (silent, slowloris, idle and capped connections) are tested under
# both event loops in tests/loops/test_web_listener.py.


async def hello(request: web.Request) -> web.Response:
    """A trivial handler."""
    return web.Response(text="Healthy\n")


async def healthy(port: int) -> int:
    """GET /-/healthy on a fresh connection."""
    url = f"http://127.0.0.1:{port}/-/healthy"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status


def test_accept_errors_are_logged_once_per_interval(capsys: pytest.CaptureFixture[str]) -> None:
    """asyncio's accept() resource error, repeated, becomes one line without a traceback."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.setup("info")
    loop = asyncio.new_event_loop()
    try:
        for _ in range(100):
            loop.call_exception_handler(
                {
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(24, "Too many open files"),
                }
            )
    finally:
        loop.close()
        root.handlers[:], root.level = saved
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "cannot accept connections" in lines[0]
    assert "Traceback" not in lines[0]


# --- /-/reload


async def post(url: str, **kwargs: object) -> tuple[int, str]:
    """POST and return status and body."""
    async with aiohttp.ClientSession() as session, session.post(url, **kwargs) as response:  # type: ignore[arg-type]
        return response.status, await response.text()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": {"x": "1"}, "headers": {"Origin": "https://evil.example"}},
        {"data": "a=b", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"headers": {"Sec-Fetch-Site": "cross-site"}},
        {"headers": {"Origin": "null"}},
    ],
    ids=["form-with-origin", "form-without-origin", "sec-fetch-site", "null-origin"],
)
async def test_cross_site_reload_is_refused(
    mock: MockAPNs,
    workspace: Workspace,
    device: str,
    run_exporter,
    kwargs: dict[str, object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A browser form POST from another site cannot reload the exporter: 403, no reload."""
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    async with run_exporter(cfg) as running:
        with caplog.at_level(logging.INFO):
            status, text = await post(running.url + "/-/reload", **kwargs)
            assert status == 403, text
            assert "cross-site" in text
            assert reloads(caplog) == 0
            assert await post(running.url + "/-/reload") == (200, "Reloaded\n")
            assert reloads(caplog) == 1


async def test_reload_parses_off_the_event_loop(
    mock: MockAPNs,
    workspace: Workspace,
    device: str,
    run_exporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While a reload is still parsing, /-/healthy answers: parsing does not hold the loop."""
    from apns_exporter.service import exporter as exporter_module

    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    parsing, release = threading.Event(), threading.Event()
    real_load = exporter_module.load_fleet

    def slow_load(path: str, previous: object = None) -> object:
        parsing.set()
        # On the event loop this would block /-/healthy until it gives up.
        if not release.wait(WAIT):
            raise AssertionError("/-/healthy never answered while the config was parsing")
        return real_load(path, previous)  # type: ignore[arg-type]

    monkeypatch.setattr(exporter_module, "load_fleet", slow_load)
    async with run_exporter(cfg) as running:
        reload = asyncio.create_task(post(running.url + "/-/reload"))
        await asyncio.to_thread(parsing.wait, WAIT)
        assert await healthy(int(running.url.rsplit(":", 1)[1])) == 200
        release.set()
        assert await reload == (200, "Reloaded\n")


async def test_concurrent_reloads_share_one_run(
    mock: MockAPNs,
    workspace: Workspace,
    device: str,
    run_exporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Twenty reloads posted at once run the reload at most twice, and all answer 200."""
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    async with run_exporter(cfg) as running:
        with caplog.at_level(logging.INFO):
            posts = (post(running.url + "/-/reload") for _ in range(20))
            results = await asyncio.gather(*posts)
            assert 1 <= reloads(caplog) <= 2
    assert {status for status, _ in results} == {200}


def reloads(caplog: pytest.LogCaptureFixture) -> int:
    """How many reloads the exporter logged as applied."""
    return sum("configuration reloaded" in r.getMessage() for r in caplog.records)


# --- the web config at runtime


async def serve_app(watcher: WebConfigWatcher) -> tuple[Site, str]:
    """An app behind the web config middleware on 127.0.0.1."""
    app = web.Application(middlewares=[middleware(watcher)])
    app.router.add_get("/", hello)
    site = Site(app, ("127.0.0.1", 0), what="")
    await site.start()
    return site, site.url


async def get(url: str, auth: tuple[str, str] | None = None, local: str = "127.0.0.1") -> int:
    """GET with optional basic auth, from a chosen loopback address."""
    connector = aiohttp.TCPConnector(local_addr=(local, 0))
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, headers=headers) as response,
    ):
        await response.read()
        return response.status


@pytest.mark.parametrize("replacement", ["", "basic_auth_"], ids=["emptied", "truncated"])
async def test_emptied_web_config_keeps_basic_auth(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, replacement: str
) -> None:
    """A web config emptied or truncated at runtime keeps auth on and logs one error."""
    clock = FakeClock()
    path = write(tmp_path / "web.yml", users_config({"prometheus": HASH}))
    watcher = WebConfigWatcher(path, clock=clock)
    watcher.ssl_context()
    site, url = await serve_app(watcher)
    try:
        path.write_text(replacement)
        with caplog.at_level(logging.INFO, logger="apns_exporter.web.webconfig"):
            for _ in range(3):
                clock.advance()
                assert await get(url + "/") == 401
        assert await get(url + "/", ("prometheus", PASSWORD)) == 200
    finally:
        await site.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    if not replacement:
        assert "turns off basic auth" in errors[0]


def test_turning_tls_on_at_runtime_warns_to_restart(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener started without TLS warns once that turning TLS on needs a restart."""
    clock = FakeClock()
    path = write(pki.dir / "web.yml", users_config({"prometheus": HASH}))
    watcher = WebConfigWatcher(path, clock=clock)
    assert watcher.ssl_context() is None
    write(path, tls_config(pki) + users_config({"prometheus": HASH}))
    with caplog.at_level(logging.WARNING, logger="apns_exporter.web.webconfig"):
        for _ in range(3):
            clock.advance()
            watcher.current()
    assert caplog.text.count("restart the exporter to apply that") == 1
    assert watcher.ssl_context() is None


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory"])
def test_web_config_must_be_a_regular_file(tmp_path: Path, kind: str) -> None:
    """/dev/zero, a FIFO or a directory as web config is refused at once, in one line."""
    if kind == "dev-zero":
        path = Path("/dev/zero")
    elif kind == "fifo":
        path = tmp_path / "web.yml"
        os.mkfifo(path)
    else:
        path = tmp_path
    with pytest.raises(WebConfigError) as raised:
        WebConfigWatcher(path)
    assert "\n" not in str(raised.value)
    assert str(path) in str(raised.value)


def test_fifo_as_tls_file_is_refused(tmp_path: Path) -> None:
    """A FIFO named as cert_file is refused with its key, not waited on."""
    fifo = tmp_path / "server.crt"
    os.mkfifo(fifo)
    (tmp_path / "server.key").write_text("x")
    path = write(
        tmp_path / "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    with pytest.raises(WebConfigError, match=r"cert_file: cannot read .*not a regular file"):
        WebConfigWatcher(path)


def test_explicit_http2_true_is_refused(tmp_path: Path) -> None:
    """http2: true is refused in one line saying aiohttp serves HTTP/1.1 only; false is fine."""
    path = write(tmp_path / "web.yml", "http_server_config:\n  http2: true\n")
    with pytest.raises(WebConfigError, match=r"http2: aiohttp serves HTTP/1\.1 only"):
        WebConfigWatcher(path)
    WebConfigWatcher(write(path, "http_server_config:\n  http2: false\n"))


# --- bcrypt


async def test_wrong_password_flood_does_not_queue_ahead_of_a_valid_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixty concurrent wrong passwords from one address cost a valid login at most one bcrypt."""
    calls: list[bytes] = []
    first_started, release = threading.Event(), threading.Event()
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        first_started.set()
        release.wait(WAIT)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)
    watcher = WebConfigWatcher(write(tmp_path / "web.yml", users_config({"prometheus": HASH})))
    site, url = await serve_app(watcher)
    try:
        attack = [
            asyncio.create_task(get(url + "/", ("prometheus", f"wrong{i}"), "127.0.0.2"))
            for i in range(60)
        ]
        await asyncio.to_thread(first_started.wait, WAIT)
        # Every attacker request but the one in bcrypt is answered without queueing.
        done, _ = await asyncio.wait(attack, timeout=WAIT, return_when=asyncio.ALL_COMPLETED)
        answered = [t.result() for t in done]
        assert answered.count(429) == 59, answered
        valid = asyncio.create_task(get(url + "/", ("prometheus", PASSWORD), "127.0.0.3"))
        release.set()
        assert await valid == 200
        await asyncio.gather(*attack)
    finally:
        release.set()
        await site.stop()
    assert calls.index(PASSWORD.encode()) <= 1
    assert len(calls) == 2


# --- logs


JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")
HEX64 = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")


async def test_debug_logs_of_the_demo_hold_no_jwt_and_no_device_token() -> None:
    """A demo run at --log.level=debug logs no JWT and no full device token."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "apns_exporter",
        "demo",
        "--web.listen-address=127.0.0.1:0",
        "--log.level=debug",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            # Two canaries (device and auth check) mean JWTs and device paths went over h2.
            while sum("POST /3/device/" in line for line in lines) < 2:
                line = (await proc.stderr.readline()).decode()
                assert line, "demo exited early"
                lines.append(line)
    finally:
        proc.terminate()
        await proc.communicate()
    text = "".join(lines)
    assert "level=debug" in text
    assert not JWT.search(text)
    assert not HEX64.search(text)


def test_redact_cuts_credentials() -> None:
    """redact() replaces JWTs and bearer tokens and shortens device tokens to 8 digits."""
    token = "ab" * 32
    jwt = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJUIn0.c2lnbmF0dXJl"
    text = logs.redact(f"authorization: bearer {jwt} :path /3/device/{token}")
    assert jwt not in text
    assert token not in text
    assert "/3/device/abababab…" in text


@pytest.mark.parametrize(
    ("mode", "warned"),
    [(0o644, True), (0o604, True), (0o660, True), (0o640, False), (0o440, False), (0o600, False)],
)
def test_config_check_warns_about_a_key_others_can_read(
    workspace: Workspace, mode: int, warned: bool
) -> None:
    """--config.check warns when others may read the key or its group write it, not for 0440."""
    workspace.key_file.chmod(mode)
    cfg = workspace.config(workspace.target(443, auth_check=True))
    done = run_cli("--config.check", f"--config.file={cfg}")
    assert done.returncode == 0, done.stderr
    assert ("warning:" in done.stderr) is warned
    assert ("the private key is accessible to" in done.stderr) is warned
    if warned:
        assert f"chmod 600 {workspace.key_file}" in done.stderr
