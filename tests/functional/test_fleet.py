"""The fleet inventory end to end: target files, reloads, discovery, owner labels, topic trap."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization

from apns_exporter.errors import ConfigError
from apns_exporter.mock.pki import CertificateAuthority, ProviderCertificate, generate_ca
from apns_exporter.mock.server import MockAPNs
from apns_exporter.probes import ProbeKind
from tests.helpers import CLI, KEY_ID, TEAM_ID, TOPIC, Samples, Workspace, parse_samples, sample

WAIT = 30.0
# Configs written here are served, and the environment check would dial Apple's hosts.
OFF = "global: {environment_checks: {enabled: false}}\n"


@pytest.fixture(scope="module")
def client_ca() -> CertificateAuthority:
    """The CA that issues provider certificates, as Apple's WWDR does."""
    return generate_ca("fleet provider CA")


def _ping_target(workspace: Workspace, port: int, name: str, extra: str = "") -> str:
    """A token target that only PINGs the mock every 200 ms."""
    return (
        f"- name: {name}\n"
        "  environment: production\n"
        f"  endpoint: 127.0.0.1:{port}\n"
        f"  topic: {TOPIC}\n"
        f"  ca_file: {workspace.ca_file}\n"
        f"  auth: {{token: {{key_file: {workspace.key_file}, key_id: {KEY_ID}, "
        f"team_id: {TEAM_ID}}}}}\n"
        "  ping: {interval: 200ms}\n"
        "  tls_check: null\n" + extra
    )


def _inventory_target(name: str, cert: Path, extra: str = "") -> str:
    """An inventory-only certificate target (no connection)."""
    return (
        f"- name: {name}\n"
        "  environment: production\n"
        "  inventory_only: true\n"
        f"  auth: {{certificate: {{cert_file: {cert}}}}}\n" + extra
    )


def _write_pem(path: Path, cert: ProviderCertificate) -> Path:
    path.write_bytes(cert.cert_pem + cert.key_pem)
    return path


def _infos(samples: Samples, name: str = "apns_target_info") -> dict[str, dict[str, str]]:
    return {dict(k)["target"]: dict(k) for (n, k), _ in samples.items() if n == name}


