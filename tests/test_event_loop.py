"""--runtime.event-loop: the real CLI on uvloop, and one clear line when uvloop is missing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable

import aiohttp

from apns_exporter.mock.server import MockAPNs
from tests.helpers import Workspace, parse_samples, sample, start_cli

WAIT = 30.0


async def test_exporter_runs_on_uvloop_and_its_canary_succeeds(
    mock: MockAPNs,
    workspace: Workspace,
    device: str,
    unused_tcp_port_factory: Callable[[], int],
) -> None:
    """With --runtime.event-loop=uvloop the exporter says so, serves /metrics and is up."""
    port = unused_tcp_port_factory()
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    proc = await start_cli(
        f"--config.file={cfg}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--runtime.event-loop=uvloop",
        ready=b"running on the uvloop event loop",
    )
    up = None
    try:
        async with asyncio.timeout(WAIT), aiohttp.ClientSession() as session:
            while up != 1:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                        text = await resp.text()
                except aiohttp.ClientConnectionError:
                    text = ""  # not listening yet
                labels = {"target": "t1", "apns_environment": "production"}
                up = sample(parse_samples(text), "apns_up", **labels) if text else None
                await asyncio.sleep(0.1)  # poll interval, bounded by the timeout above
    finally:
        proc.terminate()
        assert await proc.wait() == 0


def test_uvloop_missing_is_one_line(workspace: Workspace) -> None:
    """Asking for uvloop where it cannot be imported exits 1 with one line saying what to do."""
    cfg = workspace.config(workspace.target(1, devices=("ab" * 32,)))
    # The real CLI entry point, in an interpreter where `import uvloop` fails.
    code = (
        "import sys; sys.modules['uvloop'] = None; "
        "from apns_exporter.cli import main; raise SystemExit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, f"--config.file={cfg}", "--runtime.event-loop=uvloop"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: --runtime.event-loop=uvloop: uvloop is not installed; install it with "
        "pip install 'apns-exporter[uvloop]' or use --runtime.event-loop=asyncio"
    ]
