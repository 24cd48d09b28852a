"""Web config values that would break or stall the server, and basic auth under a flood:
refused at start and on SIGHUP through the real CLI, fair and equal-time over real HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import signal
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from apns_exporter.mock.server import MockAPNs
from apns_exporter.web.app import Site
from apns_exporter.web.webconfig import WebConfigWatcher, middleware
from apns_exporter.web.webconfig.auth import MAX_WAITING_SOURCES
from tests.helpers import Workspace
from tests.web.test_hardening import get, hello, serve_app
from tests.web.test_webconfig import HASH, PASSWORD, FakeClock, Pki, tls_config, write

WAIT = 20.0
# Syntactically a bcrypt hash of cost 15: checking it would take seconds, making it none.
COST_15 = "$2b$15$" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"
GOOD = (
    "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
    f"basic_auth_users:\n  prometheus: {HASH}\n"
)
BAD = {
    "header-crlf": (
        "http_server_config:\n  headers:\n"
        "    Content-Security-Policy: \"default-src 'self'\\r\\nSet-Cookie: a=b\"\n"
        f"basic_auth_users:\n  prometheus: {HASH}\n",
        r":3:\d+: http_server_config\.headers\.Content-Security-Policy: contains a control",
    ),
    "header-nul": (
        "http_server_config:\n  headers:\n"
        '    Content-Security-Policy: "default-src \\0"\n'
        f"basic_auth_users:\n  prometheus: {HASH}\n",
        r":3:\d+: http_server_config\.headers\.Content-Security-Policy: contains a control",
    ),
    "bcrypt-cost-15": (
        f"basic_auth_users:\n  prometheus: {HASH}\n  slow: {COST_15}\n",
        r":3:\d+: basic_auth_users\.slow: bcrypt cost 15 is above the maximum of 14",
    ),
}


async def exporter_cli(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    """Start the exporter CLI; the process and its URL once it listens."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "apns_exporter",
        "--web.listen-address=127.0.0.1:0",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(WAIT):
            while b"listening on" not in (line := await proc.stderr.readline()):
                assert line, "the exporter exited before listening"
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc, line.decode().split("listening on ")[1].split()[0].strip('"')


async def stderr_until(proc: asyncio.subprocess.Process, marker: str) -> list[str]:
    """Lines the process logs up to and including the first one containing ``marker``."""
    assert proc.stderr is not None
    lines: list[str] = []
    async with asyncio.timeout(WAIT):
        while marker not in (lines[-1] if lines else ""):
            line = (await proc.stderr.readline()).decode()
            assert line, f"exited before logging {marker!r}: {lines}"
            lines.append(line)
    return lines


async def fetch(url: str) -> tuple[int, str | None]:
    """GET ``url`` as the configured user; status and X-Frame-Options."""
    auth = {"Authorization": aiohttp.encode_basic_auth("prometheus", PASSWORD)}
    async with aiohttp.ClientSession() as session, session.get(url, headers=auth) as response:
        await response.read()
        return response.status, response.headers.get("X-Frame-Options")


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_web_config_is_refused_at_start(
    mock: MockAPNs, workspace: Workspace, device: str, case: str
) -> None:
    """A header with CR, LF or NUL, or a bcrypt cost above 14, stops the start with one line."""
    text, located = BAD[case]
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    web_yml = write(workspace.path / "web.yml", text)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "apns_exporter",
        f"--config.file={cfg}",
        f"--web.config.file={web_yml}",
        "--web.listen-address=127.0.0.1:0",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(WAIT):
            _, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 1, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {web_yml}:"), lines
    assert re.search(located, lines[0]), lines


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_web_config_on_sighup_keeps_the_old_one(
    mock: MockAPNs, workspace: Workspace, device: str, case: str
) -> None:
    """The same mistakes arriving by SIGHUP log one located error; the old web config serves."""
    text, located = BAD[case]
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    web_yml = write(workspace.path / "web.yml", GOOD)
    proc, url = await exporter_cli(f"--config.file={cfg}", f"--web.config.file={web_yml}")
    try:
        assert await fetch(url + "/-/healthy") == (200, "deny")
        write(web_yml, text)
        proc.send_signal(signal.SIGHUP)
        errors = [
            line
            for line in await stderr_until(proc, "keeping the previous web config")
            if "level=error" in line
        ]
        assert len(errors) == 1, errors
        assert re.search(located, errors[0]), errors
        for path in ("/-/healthy", "/metrics", "/"):
            assert await fetch(url + path) == (200, "deny")
    finally:
        proc.terminate()
        await proc.wait()


# --- basic auth under a flood


@dataclass
class BcryptGate:
    """Records every bcrypt check; once armed, the next check waits for ``release``."""

    calls: list[bytes] = field(default_factory=list)
    armed: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[BcryptGate]:
    """bcrypt.checkpw behind a BcryptGate."""
    gate = BcryptGate()
    real_checkpw = bcrypt.checkpw

    def gated(password: bytes, hashed: bytes) -> bool:
        gate.calls.append(password)
        if gate.armed.is_set():
            gate.started.set()
            gate.release.wait(WAIT)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", gated)
    try:
        yield gate
    finally:
        gate.release.set()


