"""APNs provider (client) certificates: loading PEM/PKCS#12, reading Apple's X.509 fields."""

from __future__ import annotations

import contextlib
import re
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from apns_exporter.client.tls import client_context
from apns_exporter.creds.tokens import read_credential_file
from apns_exporter.errors import CredentialError

# Apple's APNs extensions ("Establishing a certificate-based connection to APNs");
# environments come from these OIDs, never from the CN: Apple has renamed certificates before.
SANDBOX_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.3.1")
PRODUCTION_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.3.2")
TOPICS_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.3.6")
_ENVIRONMENTS = {SANDBOX_OID: "sandbox", PRODUCTION_OID: "production"}
MDM_TOPIC_PREFIX = "com.apple.mgmt."

_KEY_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----\r?\n.*?-----END \1-----", re.DOTALL
)
# DER string tags a topic may use; Apple writes UTF8String, the others are tolerated.
_STRING_TAGS = {0x0C, 0x13, 0x16}
_SEQUENCE = 0x30


@dataclass(frozen=True)
class CertificateSummary:
    """What an on-call engineer needs to know about a provider certificate."""

    not_before: float
    not_after: float
    subject_cn: str
    uid: str | None
    team_id: str | None
    topics: tuple[str, ...]
    environments: frozenset[str]
    fingerprint_sha256: str
    serial: str
    issuer_cn: str
    is_mdm: bool

    @property
    def environments_label(self) -> str:
        """``production``, ``sandbox``, ``production,sandbox`` or ``none``, for a metric label."""
        return ",".join(sorted(self.environments)) or "none"


def _first(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    attributes = name.get_attributes_for_oid(oid)
    return str(attributes[0].value) if attributes else None


def _der_header(data: bytes, pos: int) -> tuple[int, int, int]:
    """Return ``(tag, length, content_start)`` of the TLV at ``pos``; ValueError if unreadable."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER header")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4 or pos + size > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    return tag, length, pos


def _der_items(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield ``(tag, content)`` for each DER TLV in ``data``; ValueError when truncated."""
    pos = 0
    while pos < len(data):
        tag, length, start = _der_header(data, pos)
        pos = start + length
        if pos > len(data):
            raise ValueError("truncated DER value")
        yield tag, data[start:pos]


def _topic_list(value: bytes) -> list[str]:
    """Top-level strings of the 6.3.6 SEQUENCE; nested SEQUENCEs hold kinds ("app", "voip")."""
    found: list[str] = []
    # A malformed extension yields what was readable: the UID alone is still a useful summary.
    with contextlib.suppress(ValueError):
        for tag, content in _der_items(value):
            if tag != _SEQUENCE:
                continue
            for inner_tag, inner in _der_items(content):
                if inner_tag in _STRING_TAGS:
                    found.append(inner.decode("utf-8"))
    return found


def summarize(cert: x509.Certificate) -> CertificateSummary:
    """Read dates, subject, topics (UID + OID 6.3.6) and environments (OIDs 6.3.1/6.3.2)."""
    uid = _first(cert.subject, NameOID.USER_ID)
    topics: list[str] = [uid] if uid else []
    environments: set[str] = set()
    for extension in cert.extensions:
        if extension.oid in _ENVIRONMENTS:
            environments.add(_ENVIRONMENTS[extension.oid])
        elif extension.oid == TOPICS_OID and isinstance(
            extension.value, x509.UnrecognizedExtension
        ):
            topics += _topic_list(extension.value.value)
    return CertificateSummary(
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        subject_cn=_first(cert.subject, NameOID.COMMON_NAME) or "",
        uid=uid,
        team_id=_first(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME),
        topics=tuple(dict.fromkeys(topics)),
        environments=frozenset(environments),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        serial=format(cert.serial_number, "x"),
        issuer_cn=_first(cert.issuer, NameOID.COMMON_NAME) or "",
        is_mdm=bool(uid and uid.startswith(MDM_TOPIC_PREFIX)),
    )


def mismatches(summary: CertificateSummary, *, topic: str | None, environment: str) -> list[str]:
    """Human warnings when a target's topic or environment does not fit its certificate."""
    warnings: list[str] = []
    if topic is not None and topic not in summary.topics:
        have = ", ".join(summary.topics) or "none"
        warnings.append(
            f"topic {topic} is not among the certificate's topics ({have}); "
            "APNs will answer TopicDisallowed"
        )
    if not summary.environments:
        warnings.append(
            "the certificate carries neither APNs environment OID (1.2.840.113635.100.6.3.1/.2); "
            "is it an APNs provider certificate?"
        )
    elif environment not in summary.environments:
        only = next(iter(summary.environments))
        warnings.append(
            f"target environment is {environment} but the certificate is {only}-only; "
            f"APNs will reject it (BadCertificateEnvironment): use a {environment} "
            "or universal certificate"
        )
    return warnings


@dataclass(frozen=True)
class ClientCredential:
    """A loaded provider certificate, its chain and private key, ready for TLS."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    private_key: PrivateKeyTypes
    summary: CertificateSummary
    source: tuple[Path, ...]

    def pem(self) -> bytes:
        """Certificate, chain and unencrypted PKCS#8 key as one PEM blob (keep it in memory)."""
        certs = b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (self.certificate, *self.chain)
        )
        key = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return certs + key

    def ssl_context(self, ca_file: str | None = None) -> ssl.SSLContext:
        """The shared TLS client context that presents this credential (see client.tls)."""
        return client_context(ca_file, certificate_pem=self.pem())


