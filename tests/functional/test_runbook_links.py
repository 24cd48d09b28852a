"""The landing page sends a failing target's reader to the runbook section of its layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from apns_exporter.assets import DEFAULT_RUNBOOK_URL, RUNBOOK_URL_ENV
from apns_exporter.mock.faults import ErrorFault, Scenario
from apns_exporter.mock.server import MockAPNs
from tests.helpers import Workspace

pytestmark = pytest.mark.asyncio


async def _landing(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url + "/") as resp:
        return await resp.text()


async def test_failing_target_links_to_its_layer_in_the_runbook(
    mock: MockAPNs,
    workspace: Workspace,
    device: str,
    run_exporter: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A target failing at the apns layer links to #failing-layer-apns at the configured URL."""
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    async with run_exporter(cfg) as running:
        await running.wait_canary(ok=True)
        healthy = await _landing(running.url)
        mock.scenario = Scenario(errors=(ErrorFault(reason="ServiceUnavailable"),))
        await running.wait_canary(ok=False)
        default = await _landing(running.url)
        monkeypatch.setenv(RUNBOOK_URL_ENV, "https://wiki.example.org/apns/runbook.md")
        configured = await _landing(running.url)
    assert "#failing-layer-" not in healthy
    assert f'href="{DEFAULT_RUNBOOK_URL}#failing-layer-apns"' in default
    assert 'href="https://wiki.example.org/apns/runbook.md#failing-layer-apns"' in configured
