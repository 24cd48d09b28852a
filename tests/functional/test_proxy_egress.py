"""The real exporter process behind a real proxy: HTTPS_PROXY alone routes every dial."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from apns_exporter.mock.server import MockAPNs
from tests.helpers import Samples, Workspace, parse_samples, sample, start_cli
from tests.proxy_support import TinyProxy, clear_proxy_environment, free_port, running_tinyproxy

T = {"target": "t1", "apns_environment": "production"}
DEADLINE_SECONDS = 30.0


@pytest.fixture
async def tinyproxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TinyProxy]:
    """A tinyproxy with basic auth; the test's environment starts with no proxy variables."""
    clear_proxy_environment(monkeypatch)
    async with running_tinyproxy(tmp_path / "tinyproxy") as proxy:
        yield proxy


async def _scrape_until(
    url: str, done: Callable[[Samples], bool], proc: asyncio.subprocess.Process
) -> Samples:
    """Scrape ``url`` until ``done`` holds (bounded), failing if the exporter exits."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    samples: Samples = {}
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert proc.returncode is None, "the exporter exited"
            async with session.get(url) as resp:
                samples = parse_samples(await resp.text())
            if done(samples):
                return samples
            await asyncio.sleep(0.2)  # polling a condition with a deadline
    pytest.fail(
        f"condition not met in {DEADLINE_SECONDS}s; apns_up={sample(samples, 'apns_up', **T)}"
    )


async def test_exporter_reaches_apns_up_through_the_proxy(
    tinyproxy: TinyProxy,
    mock: MockAPNs,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    unused_tcp_port: int,
) -> None:
    """With only HTTPS_PROXY set, the CLI exporter's canary passes and the proxy logs CONNECT."""
    monkeypatch.setenv("HTTPS_PROXY", tinyproxy.url())
    cfg = workspace.config(workspace.target(mock.port, auth_check=True))
    proc = await start_cli(
        f"--config.file={cfg}",
        f"--web.listen-address=127.0.0.1:{unused_tcp_port}",
        ready=b"listening on",
    )
    try:
        await _scrape_until(
            f"http://127.0.0.1:{unused_tcp_port}/metrics",
            lambda s: sample(s, "apns_up", **T) == 1,
            proc,
        )
    finally:
        proc.terminate()
        await proc.wait()
    assert f"CONNECT 127.0.0.1:{mock.port}" in tinyproxy.connects()


@pytest.mark.parametrize("fault", ["wrong-password", "dead-proxy"])
async def test_exporter_behind_a_failing_proxy_counts_reason_proxy(
    tinyproxy: TinyProxy,
    mock: MockAPNs,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    unused_tcp_port: int,
    fault: str,
) -> None:
    """A refused CONNECT or a dead proxy: apns_up 0, failures counted and the layer is proxy."""
    if fault == "wrong-password":
        monkeypatch.setenv("HTTPS_PROXY", tinyproxy.url(password="wrong-Pa55"))
    else:
        monkeypatch.setenv("HTTPS_PROXY", f"http://u:dead-Pa55@127.0.0.1:{free_port()}")
    cfg = workspace.config(workspace.target(mock.port, auth_check=True))
    proc = await start_cli(
        f"--config.file={cfg}",
        f"--web.listen-address=127.0.0.1:{unused_tcp_port}",
        ready=b"listening on",
    )
    try:
        samples = await _scrape_until(
            f"http://127.0.0.1:{unused_tcp_port}/metrics",
            lambda s: (
                (sample(s, "apns_connection_failures_total", **T, reason="proxy") or 0) >= 1
                and sample(s, "apns_failing_layer", **T, layer="proxy") == 1
            ),
            proc,
        )
    finally:
        proc.terminate()
        await proc.wait()
    assert sample(samples, "apns_up", **T) == 0
    assert sample(samples, "apns_failing_layer", **T, layer="exporter") is None
    assert mock.stats.connections == 0


async def test_exporter_with_no_proxy_for_the_endpoint_goes_direct(
    tinyproxy: TinyProxy,
    mock: MockAPNs,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    unused_tcp_port: int,
) -> None:
    """With NO_PROXY covering the endpoint: apns_up 1, and the proxy sees no CONNECT."""
    monkeypatch.setenv("HTTPS_PROXY", tinyproxy.url())
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    cfg = workspace.config(workspace.target(mock.port, auth_check=True))
    proc = await start_cli(
        f"--config.file={cfg}",
        f"--web.listen-address=127.0.0.1:{unused_tcp_port}",
        ready=b"listening on",
    )
    try:
        await _scrape_until(
            f"http://127.0.0.1:{unused_tcp_port}/metrics",
            lambda s: sample(s, "apns_up", **T) == 1,
            proc,
        )
    finally:
        proc.terminate()
        await proc.wait()
    assert tinyproxy.connects() == []