async def test_flood_from_twenty_addresses_leaves_a_newcomer_no_429(
    tmp_path: Path, gate: BcryptGate
) -> None:
    """Wrong passwords from 20 addresses, again and again, do not turn a new user away."""
    newcomer_in = asyncio.Event()

    @web.middleware
    async def notice_newcomer(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.remote == "127.0.0.22":
            newcomer_in.set()  # seen by the test once the request waits for its turn
        return await handler(request)

    watcher = WebConfigWatcher(write(tmp_path / "web.yml", f"basic_auth_users:\n  u: {HASH}\n"))
    app = web.Application(middlewares=[notice_newcomer, middleware(watcher)])
    app.router.add_get("/", hello)
    site = Site(app, ("127.0.0.1", 0), what="")
    await site.start()
    attackers = [f"127.0.0.{i}" for i in range(2, 22)]
    try:
        # The flood has been going on: each attacking address has failed before.
        for address in attackers:
            assert await get(site.url + "/", ("u", "wrong"), address) == 401
        gate.armed.set()
        flood = [
            asyncio.create_task(get(site.url + "/", ("u", f"wrong{n}"), address))
            for n in range(3)
            for address in attackers
        ]
        await asyncio.to_thread(gate.started.wait, WAIT)
        # One check runs, MAX_WAITING_SOURCES wait; every other request is told to retry.
        holding = 1 + MAX_WAITING_SOURCES
        pending = set(flood)
        async with asyncio.timeout(WAIT):
            while len(pending) > holding:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        newcomer = asyncio.create_task(get(site.url + "/", ("u", PASSWORD), "127.0.0.22"))
        async with asyncio.timeout(WAIT):
            await newcomer_in.wait()
        gate.release.set()
        async with asyncio.timeout(WAIT):
            assert await newcomer == 200
            await asyncio.gather(*flood)
    finally:
        gate.release.set()
        await site.stop()
    # Its check came right after the one running when it arrived.
    assert gate.calls[len(attackers) + 1] == PASSWORD.encode(), gate.calls


def cost_hash(cost: int) -> str:
    """A bcrypt hash of PASSWORD at ``cost``."""
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(cost)).decode()


async def timed_get(url: str, user: str) -> float:
    """Seconds a wrong password for ``user`` takes to be refused."""
    started = time.monotonic()
    assert await get(url, (user, "wrong")) == 401
    return time.monotonic() - started


async def test_unknown_names_and_cheap_known_names_take_the_same_time(tmp_path: Path) -> None:
    """A user with a cheap hash answers as slowly as an unknown name: names do not leak."""
    users = f"basic_auth_users:\n  cheap: {cost_hash(4)}\n  dear: {cost_hash(11)}\n"
    watcher = WebConfigWatcher(write(tmp_path / "web.yml", users))
    site, url = await serve_app(watcher)
    unknown: list[float] = []
    cheap: list[float] = []
    try:
        for _ in range(5):
            cheap.append(await timed_get(url + "/", "cheap"))
            unknown.append(await timed_get(url + "/", "nobody"))
    finally:
        await site.stop()
    assert statistics.median(cheap) >= 0.6 * statistics.median(unknown), (cheap, unknown)


async def test_sigterm_stops_the_exporter_during_bcrypt_checks(
    mock: MockAPNs, workspace: Workspace, device: str
) -> None:
    """With logins at the highest allowed cost under way, SIGTERM ends the process promptly."""
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    web_yml = write(workspace.path / "web.yml", f"basic_auth_users:\n  u: {cost_hash(14)}\n")
    proc, url = await exporter_cli(f"--config.file={cfg}", f"--web.config.file={web_yml}")
    try:
        attempts = [
            asyncio.create_task(get(url + "/metrics", ("u", "wrong"), f"127.0.0.{i}"))
            for i in range(2, 8)
        ]
        await asyncio.wait(attempts, timeout=0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT):
            assert await proc.wait() == 0
        # One check at cost 14 is about a second; nothing queued behind it is waited for.
        assert time.monotonic() - sent < 8.0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    await asyncio.gather(*attempts, return_exceptions=True)


# --- web TLS certificates at run time


def test_expired_web_certificate_swapped_in_is_warned_about(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """A rotated-in web TLS certificate that has expired loads, with one warning naming it."""
    clock = FakeClock()
    path = write(pki.dir / "web.yml", tls_config(pki))
    watcher = WebConfigWatcher(path, clock=clock)
    assert watcher.ssl_context() is not None
    now = dt.datetime.now(dt.UTC)
    pki.ca.issue_server(
        valid_from=now - dt.timedelta(days=30), valid_until=now - dt.timedelta(days=1)
    ).write(pki.dir, "server")
    with caplog.at_level(logging.INFO, logger="apns_exporter.web.webconfig"):
        for _ in range(3):
            clock.advance()
            watcher.current()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"cert_file {pki.server_cert} expired at" in warnings[0]
    assert "loaded the changed TLS certificate files" in caplog.text
