"""Credentials end to end: certificate auth, inventory, rotation on disk, keys and MDM."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from apns_exporter import config
from apns_exporter.mock.pki import (
    CertificateAuthority,
    ProviderCertificate,
    generate_ca,
    generate_signing_key,
)
from apns_exporter.mock.server import MockAPNs
from apns_exporter.probes import ProbeKind, ProbeResult, canary
from apns_exporter.service.exporter import Exporter
from tests.helpers import KEY_ID, TEAM_ID, TOPIC, Workspace, run_cli, sample

T = {"target": "t1", "apns_environment": "production"}
FAST = "global:\n  credential_check_interval: 200ms\n"


@pytest.fixture(scope="session")
def client_ca() -> CertificateAuthority:
    """The CA that issues provider (client) certificates, as Apple's WWDR does."""
    return generate_ca("test provider CA")


@pytest.fixture
async def mtls_mock(
    ca: CertificateAuthority, client_ca: CertificateAuthority, device: str
) -> AsyncIterator[MockAPNs]:
    """A production mock that requires a client certificate from the provider CA."""
    server = MockAPNs(
        ca.issue_server(), client_ca_pem=client_ca.cert_pem, require_client_certificate=True
    )
    server.devices.register(device, TOPIC)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


def _cert_target(
    workspace: Workspace,
    port: int,
    cert: Path,
    *,
    device: str | None = None,
    extra_auth: str = "",
    topic: str | None = TOPIC,
    canary_block: str | None = None,
    name: str = "t1",
) -> str:
    lines = [
        f"- name: {name}",
        "  environment: production",
        f"  endpoint: 127.0.0.1:{port}",
        f"  ca_file: {workspace.ca_file}",
        "  auth:",
        "    certificate:",
        f"      cert_file: {cert}",
        *(f"      {line}" for line in extra_auth.splitlines()),
        "  ping: {interval: 1s}",
        "  tls_check: null",
    ]
    if topic is not None:
        lines.append(f"  topic: {topic}")
    if canary_block is not None:
        lines.append(canary_block)
    elif device is not None:
        lines.append(f'  canary: {{interval: 1s, timeout: 1s, device_tokens: ["{device}"]}}')
    return "\n".join(lines) + "\n"


def _write_pem(workspace: Workspace, cert: ProviderCertificate, name: str) -> Path:
    path = workspace.path / f"{name}.pem"
    path.write_bytes(cert.cert_pem + cert.key_pem)
    return path


async def test_pem_certificate_auth_and_inventory(
    mtls_mock: MockAPNs,
    client_ca: CertificateAuthority,
    workspace: Workspace,
    device: str,
    run_exporter,
) -> None:
    """A PEM provider certificate authenticates over mTLS and its facts are exported."""
    cert = client_ca.issue_provider(TOPIC, team_id="TEAM123456")
    path = _write_pem(workspace, cert, "push")
    cfg = workspace.config(_cert_target(workspace, mtls_mock.port, path, device=device))
    async with run_exporter(cfg) as running:
        result = await running.wait_canary(ok=True)
        s = await running.scrape()
    assert result.pushes[0].status == 200
    assert sample(s, "apns_credential_up", **T) == 1
    expected_not_after = cert.certificate.not_valid_after_utc.timestamp()
    assert sample(s, "apns_client_certificate_not_after_timestamp_seconds", **T) == (
        expected_not_after
    )
    info = [dict(k) for (n, k), v in s.items() if n == "apns_client_certificate_info"]
    assert len(info) == 1
    assert info[0]["topics"] == f"{TOPIC},{TOPIC}.voip,{TOPIC}.complication"
    assert info[0]["environments"] == "production,sandbox"
    assert info[0]["mdm"] == "false"
    assert (
        sample(
            s,
            "apns_target_info",
            **T,
            host="127.0.0.1",
            port=str(mtls_mock.port),
            topic=TOPIC,
            auth_method="certificate",
        )
        == 1
    )


async def test_pkcs12_with_password_file(
    mtls_mock: MockAPNs,
    client_ca: CertificateAuthority,
    workspace: Workspace,
    device: str,
    run_exporter,
) -> None:
    """A password-protected PKCS#12 bundle with password_file authenticates."""
    cert = client_ca.issue_provider(TOPIC)
    bundle = workspace.path / "push.p12"
    bundle.write_bytes(cert.pkcs12(b"s3cret"))
    (workspace.path / "push.pass").write_text("s3cret\n")
    cfg = workspace.config(
        _cert_target(
            workspace,
            mtls_mock.port,
            bundle,
            device=device,
            extra_auth=f"password_file: {workspace.path / 'push.pass'}",
        )
    )
    async with run_exporter(cfg) as running:
        result = await running.wait_canary(ok=True)
    assert result.pushes[0].status == 200