def _pkcs12_shape(data: bytes) -> str | None:
    """``intact`` or ``damaged`` when ``data`` starts like a PFX (SEQUENCE { INTEGER 3 ..."""
    try:
        tag, length, start = _der_header(data, 0)
    except ValueError:
        return None
    if tag != _SEQUENCE or data[start : start + 3] != b"\x02\x01\x03":
        return None
    return "intact" if start + length == len(data) else "damaged"


def _load_key(block: bytes, path: Path, password: bytes | None) -> PrivateKeyTypes:
    encrypted = b"ENCRYPTED" in block.split(b"\n", 2)[0] or b"Proc-Type: 4,ENCRYPTED" in block
    if encrypted and password is None:
        raise CredentialError(
            "bad_passphrase",
            f"private key {path}: encrypted, but no password is configured "
            "(set password_file or password_env)",
        )
    try:
        # A password configured for an unencrypted key is harmless: ignore it.
        return serialization.load_pem_private_key(block, password if encrypted else None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # The parser's message is dropped: it adds nothing and must never quote the file.
        if encrypted:
            raise CredentialError(
                "bad_passphrase",
                f"private key {path}: wrong password or damaged key (check the password)",
            ) from None
        raise CredentialError(
            "bad_pem", f"private key {path}: not a valid PEM private key (re-export it as PEM)"
        ) from None


def _find_key(data: bytes, source: Path, password: bytes | None, *, hint: str) -> PrivateKeyTypes:
    match = _KEY_BLOCK.search(data)
    if match is None:
        raise CredentialError("bad_pem", f"{source}: no PEM private key found ({hint})")
    return _load_key(match.group(0), source, password)


def _load_pem(
    data: bytes, path: Path, key_file: Path | None, password: bytes | None
) -> tuple[list[x509.Certificate], PrivateKeyTypes]:
    if b"-----BEGIN CERTIFICATE-----" in data:
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise CredentialError(
                "bad_pem", f"certificate {path}: a PEM CERTIFICATE block is damaged (re-export it)"
            ) from None
    else:
        # Apple's portal hands out aps.cer as DER; accept it with a separate key file.
        try:
            certs = [x509.load_der_x509_certificate(data)]
        except ValueError:
            raise CredentialError(
                "bad_pem",
                f"certificate {path}: no certificate found (expected PEM, DER or PKCS#12)",
            ) from None
    if key_file is not None:
        key = _find_key(
            read_credential_file(key_file, "private key"),
            key_file,
            password,
            hint="is it a PEM private key?",
        )
    else:
        key = _find_key(data, path, password, hint="set key_file, or use a .p12")
    return certs, key


# Keychain and OpenSSL export with 2 048 iterations, PBKDF2 exports with up to a few
# hundred thousand; each million costs about a second of one core, spent before any check.
MAX_PKCS12_ITERATIONS = 1_000_000
_OCTET_STRING, _INTEGER = 0x04, 0x02


def _pkcs12_iterations(data: bytes, depth: int = 0) -> int:
    """The largest MAC or PBE iteration count in a PKCS#12 structure (0 if none).

    MacData and every PBE parameter set put the count as an INTEGER right after the salt,
    an OCTET STRING, in one SEQUENCE; the bag contents are DER inside OCTET STRINGs.
    """
    if depth > 32:  # real files nest about 15 deep; this only bounds the recursion
        return 0
    try:
        items = list(_der_items(data))
    except ValueError:
        return 0  # encrypted or not DER: nothing to read here
    largest, previous = 0, -1
    for tag, content in items:
        if tag == _INTEGER and previous == _OCTET_STRING and depth > 0:
            largest = max(largest, int.from_bytes(content, "big", signed=True))
        elif tag & 0x20 or tag == _OCTET_STRING:  # constructed, or wrapping inner DER
            largest = max(largest, _pkcs12_iterations(content, depth + 1))
        previous = tag
    return largest


def _load_pkcs12(
    data: bytes, path: Path, key_file: Path | None, password: bytes | None
) -> tuple[list[x509.Certificate], PrivateKeyTypes]:
    if _pkcs12_shape(data) != "intact":
        raise CredentialError(
            "bad_pkcs12", f"PKCS#12 {path}: truncated or not PKCS#12 at all (re-export it)"
        )
    # OpenSSL runs every iteration before it can say the password is wrong, and cannot be
    # interrupted: 2**31 of them hold a core (and a reload) for many minutes.
    iterations = _pkcs12_iterations(data)
    if iterations > MAX_PKCS12_ITERATIONS:
        raise CredentialError(
            "bad_pkcs12",
            f"PKCS#12 {path}: {iterations} key derivation iterations, more than the "
            f"{MAX_PKCS12_ITERATIONS} allowed (re-export it, e.g. openssl pkcs12 -export "
            "-iter 2048 -maciter)",
        )
    # Tools differ on "no password": some MAC with an empty one, so try both.
    attempts = [password] if password is not None else [None, b""]
    for attempt in attempts:
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, attempt)
            break
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
    else:
        # cryptography cannot tell a wrong password from inner damage; the envelope is intact,
        # so the password is by far the likelier cause.
        which, todo = (
            ("the configured", "check the configured password")
            if password is not None
            else ("no", "set password_file or password_env")
        )
        raise CredentialError(
            "bad_passphrase", f"PKCS#12 {path}: cannot be opened with {which} password ({todo})"
        )
    # Without a key, the certificate is listed among the "additional" ones; the leaf is then
    # found by matching the key file, like any other certificate.
    certs = [cert, *extra] if cert is not None else list(extra)
    if not certs:
        raise CredentialError("bad_pkcs12", f"PKCS#12 {path}: holds no certificate (re-export it)")
    if key is not None:
        return certs, key
    if key_file is None:
        raise CredentialError(
            "bad_pkcs12", f"PKCS#12 {path}: holds no private key (re-export it with the key)"
        )
    data = read_credential_file(key_file, "private key")
    return certs, _find_key(data, key_file, password, hint="is it a PEM private key?")


