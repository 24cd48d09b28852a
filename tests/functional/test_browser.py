"""The landing page as a person sees it: rendered by a real headless Chromium."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from apns_exporter.mock.server import MockAPNs
from tests.helpers import Workspace

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


async def _chromium(tmp: Path, *args: str) -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Chromium is required: apt-get install chromium (scripts/setup does)"
    proc = await asyncio.create_subprocess_exec(
        binary,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp / 'profile'}",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0
    return out.decode()


async def test_landing_page_renders_targets_in_chromium(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """Chromium shows a table row per target with its auth, results, layer and a logs link."""
    good = workspace.target(mock.port, name="good", devices=(device,), auth_check=True)
    bad = workspace.target(mock.port, name="bad", devices=("ab" * 32,))
    async with run_exporter(workspace.config(good + bad)) as running:
        await running.wait_canary("good", ok=True)
        await running.wait_canary("bad", ok=False)
        dom = await _chromium(workspace.path, "--dump-dom", running.url + "/")
        await _chromium(
            workspace.path,
            f"--screenshot={workspace.path / 'landing.png'}",
            "--window-size=1400,600",
            running.url + "/",
        )
    assert "<h1>APNs Exporter</h1>" in dom
    assert "<td>good</td><td>production</td>" in dom
    assert '<span class="ok">OK</span>' in dom
    assert '<span class="failed">FAILED</span>' in dom
    assert "device push answered 400 BadDeviceToken" in dom
    assert 'href="probes?target=bad"' in dom
    assert (workspace.path / "landing.png").stat().st_size > 1000
