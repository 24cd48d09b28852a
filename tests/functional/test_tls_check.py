"""tls_check: the server chain's expiry, identity and trust, and CA switches, per target."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from apns_exporter.mock.pki import CertificateAuthority, generate_ca
from apns_exporter.mock.rollout import (
    NEW_ROOT,
    NEW_ROOT_NAME,
    OLD_ROOT,
    OLD_ROOT_NAME,
    generate_rollout,
)
from apns_exporter.mock.server import MockAPNs
from apns_exporter.probes import ProbeKind
from tests.helpers import KEY_ID, TEAM_ID, TOPIC, Workspace, sample

T = {"target": "t1", "apns_environment": "production"}


def _with_tls_check(workspace: Workspace, port: int, device: str) -> str:
    return workspace.target(port, devices=(device,)) + "  tls_check: {interval: 1s}\n"


def _info(samples: dict) -> dict[str, str]:
    rows = [
        dict(labels)
        for (name, labels), v in samples.items()
        if name == "apns_server_certificate_info" and v == 1
    ]
    assert len(rows) == 1, rows
    return rows[0]


async def test_trusted_chain_is_described(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """A chain from the configured CA verifies via ca_file, not the system store, and is shown."""
    cfg = workspace.config(_with_tls_check(workspace, mock.port, device))
    async with run_exporter(cfg) as running:
        result = await running.wait_for(lambda r: r.probe is ProbeKind.TLS)
        s = await running.scrape()
    assert result.ok, result.message
    assert sample(s, "apns_server_certificate_verified", **T, trust_store="effective") == 1
    assert sample(s, "apns_server_certificate_verified", **T, trust_store="ca_file") == 1
    assert sample(s, "apns_server_certificate_verified", **T, trust_store="system") == 0
    assert sample(s, "apns_server_certificate_not_after_timestamp_seconds", **T) > time.time()
    # No change yet: the counter appears with the first one (the rule counts that one).
    assert sample(s, "apns_server_certificate_chain_changes_total", **T) is None
    info = _info(s)
    assert info["tls_version"] == "TLSv1.3"
    assert "apns-exporter test root CA" in info["root"]
    assert len(info["fingerprint_sha256"]) == 64


async def test_switch_to_an_untrusted_root_is_counted_and_unverified(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """When the server switches to a chain from a root not in ca_file, the change is counted."""
    cfg = workspace.config(_with_tls_check(workspace, mock.port, device))
    async with run_exporter(cfg) as running:
        await running.wait_for(lambda r: r.probe is ProbeKind.TLS and r.ok)
        mock.set_keypair(generate_ca("USERTrust-like new root").issue_server())
        failed = await running.wait_for(lambda r: r.probe is ProbeKind.TLS and not r.ok)
        s = await running.scrape()
    assert failed.chain_changed
    assert failed.error == "tls_verify"
    assert sample(s, "apns_server_certificate_chain_changes_total", **T) == 1
    assert sample(s, "apns_server_certificate_verified", **T, trust_store="effective") == 0
    assert "USERTrust-like new root" in _info(s)["issuer"]


async def test_expired_server_certificate_shows_past_expiry(
    ca: CertificateAuthority, workspace: Workspace, device: str, run_exporter
) -> None:
    """An expired leaf gives a notAfter in the past and a failed check."""
    now = dt.datetime.now(dt.UTC)
    server = MockAPNs(
        ca.issue_server(
            valid_from=now - dt.timedelta(days=30), valid_until=now - dt.timedelta(days=2)
        )
    )
    await server.start("127.0.0.1", 0)
    try:
        cfg = workspace.config(_with_tls_check(workspace, server.port, device))
        async with run_exporter(cfg) as running:
            result = await running.wait_for(lambda r: r.probe is ProbeKind.TLS)
            s = await running.scrape()
    finally:
        await server.stop()
    assert not result.ok
    assert sample(s, "apns_server_certificate_not_after_timestamp_seconds", **T) < time.time()
    assert sample(s, "apns_server_certificate_verified", **T, trust_store="effective") == 0


async def test_each_address_of_the_host_reports_its_root(
    workspace: Workspace, run_exporter
) -> None:
    """Two addresses behind one name, one on the new root, count one address per root."""
    rollout = generate_rollout()
    chains = rollout.chains()
    old = MockAPNs(chains[OLD_ROOT], keypairs=chains, serving=OLD_ROOT)
    new = MockAPNs(chains[OLD_ROOT], keypairs=chains, serving=NEW_ROOT)
    await old.start("127.0.0.1", 0)
    try:
        await new.start("127.0.0.2", old.port)
        try:
            bundle = workspace.path / "both-roots.pem"
            bundle.write_bytes(rollout.bundle_pem)

            async def resolver(host: str, port: int) -> list[str]:
                return ["127.0.0.1", "127.0.0.2"] if host == "localhost" else []

            cfg = workspace.config(_rollout_target(workspace, old.port, bundle))
            async with run_exporter(cfg, resolver=resolver) as running:
                result = await running.wait_for(lambda r: r.probe is ProbeKind.TLS)
                s = await running.scrape()
                page = await running.scrape_text("/probes?target=t1")
        finally:
            await new.stop()
    finally:
        await old.stop()
    assert result.ok, result.message
    assert sample(s, "apns_server_certificate_root_addresses", **T, root=OLD_ROOT_NAME) == 1
    assert sample(s, "apns_server_certificate_root_addresses", **T, root=NEW_ROOT_NAME) == 1
    assert "127.0.0.1: TLSv1.3" in page
    assert "127.0.0.2: TLSv1.3" in page
    assert not any("127.0.0.2" in value for _, labels in s for _, value in labels)


async def test_an_untrusted_address_fails_the_check_and_names_the_address(
    workspace: Workspace, run_exporter
) -> None:
    """When only one address moved to a root the trust store lacks, the check fails there."""
    rollout = generate_rollout()
    chains = rollout.chains()
    old = MockAPNs(chains[OLD_ROOT], keypairs=chains, serving=OLD_ROOT)
    new = MockAPNs(chains[OLD_ROOT], keypairs=chains, serving=NEW_ROOT)
    await old.start("127.0.0.1", 0)
    try:
        await new.start("127.0.0.2", old.port)
        try:
            only_old = workspace.path / "old-root.pem"
            only_old.write_bytes(rollout.old.cert_pem)

            async def resolver(host: str, port: int) -> list[str]:
                return ["127.0.0.1", "127.0.0.2"]

            cfg = workspace.config(_rollout_target(workspace, old.port, only_old))
            async with run_exporter(cfg, resolver=resolver) as running:
                result = await running.wait_for(lambda r: r.probe is ProbeKind.TLS)
                s = await running.scrape()
        finally:
            await new.stop()
    finally:
        await old.stop()
    # The series describe the failing address's chain, so the untrusted alert fires.
    assert sample(s, "apns_server_certificate_verified", **T, trust_store="effective") == 0
    assert "USERTrust" in _info(s)["issuer"]
    assert not result.ok
    assert result.error == "tls_verify"
    assert result.peer == "127.0.0.2"
    assert result.root_addresses == {OLD_ROOT_NAME: 1, NEW_ROOT_NAME: 1}


def _rollout_target(workspace: Workspace, port: int, ca_file: Path) -> str:
    return f"""\
