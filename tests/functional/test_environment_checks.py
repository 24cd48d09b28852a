"""The process-wide environment check: which root each APNs environment presents."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes

from apns_exporter.mock.admin import AdminServer
from apns_exporter.mock.rollout import (
    NEW_ROOT,
    NEW_ROOT_NAME,
    OLD_ROOT,
    OLD_ROOT_NAME,
    RootRollout,
    generate_rollout,
)
from apns_exporter.mock.server import MockAPNs
from apns_exporter.probes.results import EnvironmentsResult
from tests.helpers import WAIT_SECONDS, Running, Samples, Workspace, sample


@pytest.fixture(scope="module")
def rollout() -> RootRollout:
    """An old and a new root named after Apple's 2025 roots."""
    return generate_rollout()


@pytest.fixture
async def environments(rollout: RootRollout) -> AsyncIterator[dict[str, MockAPNs]]:
    """A sandbox and a production mock, both serving the old root's chain."""
    chains = rollout.chains()
    mocks = {
        env: MockAPNs(chains[OLD_ROOT], keypairs=chains, serving=OLD_ROOT, environment=env)
        for env in ("sandbox", "production")
    }
    for mock in mocks.values():
        await mock.start("127.0.0.1", 0)
    try:
        yield mocks
    finally:
        for mock in mocks.values():
            await mock.stop()


def _config(workspace: Workspace, ports: dict[str, int], rollout: RootRollout, port: int) -> Path:
    bundle = workspace.path / "both-roots.pem"
    bundle.write_bytes(rollout.bundle_pem)
    extra = f"""\
        global:
          environment_checks:
            interval: 1s
            timeout: 1s
            sandbox: 127.0.0.1:{ports["sandbox"]}
            production: 127.0.0.1:{ports["production"]}
            ca_file: {bundle}
        """
    target = workspace.target(port, auth_check=True, interval="1h")
    return workspace.config(target, extra=extra)


async def _next(running: Running, predicate) -> EnvironmentsResult:
    """The next environment-check result matching ``predicate`` (bounded wait)."""
    found: asyncio.Future[EnvironmentsResult] = asyncio.get_running_loop().create_future()

    def listener(result: EnvironmentsResult) -> None:
        if predicate(result) and not found.done():
            found.set_result(result)

    running.exporter.environments.listeners.append(listener)
    async with asyncio.timeout(WAIT_SECONDS):
        return await found


def _roots(s: Samples, environment: str) -> set[str]:
    return {
        dict(labels)["root"]
        for (name, labels), value in s.items()
        if name == "apns_environment_root_info"
        and dict(labels)["apns_environment"] == environment
        and value == 1
    }


def _presents(result: EnvironmentsResult, environment: str, root: str) -> bool:
    check = next(c for c in result.checks if c.environment == environment)
    return any(r.root == root for r in check.roots)


async def test_sandbox_switching_first_shows_a_root_production_lacks(
    environments: dict[str, MockAPNs],
    rollout: RootRollout,
    workspace: Workspace,
    mock: MockAPNs,
    run_exporter,
) -> None:
    """Switching the sandbox mock's chain (admin API) shows its new root beside production's."""
    admin = AdminServer(environments["sandbox"])
    await admin.start("127.0.0.1", 0)
    try:
        ports = {env: m.port for env, m in environments.items()}
        cfg = _config(workspace, ports, rollout, mock.port)
        async with run_exporter(cfg) as running:
            await _next(running, lambda r: _presents(r, "sandbox", OLD_ROOT_NAME))
            before = await running.scrape()
            url = f"http://127.0.0.1:{admin.port}/certificates/current"
            async with (
                aiohttp.ClientSession() as session,
                session.put(url, json={"name": NEW_ROOT}) as response,
            ):
                assert response.status == 200
            await _next(running, lambda r: _presents(r, "sandbox", NEW_ROOT_NAME))
            after = await running.scrape()
    finally:
        await admin.stop()
    assert _roots(before, "sandbox") == _roots(before, "production") == {OLD_ROOT_NAME}
    assert _roots(after, "sandbox") == {NEW_ROOT_NAME}
    assert _roots(after, "production") == {OLD_ROOT_NAME}
    assert sample(after, "apns_environment_check_success", apns_environment="sandbox") == 1
    fingerprint = rollout.new.certificate.fingerprint(hashes.SHA256()).hex()
    labels = {"apns_environment": "sandbox", "fingerprint_sha256": fingerprint}
    assert sample(after, "apns_environment_root_info", root=NEW_ROOT_NAME, **labels) == 1


async def test_an_unreachable_environment_is_reported_not_guessed(
    environments: dict[str, MockAPNs],
    rollout: RootRollout,
    workspace: Workspace,
    mock: MockAPNs,
    unused_tcp_port: int,
    run_exporter,
) -> None:
    """A check that gets no answer exports success 0 and no root for that environment."""
    ports = {"sandbox": environments["sandbox"].port, "production": unused_tcp_port}
    cfg = _config(workspace, ports, rollout, mock.port)
    async with run_exporter(cfg) as running:
        result = await _next(running, lambda r: True)
        s = await running.scrape()
    production = next(c for c in result.checks if c.environment == "production")
    assert production.error == "connect"
    assert sample(s, "apns_environment_check_success", apns_environment="production") == 0
    assert sample(s, "apns_environment_check_success", apns_environment="sandbox") == 1
    assert _roots(s, "production") == set()