async def _until(condition: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    """Poll ``condition`` until it holds, failing with ``what`` after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110  # a bounded poll of state with no event
            await asyncio.sleep(0.05)
    assert condition(), what


class Cli:
    """The exporter as a user runs it: a subprocess on a loopback port."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.url = proc, f"http://127.0.0.1:{port}"

    async def scrape(self) -> Samples:
        async with aiohttp.ClientSession() as session, session.get(self.url + "/metrics") as r:
            return parse_samples(await r.text())

    async def reload(self) -> tuple[int, str]:
        async with aiohttp.ClientSession() as s, s.post(self.url + "/-/reload") as r:
            return r.status, await r.text()

    async def scrape_until(self, check: Callable[[Samples], bool], what: str) -> Samples:
        async with asyncio.timeout(WAIT):
            while not check(found := await self.scrape()):  # noqa: ASYNC110  # bounded poll
                await asyncio.sleep(0.05)
        assert check(found), what
        return found


async def _start(cfg: Path, port: int, *flags: str) -> Cli:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        f"--config.file={cfg}",
        f"--web.listen-address=127.0.0.1:{port}",
        *flags,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    async with asyncio.timeout(WAIT):
        while b"listening on" not in (line := await proc.stderr.readline()):
            assert line, "exporter exited before listening"
    # Drain the log so the pipe never fills while the test runs.
    asyncio.get_running_loop().create_task(_drain(proc))
    return Cli(proc, port)


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stderr is not None
    while line := await proc.stderr.readline():
        if b"Traceback" in line or b"level=error" in line:
            print(line.decode(), end="")


async def test_target_files_added_changed_and_removed_under_a_running_exporter(
    mock: MockAPNs, workspace: Workspace, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """POST /-/reload picks up a new target file, a changed one and a removed one, live."""
    confd = workspace.path / "conf.d"
    confd.mkdir()
    (confd / "a.yaml").write_text(_ping_target(workspace, mock.port, "a1"))
    cfg = workspace.path / "main.yml"
    cfg.write_text(
        OFF + f"target_files: [conf.d]\ntargets:\n{_ping_target(workspace, mock.port, 't0')}"
    )
    cli = await _start(cfg, unused_tcp_port_factory())
    try:
        first = await cli.scrape()
        (confd / "b.yml").write_text(_ping_target(workspace, mock.port, "b1"))
        added = await cli.reload()
        after_add = await cli.scrape()
        changed_file = "labels: {owner: acme}\ntargets:\n" + _ping_target(
            workspace, mock.port, "a1"
        )
        (confd / "a.yaml").write_text(changed_file)
        changed = await cli.reload()
        after_change = await cli.scrape()
        (confd / "a.yaml").unlink()
        removed = await cli.reload()
        after_remove = await cli.scrape()
    finally:
        cli.proc.terminate()
        await cli.proc.wait()
    assert sorted(_infos(first)) == ["a1", "t0"]
    assert (added[0], changed[0], removed[0]) == (200, 200, 200), removed
    assert sorted(_infos(after_add)) == ["a1", "b1", "t0"]
    assert _infos(after_change)["a1"]["owner"] == "acme"
    assert sorted(_infos(after_remove)) == ["b1", "t0"]
    assert (
        sample(after_remove, "apns_connection_up", target="a1", apns_environment="production")
        is None
    )


async def test_broken_target_file_on_reload_leaves_the_rest_of_the_fleet_running(
    mock: MockAPNs, workspace: Workspace, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """SIGHUP with one broken file: located error, its old targets kept, other PINGs go on."""
    confd = workspace.path / "conf.d"
    confd.mkdir()
    (confd / "good.yaml").write_text(_ping_target(workspace, mock.port, "g1"))
    (confd / "bad.yaml").write_text(_ping_target(workspace, mock.port, "b1"))
    cfg = workspace.path / "main.yml"
    cfg.write_text(OFF + "target_files: ['conf.d/*.yaml']\n")
    cli = await _start(cfg, unused_tcp_port_factory())
    g1 = {"target": "g1", "apns_environment": "production"}
    try:
        await cli.scrape_until(
            lambda s: (sample(s, "apns_ping_last_success_timestamp_seconds", **g1) or 0) > 0,
            "g1 never PINGed",
        )
        (confd / "bad.yaml").write_text(
            _ping_target(workspace, mock.port, "b1", extra="  colour: blue\n")
        )
        (confd / "new.yaml").write_text("- name: n1\n  environment: nowhere\n")
        status, body = await cli.reload()
        reloaded_at = time.time()
        after = await cli.scrape_until(
            lambda s: (
                (sample(s, "apns_ping_last_success_timestamp_seconds", **g1) or 0) > reloaded_at
            ),
            "g1 stopped PINGing after a broken file was reloaded",
        )
        cli.proc.send_signal(signal.SIGHUP)  # the same through a signal: still running
        still = await cli.scrape_until(
            lambda s: (
                (sample(s, "apns_ping_last_success_timestamp_seconds", **g1) or 0)
                > time.time() - 0.5
            ),
            "g1 stopped PINGing after SIGHUP",
        )
    finally:
        cli.proc.terminate()
        await cli.proc.wait()
    assert status == 500
    assert f"{confd / 'bad.yaml'}:9:3: [0]: unknown key 'colour'" in body
    assert f"{confd / 'new.yaml'}:2:3: [0].environment: must be" in body
    # The broken file's target keeps its previous definition; the new broken one is absent.
    assert sorted(_infos(after)) == ["b1", "g1"]
    assert sample(after, "apns_exporter_config_last_reload_successful") == 0
    assert sample(still, "apns_connection_up", **g1) == 1


async def test_auto_reload_follows_target_files_without_a_signal(
    workspace: Workspace, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """With --config.auto-reload-interval, a file added to conf.d, then removed, is followed."""
    confd = workspace.path / "conf.d"
    confd.mkdir()
    (confd / "a.yaml").write_text(
        _ping_target(workspace, 443, "a1").replace("ping:", "inventory_only: true\n  ping:")
    )
    cfg = workspace.path / "main.yml"
    cfg.write_text(OFF + "target_files: [conf.d]\n")
    cli = await _start(cfg, unused_tcp_port_factory(), "--config.auto-reload-interval=200ms")
    try:
        (confd / "b.yaml").write_text(
            _ping_target(workspace, 443, "b1").replace("ping:", "inventory_only: true\n  ping:")
        )
        added = await cli.scrape_until(lambda s: "b1" in _infos(s), "b.yaml was not picked up")
        (confd / "a.yaml").unlink()
        removed = await cli.scrape_until(lambda s: "a1" not in _infos(s), "a.yaml removal missed")
    finally:
        cli.proc.terminate()
        await cli.proc.wait()
    assert sorted(_infos(added)) == ["a1", "b1"]
    assert sorted(_infos(removed)) == ["b1"]


def test_duplicate_names_across_files_name_both_places(workspace: Workspace) -> None:
    """--config.check refuses a name used in two files, naming file:line:column of both."""
    confd = workspace.path / "conf.d"
    confd.mkdir()
    (confd / "a.yaml").write_text(_ping_target(workspace, 443, "same"))
    (confd / "b.yaml").write_text("\n" + _ping_target(workspace, 443, "same"))
    cfg = workspace.path / "main.yml"
    cfg.write_text(OFF + "target_files: [conf.d]\n")
    done = subprocess.run(
        [*CLI, "--config.check", f"--config.file={cfg}"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert (
        f"error: {confd / 'b.yaml'}:2:3: duplicate target name 'same' "
        f"(also at {confd / 'a.yaml'}:1:3); give each target its own name"
    ) in done.stderr
    assert "Traceback" not in done.stderr


def test_config_check_checks_every_target_file(workspace: Workspace) -> None:
    """--config.check locates a problem in a target file, and a broken key file named in one."""
    confd = workspace.path / "conf.d"
    confd.mkdir()
    (confd / "ok.yaml").write_text(_ping_target(workspace, 443, "ok"))
    broken_key = workspace.path / "AuthKey_BROKEN.p8"
    broken_key.write_text("not a key")
    target = _ping_target(workspace, 443, "k1").replace(str(workspace.key_file), str(broken_key))
    (confd / "key.yaml").write_text("labels: {team: push}\ntargets:\n" + target)
    (confd / "typo.yaml").write_text("- name: t\n  environment: production\n  auht: {}\n")
    cfg = workspace.path / "main.yml"
    cfg.write_text(OFF + "target_files: [conf.d]\n")
    done = subprocess.run(
        [*CLI, "--config.check", f"--config.file={cfg}"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert f"{confd / 'typo.yaml'}:3:3: [0]: unknown key 'auht'" in done.stderr
    assert f"{confd / 'key.yaml'}:" in done.stderr
    assert f"target k1: signing key {broken_key}" in done.stderr
    assert "Traceback" not in done.stderr


async def test_owner_labels_are_on_apns_target_info_only(
    mock: MockAPNs, workspace: Workspace, run_exporter
) -> None:
    """A target's labels (and its file's) appear on apns_target_info and on no other series."""
    confd = workspace.path / "conf.d"
    confd.mkdir()
    target = _ping_target(workspace, mock.port, "t1", extra="  labels: {owner: acme}\n")
    (confd / "a.yaml").write_text("labels: {owner: nobody, tier: gold}\ntargets:\n" + target)
    cfg = workspace.path / "main.yml"
    cfg.write_text(OFF + "target_files: [conf.d]\n")
    async with run_exporter(cfg) as running:
        await running.wait_for(lambda r: r.probe is ProbeKind.PING and r.ok)
        s = await running.scrape()
    labelled = {n for (n, k), _ in s.items() if any(name in ("owner", "tier") for name, _ in k)}
    assert labelled == {"apns_target_info"}
    info = _infos(s)["t1"]
    assert (info["owner"], info["tier"]) == ("acme", "gold")


def _secret_volume(root: Path, version: str, payload: dict[str, bytes]) -> None:
    """Lay out (or update) a Kubernetes Secret volume: files behind an atomically swapped ..data."""
    (root / version).mkdir()
    for name, data in payload.items():
        (root / version / name).write_bytes(data)
        if not (root / name).is_symlink():
            (root / name).symlink_to(f"..data/{name}")
    tmp = root / "..data_tmp"
    tmp.symlink_to(version)
    os.replace(tmp, root / "..data")


async def test_discovery_lists_pem_der_pkcs12_and_p8_and_follows_changes(
    client_ca: CertificateAuthority, workspace: Workspace, run_exporter, signing_key
) -> None:
    """PEM, DER+key, PKCS#12 and .p8 files become targets; a ..data swap and removals follow."""
    pem = client_ca.issue_provider("com.example.pem")
    der = client_ca.issue_provider("com.example.der")
    p12 = client_ca.issue_provider("com.example.p12")
    secret = workspace.path / "secret"
    secret.mkdir()
    _secret_volume(secret, "v1", {"tls.crt": pem.cert_pem, "tls.key": pem.key_pem})
    plain = workspace.path / "plain"
    plain.mkdir()
    (plain / "push.cer").write_bytes(der.certificate.public_bytes(serialization.Encoding.DER))
    (plain / "push.key").write_bytes(der.key_pem)
    (plain / "bundle.p12").write_bytes(p12.pkcs12(b"pw"))
    (plain / "AuthKey_ABCDE12345.p8").write_bytes(signing_key.private_pem)
    (plain / "junk.pem").write_text("-----BEGIN CERTIFICATE-----\nnope\n")
    (plain / "notes.txt").write_text("ignored: not a credential's name")
    (workspace.path / "p12.pass").write_text("pw\n")
    cfg = workspace.path / "main.yml"
    cfg.write_text(
        OFF + "discover:\n"
        "  - name: vault\n"
        "    paths: [secret/*, plain/*]\n"
        f"    team_id: {TEAM_ID}\n"
        "    password_file: p12.pass\n"
        "    certificate_name: 'cert-{topic}'\n"
        "    labels: {owner: platform}\n"
        "    interval: 100ms\n"
    )
    async with run_exporter(cfg) as running:
        exporter = running.exporter
        wanted = {"cert-com.example.pem", "cert-com.example.der", "cert-com.example.p12"}
        wanted.add(f"{TEAM_ID}-ABCDE12345")
        await _until(lambda: set(exporter.targets) == wanted, "not every credential was listed")
        first = await running.scrape()
        renewed = client_ca.issue_provider("com.example.renewed")
        _secret_volume(secret, "v2", {"tls.crt": renewed.cert_pem, "tls.key": renewed.key_pem})
        (plain / "AuthKey_ABCDE12345.p8").unlink()
        await _until(
            lambda: (
                "cert-com.example.renewed" in exporter.targets
                and "cert-com.example.pem" not in exporter.targets
                and f"{TEAM_ID}-ABCDE12345" not in exporter.targets
            ),
            "the ..data swap or the removed key was not noticed",
        )
        later = await running.scrape()
    info = _infos(first)
    assert set(info) == wanted
    assert {i["owner"] for i in info.values()} == {"platform"}
    assert info[f"{TEAM_ID}-ABCDE12345"]["auth_method"] == "token"
    errors = {"source": "vault", "reason": "bad_pem"}
    # Counted once, though scanned many times.
    assert sample(later, "apns_discovery_errors_total", **errors) == 1
    assert sample(later, "apns_discovery_targets", source="vault") == 3
    assert "cert-com.example.pem" not in _infos(later)


async def test_renewed_mdm_certificate_with_another_topic_raises_the_topic_change(
    client_ca: CertificateAuthority, workspace: Workspace, run_exporter
) -> None:
    """A configured and a discovered MDM certificate swapped for another UID export both topics."""
    old, new = client_ca.issue_mdm(), client_ca.issue_mdm()
    configured = _write_pem(workspace.path / "vendor.pem", old)
    found_dir = workspace.path / "found"
    found_dir.mkdir()
    discovered = _write_pem(found_dir / "customer.pem", old)
    cfg = workspace.path / "main.yml"
    cfg.write_text(
        "global: {credential_check_interval: 100ms, environment_checks: {enabled: false}}\n"
        "discover:\n"
        "  - {name: mdm, paths: [found/*.pem], certificate_name: 'd-{serial}', interval: 100ms}\n"
        "targets:\n" + _inventory_target("vendor", configured)
    )
    old_name = f"d-{old.certificate.serial_number:x}"
    new_name = f"d-{new.certificate.serial_number:x}"
    async with run_exporter(cfg) as running:
        await running.wait_for(lambda r: r.target == "vendor" and r.probe is ProbeKind.CREDENTIALS)
        await running.wait_for(lambda r: r.target == old_name and r.probe is ProbeKind.CREDENTIALS)
        before = await running.scrape()
        _write_pem(configured, new)
        _write_pem(discovered, new)
        for name in ("vendor", new_name):
            await running.wait_for(
                lambda r, name=name: (
                    r.target == name
                    and r.probe is ProbeKind.CREDENTIALS
                    and r.certificate is not None
                    and r.certificate.uid == new.topics[0]
                )
            )
        after = await running.scrape()
    assert not [k for (n, k), _ in before.items() if n.startswith("apns_client_certificate_topic")]
    for name in ("vendor", new_name):
        labels = {"target": name, "apns_environment": "production"}
        stamp = sample(after, "apns_client_certificate_topic_changed_timestamp_seconds", **labels)
        assert stamp is not None
        assert stamp > time.time() - WAIT
        change = {**labels, "previous_topic": old.topics[0], "topic": new.topics[0]}
        assert sample(after, "apns_client_certificate_topic_change_info", **change) == 1


async def test_a_target_file_whose_new_key_is_broken_is_refused_alone(
    workspace: Workspace, run_exporter
) -> None:
    """A changed file naming an unloadable key keeps its old target; another file still applies."""
    confd = workspace.path / "conf.d"
    confd.mkdir()
    inventory = "  inventory_only: true\n"
    (confd / "a.yaml").write_text(_ping_target(workspace, 443, "a1", inventory))
    cfg = workspace.path / "main.yml"
    cfg.write_text(OFF + "target_files: [conf.d]\n")
    broken = workspace.path / "AuthKey_BROKEN0000.p8"
    broken.write_text("not a key")
    async with run_exporter(cfg) as running:
        exporter = running.exporter
        before = exporter.targets["a1"].config
        changed = _ping_target(workspace, 443, "a1", inventory)
        (confd / "a.yaml").write_text(changed.replace(str(workspace.key_file), str(broken)))
        (confd / "b.yaml").write_text(_ping_target(workspace, 443, "b1", inventory))
        with pytest.raises(ConfigError) as caught:
            await exporter.reload_file()
        s = await running.scrape()
    (issue,) = caught.value.issues
    assert str(issue).startswith(f"{confd / 'a.yaml'}:6:")
    assert "target a1: signing key" in str(issue)
    assert exporter.targets["a1"].config == before
    assert sorted(_infos(s)) == ["a1", "b1"]
    assert sample(s, "apns_exporter_config_last_reload_successful") == 0
