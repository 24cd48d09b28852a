"""Operating the exporter: reload, inspection pages, sharding and the probe subcommand."""

from __future__ import annotations

import asyncio
import base64
import signal
import sys

import aiohttp

from apns_exporter import config
from apns_exporter.mock.server import MockAPNs
from apns_exporter.service.exporter import Exporter, shard_of
from tests.helpers import Workspace, parse_samples, sample, start_cli

T1 = {"target": "t1", "apns_environment": "production"}


async def _post(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(url) as response:
        return response.status, await response.text()


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_reload_adds_and_removes_targets_and_keeps_unchanged_ones(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """A reload starts added targets, drops removed ones' series and leaves t1's counters alone."""
    t1 = workspace.target(mock.port, name="t1", devices=(device,))
    t2 = workspace.target(mock.port, name="t2", devices=(device,))
    cfg = workspace.config(t1)
    async with run_exporter(cfg) as running:
        await running.wait_canary("t1", ok=True)
        before = await running.scrape()
        workspace.config(t1 + t2)
        assert await _post(running.url + "/-/reload") == (200, "Reloaded\n")
        await running.wait_canary("t2", ok=True)
        await running.wait_canary("t1", ok=True)
        during = await running.scrape()
        workspace.config(t1)
        assert (await _post(running.url + "/-/reload"))[0] == 200
        after = await running.scrape()
    pushes = "apns_canary_pushes_total"
    assert sample(during, pushes, **T1, kind="device") > sample(before, pushes, **T1, kind="device")
    # The same connection served t1 throughout: no reconnect, no counter reset.
    assert sample(after, "apns_connection_attempts_total", **T1) == 1
    assert sample(during, "apns_up", target="t2", apns_environment="production") == 1
    assert not [key for key in after if ("target", "t2") in key[1]]
    assert sample(after, "apns_exporter_config_last_reload_successful") == 1


async def test_broken_config_is_reported_and_not_applied(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """POST /-/reload with a broken file answers 500 with the error and changes nothing."""
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    async with run_exporter(cfg) as running:
        await running.wait_canary(ok=True)
        cfg.write_text(cfg.read_text() + "    colour: blue\n")
        status, text = await _post(running.url + "/-/reload")
        still = await running.wait_canary(ok=True)
        s = await running.scrape()
        assert (await _get(running.url + "/-/reload"))[0] == 405
    assert status == 500
    assert "unknown key 'colour'" in text
    assert still.target == "t1"
    assert sample(s, "apns_exporter_config_last_reload_successful") == 0
    assert sample(s, "apns_up", **T1) == 1


async def test_pages_show_targets_and_no_secrets(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """Landing, /config and /probes describe the target and never show key material."""
    cfg = workspace.config(workspace.target(mock.port, devices=(device,), auth_check=True))
    key_body = "".join(workspace.key_file.read_text().splitlines()[1:-1])
    async with run_exporter(cfg) as running:
        await running.wait_canary(ok=True)
        pages = {
            path: await _get(running.url + path)
            for path in ("/", "/config", "/probes?target=t1", "/metrics")
        }
        missing = await _get(running.url + "/probes?target=nope")
    assert all(status == 200 for status, _ in pages.values())
    landing, config_page, probes = pages["/"][1], pages["/config"][1], pages["/probes?target=t1"][1]
    assert "<td>t1</td>" in landing
    assert 'href="probes?target=t1"' in landing
    assert "name: t1" in config_page
    assert f"{device[:8]}…" in config_page
    assert device not in config_page
    assert "Logs for the probe:" in probes
    assert "auth_check push: status=400 reason=BadDeviceToken" in probes
    assert missing[0] == 404
    for _, body in pages.values():
        assert key_body[:40] not in body


def test_shards_partition_the_targets(workspace: Workspace) -> None:
    """Every target lands in exactly one of N shards, and the split is stable."""
    blocks = "".join(workspace.target(443, name=f"t{i}", devices=("ab" * 32,)) for i in range(30))
    cfg = config.load(workspace.config(blocks))
    shards = [{t.name for t in Exporter(cfg, shard=(i, 3))._mine(cfg)} for i in range(3)]
    assert set.union(*shards) == {f"t{i}" for i in range(30)}
    assert sum(len(s) for s in shards) == 30
    assert all(shards)
    assert shard_of("t7", 3) == shard_of("t7", 3)


async def _probe_cli(cfg: str, target: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "apns_exporter",
        "probe",
        f"--config.file={cfg}",
        f"--target={target}",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_probe_subcommand_healthy_and_failing(
    mock: MockAPNs, workspace: Workspace, device: str
) -> None:
    """`apns-exporter probe` prints each phase and exits 0 when healthy, 1 when not."""
    good = workspace.target(mock.port, name="good", devices=(device,), auth_check=True)
    bad = workspace.target(mock.port, name="bad", devices=("ab" * 32,))
    cfg = str(workspace.config(good + bad))
    code, out = await _probe_cli(cfg, "good")
    assert code == 0, out
    assert "device push: 200 none" in out
    assert "auth_check push: 400 BadDeviceToken" in out
    assert "PING round trip" in out
    assert "good: OK" in out
    code, out = await _probe_cli(cfg, "bad")
    assert code == 1
    assert "FAILED at layer apns" in out
    assert "device push: 400 BadDeviceToken" in out
    code, out = await _probe_cli(cfg, "nope")
    assert code == 2
    assert "no target named 'nope'" in out


async def test_sighup_reloads_a_running_process(
    mock: MockAPNs, workspace: Workspace, device: str, unused_tcp_port: int
) -> None:
    """SIGHUP makes a running exporter pick up a new target without a restart."""
    cfg = workspace.config(workspace.target(mock.port, name="t1", devices=(device,)))
    url = f"http://127.0.0.1:{unused_tcp_port}/metrics"
    proc = await start_cli(
        f"--config.file={cfg}",
        f"--web.listen-address=127.0.0.1:{unused_tcp_port}",
        ready=b"listening on",
    )
    try:
        workspace.config(
            workspace.target(mock.port, name="t1", devices=(device,))
            + workspace.target(mock.port, name="t2", devices=(device,))
        )
        proc.send_signal(signal.SIGHUP)
        async with asyncio.timeout(30):
            while b"configuration reloaded" not in await proc.stderr.readline():
                pass
        samples = parse_samples((await _get(url))[1])
        assert (
            sample(
                samples,
                "apns_target_info",
                target="t2",
                apns_environment="production",
                host="127.0.0.1",
                port=str(mock.port),
                topic="com.example.app",
                auth_method="token",
            )
            == 1
        )
    finally:
        proc.terminate()
        await proc.wait()


async def test_web_config_file_secures_every_endpoint(
    mock: MockAPNs, workspace: Workspace, device: str, ca, unused_tcp_port: int
) -> None:
    """--web.config.file serves /metrics over TLS with basic auth; a bad file refuses to start."""
    import ssl

    import bcrypt

    cert, key = ca.issue_server().write(workspace.path, "web")
    hashed = bcrypt.hashpw(b"scrape-pass", bcrypt.gensalt(rounds=4)).decode()
    web_yml = workspace.path / "web.yml"
    web_yml.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
        f"basic_auth_users:\n  prometheus: {hashed}\n"
    )
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    bad = workspace.path / "bad-web.yml"
    bad.write_text("basic_auth_users:\n  prometheus: not-a-hash\n")
    refused = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "apns_exporter",
        f"--config.file={cfg}",
        f"--web.config.file={bad}",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(refused.communicate(), 60)
    assert refused.returncode == 1
    assert f"{bad}" in err.decode()
    assert "Traceback" not in err.decode()

    proc = await start_cli(
        f"--config.file={cfg}",
        f"--web.config.file={web_yml}",
        f"--web.listen-address=127.0.0.1:{unused_tcp_port}",
        ready=b"listening on https://",
    )
    try:
        client_ctx = ssl.create_default_context(cafile=str(workspace.ca_file))
        url = f"https://127.0.0.1:{unused_tcp_port}/metrics"
        async with aiohttp.ClientSession() as session:
            async with session.get(url, ssl=client_ctx) as response:
                assert response.status == 401
            token = base64.b64encode(b"prometheus:scrape-pass").decode()
            headers = {"Authorization": f"Basic {token}"}
            async with session.get(url, ssl=client_ctx, headers=headers) as response:
                assert response.status == 200
                assert "apns_up" in await response.text()
    finally:
        proc.terminate()
        await proc.wait()


async def test_auto_reload_picks_up_a_changed_file(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """With auto-reload on, editing the file adds a target without SIGHUP or HTTP."""
    t1 = workspace.target(mock.port, name="t1", devices=(device,))
    cfg = workspace.config(t1)
    async with run_exporter(cfg) as running:
        watcher = asyncio.create_task(running.exporter.watch_file(0.1))
        try:
            await running.wait_canary("t1", ok=True)
            workspace.config(t1 + workspace.target(mock.port, name="t2", devices=(device,)))
            added = await running.wait_canary("t2", ok=True)
        finally:
            watcher.cancel()
    assert added.target == "t2"


async def test_a_shard_exports_its_index_count_and_target_counts(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """A sharded exporter serves its shard I/N and how many of the configured targets it probes."""
    names = [f"t{i}" for i in range(6)]
    cfg = workspace.config(
        "".join(workspace.target(mock.port, name=n, auth_check=True) for n in names)
    )
    mine = [n for n in names if shard_of(n, 3) == 2]
    async with run_exporter(cfg, shard=(2, 3)) as running:
        s = await running.scrape()
    assert sample(s, "apns_exporter_shard_index") == 2
    assert sample(s, "apns_exporter_shards") == 3
    assert sample(s, "apns_exporter_targets_configured") == 6
    assert sample(s, "apns_exporter_targets_probed") == len(mine)
    env = {"apns_environment": "production"}
    for name in mine:
        assert sample(s, "apns_probe_interval_seconds", target=name, probe="ping", **env) > 0
    intervals = {
        dict(labels)["target"] for key, labels in s if key == "apns_probe_interval_seconds"
    }
    assert intervals == set(mine)