async def test_wrong_environment_certificate_gets_goaway(
    mtls_mock: MockAPNs,
    client_ca: CertificateAuthority,
    workspace: Workspace,
    device: str,
    run_exporter,
) -> None:
    """A sandbox-only certificate against production ends in GOAWAY BadCertificateEnvironment."""
    cert = client_ca.issue_provider(TOPIC, environments=("sandbox",))
    path = _write_pem(workspace, cert, "sandbox")
    cfg = workspace.config(_cert_target(workspace, mtls_mock.port, path, device=device))
    async with run_exporter(cfg) as running:
        result = await running.wait_canary(ok=False)
        s = await running.scrape()
    assert sample(s, "apns_goaway_received_total", **T, reason="BadCertificateEnvironment") >= 1
    assert not result.ok


async def test_expired_client_certificate_is_a_tls_alert(
    mtls_mock: MockAPNs,
    client_ca: CertificateAuthority,
    workspace: Workspace,
    device: str,
    run_exporter,
) -> None:
    """An expired certificate is reported as expired and its handshake fails with the alert."""
    now = dt.datetime.now(dt.UTC)
    cert = client_ca.issue_provider(
        TOPIC, valid_from=now - dt.timedelta(days=400), valid_until=now - dt.timedelta(days=1)
    )
    path = _write_pem(workspace, cert, "expired")
    cfg = workspace.config(_cert_target(workspace, mtls_mock.port, path, device=device))
    async with run_exporter(cfg) as running:
        failed = await running.wait_canary(ok=False)
        s = await running.scrape()
    assert failed.error == "tls_handshake"
    assert "expired" in failed.message.lower()
    assert sample(s, "apns_credential_up", **T) == 0
    assert sample(s, "apns_credential_load_errors_total", **T, reason="expired") >= 1
    assert sample(s, "apns_connection_failures_total", **T, reason="tls_handshake") >= 1


async def test_symlink_swap_switches_certificate_without_a_failed_probe(
    mtls_mock: MockAPNs,
    client_ca: CertificateAuthority,
    workspace: Workspace,
    device: str,
    run_exporter,
) -> None:
    """A Kubernetes-style ..data swap is picked up: new connection, new metrics, no failures."""
    old = client_ca.issue_provider(TOPIC)
    new = client_ca.issue_provider(TOPIC)
    for name, cert in (("v1", old), ("v2", new)):
        (workspace.path / name).mkdir()
        (workspace.path / name / "push.pem").write_bytes(cert.cert_pem + cert.key_pem)
    (workspace.path / "..data").symlink_to("v1")
    (workspace.path / "push.pem").symlink_to("..data/push.pem")
    cfg = workspace.config(
        _cert_target(workspace, mtls_mock.port, workspace.path / "push.pem", device=device),
        extra=FAST,
    )
    results: list[ProbeResult] = []
    async with run_exporter(cfg) as running:
        running.exporter.listeners.append(results.append)
        await running.wait_canary(ok=True)
        tmp = workspace.path / "..data_tmp"
        tmp.symlink_to("v2")
        os.replace(tmp, workspace.path / "..data")  # atomic, as kubelet does it
        await running.wait_for(
            lambda r: r.probe is ProbeKind.CREDENTIALS and "reloaded" in " ".join(r.logs)
        )
        after = await running.wait_canary(ok=True)
        s = await running.scrape()
    fingerprint = new.certificate.fingerprint(hashes.SHA256()).hex()
    info = [dict(k) for (n, k), v in s.items() if n == "apns_client_certificate_info"]
    assert [i["fingerprint_sha256"] for i in info] == [fingerprint]
    assert after.ok
    assert [r for r in results if r.probe is ProbeKind.CANARY and not r.ok] == []
    assert sample(s, "apns_connection_attempts_total", **T) >= 2


