"""The files a stand-alone mock run needs, generated once into a directory and re-read later.

Layout of the directory (``mock-apns --generate-pki DIR``)::

    ca.pem                 trust anchor of the server chain the mock serves by default
                           (named after the old root of Apple's 2025 change)
    ca-next.pem            trust anchor of the second chain, for CA-rollout drills (named
                           after the new root; see apns_exporter.mock.rollout)
    ca-bundle.pem          both anchors: a client trusting this survives the rotation
    server.pem/.key        default server chain and key
    server-next.pem/.key   the second server chain
    AuthKey_<KEYID>.p8     provider signing key (token auth)
    client-ca.pem          the CA that issued the provider certificates (mTLS)
    provider.pem/.key      universal multi-topic provider certificate (+ provider.p12, no password)
    mock.json              key_id, team_id, topic, device tokens
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apns_exporter.mock.pki import (
    Keypair,
    SigningKeyPair,
    generate_ca,
    generate_signing_key,
    load_signing_key,
)
from apns_exporter.mock.rollout import NEW_ROOT_NAME, OLD_ROOT_NAME

MANIFEST = "mock.json"
DEFAULT_TOPIC = "com.example.apns-exporter"
_ID_ALPHABET = string.ascii_uppercase + string.digits


def _apple_id() -> str:
    """A random 10-character identifier shaped like Apple's key and team IDs."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


@dataclass(frozen=True)
class MockMaterial:
    """Credentials and identities for one mock deployment, and where their files are."""

    directory: Path
    key_id: str
    team_id: str
    topic: str
    device_tokens: tuple[str, ...]
    server: Keypair
    server_next: Keypair
    signing_key: SigningKeyPair
    client_ca_pem: bytes

    @property
    def key_file(self) -> Path:
        """Path of the ``.p8`` signing key."""
        return self.directory / f"AuthKey_{self.key_id}.p8"

    def summary(self) -> dict[str, Any]:
        """What a user needs to point a provider (or the exporter) at the mock."""
        return {
            "ca_file": str(self.directory / "ca.pem"),
            "ca_bundle_file": str(self.directory / "ca-bundle.pem"),
            "key_file": str(self.key_file),
            "key_id": self.key_id,
            "team_id": self.team_id,
            "topic": self.topic,
            "device_tokens": list(self.device_tokens),
            "client_certificate": str(self.directory / "provider.pem"),
            "client_key": str(self.directory / "provider.key"),
        }


def generate(directory: Path, topic: str = DEFAULT_TOPIC) -> MockMaterial:
    """Create a fresh set of credentials in ``directory`` (overwriting what is there)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = generate_ca(OLD_ROOT_NAME)
    ca_next = generate_ca(NEW_ROOT_NAME)
    client_ca = generate_ca("apns-exporter mock provider CA")
    team_id = _apple_id()
    material = MockMaterial(
        directory=directory,
        key_id=_apple_id(),
        team_id=team_id,
        topic=topic,
        device_tokens=(secrets.token_hex(32), secrets.token_hex(32)),
        server=ca.issue_server(),
        server_next=ca_next.issue_server(),
        signing_key=generate_signing_key(),
        client_ca_pem=client_ca.cert_pem,
    )
    (directory / "ca.pem").write_bytes(ca.cert_pem)
    (directory / "ca-next.pem").write_bytes(ca_next.cert_pem)
    (directory / "ca-bundle.pem").write_bytes(ca.cert_pem + ca_next.cert_pem)
    (directory / "client-ca.pem").write_bytes(client_ca.cert_pem)
    material.server.write(directory, "server")
    material.server_next.write(directory, "server-next")
    material.key_file.write_bytes(material.signing_key.private_pem)
    material.key_file.chmod(0o600)
    provider = client_ca.issue_provider(topic, team_id=team_id)
    provider.write(directory, "provider")
    (directory / "provider.p12").write_bytes(provider.pkcs12())
    manifest = {
        "key_id": material.key_id,
        "team_id": material.team_id,
        "topic": material.topic,
        "device_tokens": list(material.device_tokens),
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return material


def load(directory: Path) -> MockMaterial:
    """Read back what ``generate`` wrote."""
    manifest = json.loads((directory / MANIFEST).read_text())
    key_id = str(manifest["key_id"])
    return MockMaterial(
        directory=directory,
        key_id=key_id,
        team_id=str(manifest["team_id"]),
        topic=str(manifest["topic"]),
        device_tokens=tuple(str(t) for t in manifest["device_tokens"]),
        server=_keypair(directory, "server"),
        server_next=_keypair(directory, "server-next"),
        signing_key=load_signing_key((directory / f"AuthKey_{key_id}.p8").read_bytes()),
        client_ca_pem=(directory / "client-ca.pem").read_bytes(),
    )


def load_or_generate(directory: Path, topic: str = DEFAULT_TOPIC) -> MockMaterial:
    """Re-use the credentials in ``directory`` if it has a manifest, else generate them."""
    if (directory / MANIFEST).is_file():
        return load(directory)
    return generate(directory, topic)


def _keypair(directory: Path, name: str) -> Keypair:
    return Keypair.from_pem(
        (directory / f"{name}.pem").read_bytes(), (directory / f"{name}.key").read_bytes()
    )
