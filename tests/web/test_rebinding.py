"""DNS rebinding against ``POST /-/reload``, through the real CLI: the Host must be ours."""

from __future__ import annotations

import aiohttp
import pytest

from apns_exporter.mock.server import MockAPNs
from tests.helpers import Workspace
from tests.web.test_webconfig_limits import exporter_cli, stderr_until


async def browser_post(url: str, host: str) -> tuple[int, str]:
    """POST /-/reload as a page at http://HOST would: same-origin by the browser's lights."""
    headers = {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/-/reload", headers=headers) as response,
    ):
        return response.status, await response.text()


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("rebind.evil.example", 403),
        ("exporter.example", 200),  # named with --web.allowed-host
        ("127.0.0.1", 200),
        ("localhost", 200),
    ],
)
async def test_reload_answers_only_to_its_own_names(
    mock: MockAPNs, workspace: Workspace, device: str, name: str, status: int
) -> None:
    """A same-origin POST under a rebound DNS name is refused; our addresses and names pass."""
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    # Only the case that needs it names a host: the others run as an operator's default.
    flags = ["--web.allowed-host=Exporter.Example"] if name == "exporter.example" else []
    proc, url = await exporter_cli(f"--config.file={cfg}", *flags)
    try:
        port = url.rsplit(":", 1)[1]
        answer = await browser_post(url, f"{name}:{port}")
        assert answer[0] == status, answer
        if status == 403:
            assert "--web.allowed-host" in answer[1]
            logged = await stderr_until(proc, "refused POST /-/reload")
            assert "rebind.evil.example" in logged[-1]
            # curl, which sends no Origin, still reloads through the address.
            async with (
                aiohttp.ClientSession() as session,
                session.post(url + "/-/reload") as response,
            ):
                assert response.status == 200
        else:
            await stderr_until(proc, "configuration reloaded")
    finally:
        proc.terminate()
        await proc.wait()