async def test_swapped_certificate_with_another_topic_changes_the_canary_topic(
    mtls_mock: MockAPNs,
    client_ca: CertificateAuthority,
    workspace: Workspace,
    device: str,
    run_exporter,
) -> None:
    """With no topic configured, a certificate swap makes the canary send the new UID topic."""
    other_topic = "com.example.other"
    other_device = secrets.token_hex(32)
    mtls_mock.devices.register(other_device, other_topic)
    path = _write_pem(workspace, client_ca.issue_provider(TOPIC), "push")
    canary = f'  canary: {{interval: 1s, timeout: 1s, device_tokens: ["{other_device}"]}}'
    cfg = workspace.config(
        _cert_target(workspace, mtls_mock.port, path, topic=None, canary_block=canary),
        extra=FAST,
    )
    async with run_exporter(cfg) as running:
        before = await running.wait_canary()
        new = client_ca.issue_provider(other_topic)
        path.write_bytes(new.cert_pem + new.key_pem)
        await running.wait_for(
            lambda r: r.probe is ProbeKind.CREDENTIALS and "reloaded" in " ".join(r.logs)
        )
        after = await running.wait_canary(ok=True)
        s = await running.scrape()
    # Before: the old certificate's topic, which the device is not registered for.
    assert before.pushes[0].reason == "DeviceTokenNotForTopic"
    received = mtls_mock.devices.get(other_device)
    assert received is not None
    assert [n.topic for n in received.notifications][-1:] == [other_topic]
    assert after.pushes[0].status == 200
    info = [dict(k) for (n, k), v in s.items() if n == "apns_target_info"]
    assert [i["topic"] for i in info] == [other_topic]


async def test_broken_replacement_keeps_the_old_credential(
    mtls_mock: MockAPNs,
    client_ca: CertificateAuthority,
    workspace: Workspace,
    device: str,
    run_exporter,
) -> None:
    """A garbage replacement is counted as bad_pem while the old connection keeps working."""
    path = _write_pem(workspace, client_ca.issue_provider(TOPIC), "push")
    cfg = workspace.config(_cert_target(workspace, mtls_mock.port, path, device=device), extra=FAST)
    async with run_exporter(cfg) as running:
        await running.wait_canary(ok=True)
        path.write_text("this is not a certificate\n")
        await running.wait_for(lambda r: r.probe is ProbeKind.CREDENTIALS and not r.ok)
        still = await running.wait_canary()
        s = await running.scrape()
    assert still.ok
    assert sample(s, "apns_credential_up", **T) == 0
    assert sample(s, "apns_credential_load_errors_total", **T, reason="bad_pem") >= 1


async def test_mdm_push_reaches_the_device(
    client_ca: CertificateAuthority, ca: CertificateAuthority, workspace: Workspace, run_exporter
) -> None:
    """An MDM target sends {"mdm": PushMagic} without a topic header and the device gets it."""
    mdm = client_ca.issue_mdm()
    topic = mdm.topics[0]
    device = secrets.token_hex(32)
    server = MockAPNs(
        ca.issue_server(), client_ca_pem=client_ca.cert_pem, require_client_certificate=True
    )
    server.devices.register(device, topic)
    await server.start("127.0.0.1", 0)
    try:
        path = _write_pem(workspace, mdm, "mdm")
        block = (
            "  canary:\n    interval: 1s\n    timeout: 1s\n    push_type: mdm\n"
            f"    push_magic: 7B2E0A44-MAGIC\n    priority: 10\n"
            f'    device_tokens: ["{device}"]\n'
        )
        cfg = workspace.config(
            _cert_target(workspace, server.port, path, topic=None, canary_block=block)
        )
        async with run_exporter(cfg) as running:
            result = await running.wait_canary()
            s = await running.scrape()
        received = server.devices.received(device)
    finally:
        await server.stop()
    assert result.ok, result.message
    assert received[0].payload == b'{"mdm":"7B2E0A44-MAGIC"}'
    assert received[0].push_type == "mdm"
    info = [dict(k) for (n, k), v in s.items() if n == "apns_client_certificate_info"]
    assert info[0]["mdm"] == "true"


async def test_inventory_only_target_makes_no_connection(
    mtls_mock: MockAPNs, client_ca: CertificateAuthority, workspace: Workspace, run_exporter
) -> None:
    """An inventory-only target exports its certificate's expiry and never dials APNs."""
    path = _write_pem(workspace, client_ca.issue_mdm(), "vendor")
    block = _cert_target(workspace, mtls_mock.port, path, topic=None) + "  inventory_only: true\n"
    async with run_exporter(workspace.config(block, extra=FAST)) as running:
        await running.wait_for(lambda r: r.probe is ProbeKind.CREDENTIALS)
        s = await running.scrape()
    assert sample(s, "apns_client_certificate_not_after_timestamp_seconds", **T) > time.time()
    # It never connects, so it carries no connection series at all (docs/metrics.md).
    assert sample(s, "apns_connection_attempts_total", **T) is None
    assert mtls_mock.stats.connections == 0


