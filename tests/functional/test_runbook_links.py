"""The landing page sends a failing target's reader to the runbook section of its layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from apns_exporter.mock.faults import ErrorFault, Scenario
from apns_exporter.mock.server import MockAPNs
from tests.helpers import Workspace

pytestmark = pytest.mark.asyncio


async def _landing(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url + "/") as resp:
        return await resp.text()


async def _failing_landing(
    mock: MockAPNs, cfg: Any, run_exporter: Callable[..., Any], runbook_url: str | None
) -> tuple[str, str]:
    """The landing page while the target is healthy, then while it fails at the apns layer."""
    mock.scenario = Scenario()
    async with run_exporter(cfg, runbook_url=runbook_url) as running:
        await running.wait_canary(ok=True)
        healthy = await _landing(running.url)
        mock.scenario = Scenario(errors=(ErrorFault(reason="ServiceUnavailable"),))
        await running.wait_canary(ok=False)
        return healthy, await _landing(running.url)


async def test_failing_target_links_to_its_layer_in_the_runbook(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter: Callable[..., Any]
) -> None:
    """With --web.runbook-url a target failing at the apns layer links to that section."""
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    base = "https://wiki.example.org/apns/runbook.md"
    healthy, failing = await _failing_landing(mock, cfg, run_exporter, base)
    assert "#failing-layer-" not in healthy
    assert f'href="{base}#failing-layer-apns"' in failing


async def test_without_a_runbook_url_the_section_is_named_not_linked(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter: Callable[..., Any]
) -> None:
    """Without --web.runbook-url the page names the runbook section and invents no address."""
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    _, failing = await _failing_landing(mock, cfg, run_exporter, None)
    assert "runbook: Failing layer apns" in failing
    assert "#failing-layer-" not in failing
