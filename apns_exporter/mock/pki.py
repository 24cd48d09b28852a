"""A throwaway test PKI, generated at run time.

CAs, server certificates, provider certificates with Apple's extension layout, and ES256
signing keys (the content of an Apple ``.p8`` file).

Nothing here is secret or persistent; every test and every ``mock-apns`` run makes its own.
About 440 lines, on purpose: one CA class issues every kind of certificate (CA, server,
provider, MDM, expired and not-yet-valid variants) so that their extensions agree in one place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from apns_exporter.mock import der

# Apple's APNs certificate extensions ("Establishing a certificate-based connection to APNs").
APNS_DEVELOPMENT_OID = ObjectIdentifier("1.2.840.113635.100.6.3.1")
APNS_PRODUCTION_OID = ObjectIdentifier("1.2.840.113635.100.6.3.2")
APNS_TOPICS_OID = ObjectIdentifier("1.2.840.113635.100.6.3.6")

SANDBOX = "sandbox"
PRODUCTION = "production"
_ENVIRONMENT_OIDS = {SANDBOX: APNS_DEVELOPMENT_OID, PRODUCTION: APNS_PRODUCTION_OID}

# Topic kinds in the 6.3.6 sequence and the topic suffix each one implies.
TOPIC_KIND_SUFFIX = {"app": "", "voip": ".voip", "complication": ".complication"}

DEFAULT_HOSTNAMES = ("localhost", "127.0.0.1", "::1")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256 keys generate in microseconds; RSA would dominate test start-up time.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Keypair:
    """A certificate chain (leaf first, then intermediates) and its unencrypted PKCS#8 key."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes) -> Keypair:
        """Load a chain (leaf first) and its EC private key back from PEM."""
        leaf, *chain = x509.load_pem_x509_certificates(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the mock PKI only uses EC keys")
        return cls(leaf, key, tuple(chain))

    @property
    def cert_pem(self) -> bytes:
        """The leaf followed by any intermediates, PEM encoded."""
        return b"".join(_cert_pem(c) for c in (self.certificate, *self.chain))

    @property
    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""
        return _key_pem(self.private_key)

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Write ``<name>.pem`` and ``<name>.key`` into ``directory`` and return both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        cert_path.write_bytes(self.cert_pem)
        key_path.write_bytes(self.key_pem)
        key_path.chmod(0o600)
        return cert_path, key_path


@dataclass(frozen=True)
class ProviderCertificate(Keypair):
    """An APNs provider (client) certificate laid out the way Apple issues them."""

    topics: tuple[str, ...] = ()
    environments: frozenset[str] = field(default_factory=frozenset)

    def pkcs12(self, password: bytes | None = None, name: bytes = b"apns") -> bytes:
        """Return certificate, chain and key as PKCS#12, encrypted when given a password."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return pkcs12.serialize_key_and_certificates(
            name, self.private_key, self.certificate, list(self.chain) or None, encryption
        )


@dataclass(frozen=True)
class SigningKeyPair:
    """An ES256 provider signing key: what Apple hands out as ``AuthKey_<KEYID>.p8``."""

    private_key: ec.EllipticCurvePrivateKey

    @property
    def private_pem(self) -> bytes:
        """PKCS#8 PEM of the private key, byte-for-byte the shape of an Apple ``.p8`` file."""
        return _key_pem(self.private_key)

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public half, which the mock uses to verify provider tokens."""
        return self.private_key.public_key()

    @property
    def public_pem(self) -> bytes:
        """The public key as SubjectPublicKeyInfo PEM."""
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def load_signing_key(private_pem: bytes) -> SigningKeyPair:
    """Load a ``.p8`` (PKCS#8 PEM, EC P-256) signing key."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("an APNs signing key must be an EC P-256 private key")
    return SigningKeyPair(key)


def generate_signing_key() -> SigningKeyPair:
    """Generate a fresh EC P-256 provider signing key."""
    return SigningKeyPair(_new_key())


@dataclass(frozen=True)
class ProviderIdentity:
    """What APNs reads out of a provider certificate: topics and permitted environments."""

    uid: str
    topics: tuple[str, ...]
    environments: frozenset[str]
    team_id: str | None
    not_before: dt.datetime
    not_after: dt.datetime


def read_provider_identity(cert: x509.Certificate) -> ProviderIdentity:
    """Extract topics (subject UID plus the 6.3.6 list) and environments (6.3.1/6.3.2 OIDs)."""
    uids = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    uid = str(uids[0].value) if uids else ""
    topics = [uid] if uid else []
    environments = set()
    for env, oid in _ENVIRONMENT_OIDS.items():
        try:
            cert.extensions.get_extension_for_oid(oid)
        except x509.ExtensionNotFound:
            continue
        environments.add(env)
    try:
        ext = cert.extensions.get_extension_for_oid(APNS_TOPICS_OID).value
    except x509.ExtensionNotFound:
        pass
    else:
        if isinstance(ext, x509.UnrecognizedExtension):
            with contextlib.suppress(der.DERError):
                topics.extend(t for t in der.sequence_strings(ext.value) if t not in topics)
    teams = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return ProviderIdentity(
        uid=uid,
        topics=tuple(topics),
        environments=frozenset(environments),
        team_id=str(teams[0].value) if teams else None,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


class CertificateAuthority:
    """A CA that can issue server certificates, provider certificates and intermediate CAs."""

    def __init__(
        self,
        certificate: x509.Certificate,
        private_key: ec.EllipticCurvePrivateKey,
        parents: tuple[x509.Certificate, ...] = (),
    ) -> None:
        self.certificate = certificate
        self.private_key = private_key
        # Intermediates between this CA and the root, nearest first; empty for a root.
        self.parents = parents

    @property
    def cert_pem(self) -> bytes:
        """The CA's own certificate, PEM encoded (the trust anchor when it is a root)."""
        return _cert_pem(self.certificate)

    @property
    def is_root(self) -> bool:
        """Whether this CA is self-signed."""
        return not self.parents and self.certificate.issuer == self.certificate.subject

    def _chain(self) -> tuple[x509.Certificate, ...]:
        # A leaf from a root needs no intermediates; from an intermediate, send it and its parents.
        return () if self.is_root else (self.certificate, *self.parents[:-1])

    def _issue(
        self,
        subject: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        extensions: Iterable[tuple[x509.ExtensionType, bool]],
        valid_from: dt.datetime | None,
        valid_until: dt.datetime | None,
        default_days: int,
    ) -> x509.Certificate:
        start = valid_from or _now() - dt.timedelta(hours=1)
        end = valid_until or start + dt.timedelta(days=default_days)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key()),
                False,
            )
        )
        for ext, critical in extensions:
            builder = builder.add_extension(ext, critical)
        return builder.sign(self.private_key, hashes.SHA256())

    def issue_intermediate(
        self,
        common_name: str = "apns-exporter mock intermediate CA",
        *,
        valid_from: dt.datetime | None = None,
        valid_until: dt.datetime | None = None,
    ) -> CertificateAuthority:
        """Issue a subordinate CA; leaves it issues carry it in their chain."""
        key = _new_key()
        cert = self._issue(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
            key,
            _ca_extensions(path_length=0),
            valid_from,
            valid_until,
            default_days=3650,
        )
        return CertificateAuthority(cert, key, (self.certificate, *self.parents))

    def issue_server(
        self,
        hostnames: Sequence[str] = DEFAULT_HOSTNAMES,
        *,
        valid_from: dt.datetime | None = None,
        valid_until: dt.datetime | None = None,
    ) -> Keypair:
        """Issue a TLS server certificate for ``hostnames`` (IP strings become IPAddress SANs)."""
        names: list[x509.GeneralName] = []
        for host in hostnames:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        key = _new_key()
        cert = self._issue(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]),
            key,
            [
                (x509.SubjectAlternativeName(names), False),
                (x509.BasicConstraints(ca=False, path_length=None), True),
                (_leaf_key_usage(), True),
                (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            ],
            valid_from,
            valid_until,
            default_days=30,
        )
        return Keypair(cert, key, self._chain())

    def issue_provider(
        self,
        bundle_id: str,
        *,
        team_id: str = "TEAM123456",
        environments: Iterable[str] = (SANDBOX, PRODUCTION),
        topic_kinds: Sequence[str] | None = ("app", "voip", "complication"),
        common_name: str | None = None,
        valid_from: dt.datetime | None = None,
        valid_until: dt.datetime | None = None,
    ) -> ProviderCertificate:
        """Issue an APNs client certificate: UID=bundle_id, OU=team, env OIDs, 6.3.6 topic list.

        ``topic_kinds=None`` leaves out the 6.3.6 extension (a single-topic certificate);
        otherwise each kind ("app", "voip", "complication") adds its topic to the list.
        """
        envs = frozenset(environments)
        unknown = envs - _ENVIRONMENT_OIDS.keys()
        if unknown:
            raise ValueError(f"unknown APNs environment(s): {sorted(unknown)}")
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (_leaf_key_usage(), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        ]
        extensions += [
            (x509.UnrecognizedExtension(_ENVIRONMENT_OIDS[env], der.null()), False)
            for env in sorted(envs)
        ]
        topics = [bundle_id]
        if topic_kinds is not None:
            items: list[bytes] = []
            for kind in topic_kinds:
                topic = bundle_id + TOPIC_KIND_SUFFIX[kind]
                items += [der.utf8(topic), der.sequence(der.utf8(kind))]
                if topic not in topics:
                    topics.append(topic)
            extensions.append(
                (x509.UnrecognizedExtension(APNS_TOPICS_OID, der.sequence(*items)), False)
            )
        label = (
            "Apple Push Services" if envs != {SANDBOX} else "Apple Development IOS Push Services"
        )
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.USER_ID, bundle_id),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name or f"{label}: {bundle_id}"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, team_id),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "apns-exporter mock"),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            ]
        )
        key = _new_key()
        cert = self._issue(subject, key, extensions, valid_from, valid_until, default_days=365)
        return ProviderCertificate(cert, key, self._chain(), tuple(topics), envs)

    def issue_mdm(
        self,
        *,
        push_uuid: str | None = None,
        team_id: str = "TEAM123456",
        valid_from: dt.datetime | None = None,
        valid_until: dt.datetime | None = None,
    ) -> ProviderCertificate:
        """Issue an MDM push certificate (topic ``com.apple.mgmt.External.<uuid>``, production)."""
        topic = f"com.apple.mgmt.External.{push_uuid or uuid.uuid4()}"
        return self.issue_provider(
            topic,
            team_id=team_id,
            environments=(PRODUCTION,),
            topic_kinds=None,
            common_name=f"APSP:{topic.rsplit('.', 1)[-1]}",
            valid_from=valid_from,
            valid_until=valid_until,
        )


def _ca_extensions(path_length: int | None) -> list[tuple[x509.ExtensionType, bool]]:
    return [
        (x509.BasicConstraints(ca=True, path_length=path_length), True),
        (
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        ),
    ]


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def generate_ca(
    common_name: str = "apns-exporter mock root CA",
    *,
    valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
) -> CertificateAuthority:
    """Generate a self-signed root CA (EC P-256)."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = valid_from or _now() - dt.timedelta(hours=1)
    end = valid_until or start + dt.timedelta(days=3650)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    for ext, critical in _ca_extensions(path_length=None):
        builder = builder.add_extension(ext, critical)
    return CertificateAuthority(builder.sign(key, hashes.SHA256()), key)