async def test_signing_key_rotation_date_and_revocation_streak(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """rotate_by is exported, and InvalidProviderToken after success grows the revocation streak."""
    target = workspace.target(mock.port, devices=(device,)).replace(
        f"      team_id: {TEAM_ID}\n", f"      team_id: {TEAM_ID}\n      rotate_by: 2027-03-31\n"
    )
    async with run_exporter(workspace.config(target)) as running:
        await running.wait_canary(ok=True)
        mock.keys.revoke(KEY_ID)
        await mock.goaway()  # a token already accepted on a connection stays accepted there
        for _ in range(2):
            await running.wait_for(
                lambda r: (
                    r.probe is ProbeKind.CANARY
                    and any(p.reason == "InvalidProviderToken" for p in r.pushes)
                )
            )
        s = await running.scrape()
    assert sample(s, "apns_signing_key_rotation_due_timestamp_seconds", **T) == (
        dt.datetime(2027, 3, 31, tzinfo=dt.UTC).timestamp()
    )
    assert sample(s, "apns_signing_key_invalid_streak", **T) >= 2
    assert sample(s, "apns_signing_key_last_verified_timestamp_seconds", **T) > 0


async def test_rotated_p8_key_is_used_on_a_new_connection(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """Replacing the .p8 with a new key mints a new token on a new connection, no failures."""
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)), extra=FAST)
    results: list[ProbeResult] = []
    async with run_exporter(cfg) as running:
        running.exporter.listeners.append(results.append)
        await running.wait_canary(ok=True)
        new_key = generate_signing_key()
        mock.add_signing_key(KEY_ID, TEAM_ID, new_key.public_key, topics=[TOPIC])
        workspace.key_file.write_bytes(new_key.private_pem)
        await running.wait_for(
            lambda r: r.probe is ProbeKind.CREDENTIALS and "reloaded" in " ".join(r.logs)
        )
        after = await running.wait_canary()
        s = await running.scrape()
    assert after.ok, after.message
    assert [r for r in results if r.probe is ProbeKind.CANARY and not r.ok] == []
    assert sample(s, "apns_provider_token_refreshes_total", **T) == 2


async def test_targets_sharing_a_key_never_churn_tokens_over_three_hours(
    ca: CertificateAuthority, signing_key, workspace: Workspace
) -> None:
    """Two targets on one key, pushing every 5 simulated minutes for 3 hours, get no 429."""
    now = [time.time()]
    device = secrets.token_hex(32)
    server = MockAPNs(ca.issue_server(), clock=lambda: now[0])
    server.add_signing_key(KEY_ID, TEAM_ID, signing_key.public_key, topics=[TOPIC])
    server.devices.register(device, TOPIC)
    await server.start("127.0.0.1", 0)
    try:
        targets = workspace.target(server.port, name="a", devices=(device,), interval="1h")
        targets += workspace.target(server.port, name="b", devices=(device,), interval="1h")
        exporter = Exporter(config.load(workspace.config(targets)), clock=lambda: now[0])
        async with exporter.running():
            outcomes = []
            for _ in range(36):
                now[0] += 300
                for name in ("a", "b"):
                    snapshot = exporter.targets[name].snapshot()
                    result = await canary.run(snapshot.start(ProbeKind.CANARY))
                    outcomes += [(p.status, p.reason) for p in result.pushes]
    finally:
        await server.stop()
    assert set(outcomes) == {(200, "none")}
    assert server.stats.count(429, "TooManyProviderTokenUpdates") == 0


def test_config_check_warns_about_certificate_mismatches(
    client_ca: CertificateAuthority, workspace: Workspace
) -> None:
    """--config.check names a topic missing from the certificate and a wrong environment."""
    cert = client_ca.issue_provider("com.example.other", environments=("sandbox",))
    path = _write_pem(workspace, cert, "other")
    cfg = workspace.config(_cert_target(workspace, 443, path))
    done = run_cli("--config.check", f"--config.file={cfg}")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert any(TOPIC in w and "com.example.other" in w for w in warnings), warnings
    assert any("sandbox" in w and "production" in w for w in warnings), warnings
