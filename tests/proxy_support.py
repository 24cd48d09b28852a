"""A real HTTP CONNECT proxy for tests: Debian's tinyproxy on 127.0.0.1, with basic auth.

Started in the foreground (``-d -c conf``) the way the live tests start Prometheus, and
stopped by the test; the tests fail, never skip, when ``tinyproxy`` is not installed.
Without ``ConnectPort`` lines tinyproxy lets CONNECT reach any port (the mocks listen on
ephemeral ones); ``connect_ports`` restricts it, to provoke a real 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

PROXY_USER = "prober"
PROXY_PASSWORD = "tunnel-s3cret-Pa55"
START_SECONDS = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TinyProxy:
    """A running tinyproxy: where it listens and what it logged."""

    port: int
    log: Path
    user: str
    password: str

    def url(self, *, password: str | None = None) -> str:
        """``http://user:password@127.0.0.1:port`` (with another password when given)."""
        return f"http://{self.user}:{password or self.password}@127.0.0.1:{self.port}"

    def log_text(self) -> str:
        """Everything tinyproxy logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def connects(self) -> list[str]:
        """The CONNECT requests tinyproxy received, as logged (``CONNECT host:port``)."""
        return [
            line.split("Request (file descriptor", 1)[1].split(": ", 1)[1].rsplit(" ", 1)[0]
            for line in self.log_text().splitlines()
            if "Request (file descriptor" in line and ": CONNECT " in line
        ]


def binary() -> str:
    """tinyproxy's path; fails the test (never skips) when it is not installed."""
    found = shutil.which("tinyproxy") or next(
        (p for p in ("/usr/bin/tinyproxy", "/usr/sbin/tinyproxy") if Path(p).exists()), None
    )
    if found is None:
        pytest.fail(
            "tinyproxy is not installed: the proxy tests need a real CONNECT proxy "
            "(Debian/Ubuntu: apt-get install tinyproxy; scripts/setup installs it)"
        )
    return found


@contextlib.asynccontextmanager
async def running_tinyproxy(
    directory: Path,
    *,
    user: str = PROXY_USER,
    password: str = PROXY_PASSWORD,
    connect_ports: Sequence[int] = (),
) -> AsyncIterator[TinyProxy]:
    """Start tinyproxy with BasicAuth on a free loopback port; stop it on exit."""
    executable = binary()
    port = free_port()
    log = directory / "tinyproxy.log"
    conf = directory / "tinyproxy.conf"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 30",
        f'LogFile "{log}"',
        "LogLevel Connect",
        "MaxClients 50",
        "Allow 127.0.0.1",
        f"BasicAuth {user} {password}",
        *(f"ConnectPort {p}" for p in connect_ports),
    ]
    _write(conf, "\n".join(lines) + "\n")
    process = await asyncio.create_subprocess_exec(
        executable,
        "-d",
        "-c",
        str(conf),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _wait_listening(process, port, log)
        yield TinyProxy(port, log, user, password)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(5):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def _wait_listening(process: asyncio.subprocess.Process, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.returncode is not None:
            pytest.fail(f"tinyproxy exited with {process.returncode}:\n{_tail(log)}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)  # polling a condition with a deadline, not a sleep-sync
            continue
        writer.close()
        await writer.wait_closed()
        return
    pytest.fail(f"tinyproxy did not listen on 127.0.0.1:{port} in {START_SECONDS}s:\n{_tail(log)}")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""


def clear_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every proxy variable, so only what a test sets is in force."""
    for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