- name: t1
  environment: production
  endpoint: localhost:{port}
  topic: {TOPIC}
  ca_file: {ca_file}
  auth:
    token:
      key_file: {workspace.key_file}
      key_id: {KEY_ID}
      team_id: {TEAM_ID}
  ping:
    interval: 1h
  tls_check: {{interval: 1h}}
"""


@pytest.mark.parametrize(("with_new_root", "expected"), [(False, 0), (True, 1)])
async def test_trust_store_readiness_for_the_notices_root(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter, with_new_root, expected
) -> None:
    """A required root missing from ca_file (and the system store) exports 0; present, 1."""
    rollout = generate_rollout()
    new_root = rollout.new.certificate
    fingerprint = new_root.fingerprint(hashes.SHA256()).hex(":").upper()
    if with_new_root:
        workspace.ca_file.write_bytes(workspace.ca_file.read_bytes() + rollout.new.cert_pem)
    extra = f"""\
        global:
          required_roots:
            - {{name: "{NEW_ROOT_NAME}", fingerprint_sha256: "{fingerprint}"}}
        """
    cfg = workspace.config(_with_tls_check(workspace, mock.port, device), extra=extra)
    async with run_exporter(cfg) as running:
        result = await running.wait_for(lambda r: r.probe is ProbeKind.TLS)
        s = await running.scrape()
        page = await running.scrape_text("/probes?target=t1")
    labels = {"root": NEW_ROOT_NAME, "fingerprint_sha256": fingerprint.replace(":", "").lower()}
    assert sample(s, "apns_trust_store_root_present", **T, **labels) == expected
    assert result.ok, result.message  # readiness is its own signal: today's chain still verifies
    assert ("the trust store lacks root" in page) is not with_new_root