def _public_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_client_credential(
    cert_file: Path,
    key_file: Path | None = None,
    *,
    password: bytes | None = None,
) -> ClientCredential:
    """Load PEM (cert + key, one or two files, key maybe encrypted) or PKCS#12 (by content).

    Validity dates are not judged here: :func:`validity` is the one place that does.
    """
    data = read_credential_file(cert_file, "certificate")
    pkcs12_suffix = cert_file.suffix.lower() in (".p12", ".pfx")
    if b"-----BEGIN" not in data and (_pkcs12_shape(data) or pkcs12_suffix):
        certs, key = _load_pkcs12(data, cert_file, key_file, password)
    else:
        certs, key = _load_pem(data, cert_file, key_file, password)
    # The leaf is whichever certificate the key belongs to, so chain-first files also work.
    wanted = _public_der(key.public_key())
    leaf = next((c for c in certs if _public_der(c.public_key()) == wanted), None)
    if leaf is None:
        where = f"{key_file} does not" if key_file else "the key in it does not"
        raise CredentialError(
            "key_mismatch",
            f"certificate {cert_file}: {where} belong to its certificate "
            "(pair the certificate with the key it was issued for)",
        )
    summary = summarize(leaf)
    return ClientCredential(
        certificate=leaf,
        chain=tuple(c for c in certs if c is not leaf),
        private_key=key,
        summary=summary,
        source=(cert_file, key_file) if key_file else (cert_file,),
    )


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(timestamp))


def validity(summary: CertificateSummary, cert_file: Path, now: float) -> tuple[str, str]:
    """The one judgement of a certificate's dates: (why it is expired, why not yet valid).

    Either is empty when it does not apply. An expired certificate is still presented (APNs's
    TLS alert is the clearest evidence); one not yet valid is a warning, as APNs will refuse
    it until then.
    """
    expired = not_yet = ""
    if summary.not_after <= now:
        # An MDM certificate must be renewed, not re-created: a new one has a new topic and
        # forces every device to re-enrol (Apple's "MDM Protocol Reference", push certificates).
        todo = (
            "renew it at identity.apple.com with the same Apple ID; do not create a new one"
            if summary.is_mdm
            else "renew it in the Apple developer portal and replace the file"
        )
        expired = (
            f"certificate {cert_file}: {summary.subject_cn!r} expired at "
            f"{_when(summary.not_after)} ({todo})"
        )
    elif summary.not_before > now:
        not_yet = (
            f"certificate {cert_file}: {summary.subject_cn!r} is not valid before "
            f"{_when(summary.not_before)}; APNs refuses it until then (check the clock, or "
            "keep the current certificate until that time)"
        )
    return expired, not_yet
