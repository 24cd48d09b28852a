"""Tests for creds.certificates: loading every format, each failure, and the summary."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import ssl
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from apns_exporter.creds.certificates import (
    TOPICS_OID,
    CertificateSummary,
    ClientCredential,
    load_client_credential,
    mismatches,
    summarize,
    validity,
)
from apns_exporter.errors import CredentialError
from apns_exporter.mock.pki import CertificateAuthority, ProviderCertificate

BUNDLE = "com.example.app"
PASSWORD = b"s3cret-Passw0rd"
NOBODY = 65534


@pytest.fixture(scope="module")
def provider(ca: CertificateAuthority) -> ProviderCertificate:
    return ca.issue_provider(BUNDLE)


def _reason(excinfo: pytest.ExceptionInfo[CredentialError]) -> str:
    message = str(excinfo.value)
    # Every message is one line and never leaks the password or PEM contents.
    assert "\n" not in message
    assert PASSWORD.decode() not in message
    assert "BEGIN" not in message
    return excinfo.value.reason


def _fails(cert: Path, key: Path | None = None, **kwargs: object) -> str:
    with pytest.raises(CredentialError) as info:
        load_client_credential(cert, key, **kwargs)  # type: ignore[arg-type]
    assert str(cert) in str(info.value) or (key is not None and str(key) in str(info.value))
    return _reason(info)


def _encrypted_key(pair: ProviderCertificate, fmt: serialization.PrivateFormat) -> bytes:
    return pair.private_key.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.BestAvailableEncryption(PASSWORD)
    )


def _custom_cert(
    ca: CertificateAuthority, extensions: list[x509.ExtensionType], uid: str | None = BUNDLE
) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.NameAttribute(NameOID.COMMON_NAME, "custom")]
    if uid is not None:
        names.append(x509.NameAttribute(NameOID.USER_ID, uid))
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(names))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(0xABCDEF)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(ca.private_key, hashes.SHA256())


# --- formats ---------------------------------------------------------------------------------


def test_pem_certificate_with_separate_key(tmp_path: Path, provider: ProviderCertificate) -> None:
    """A PEM certificate and a separate PEM key load into a credential with a summary."""
    cert, key = provider.write(tmp_path, "push")
    credential = load_client_credential(cert, key)
    assert credential.certificate == provider.certificate
    assert credential.source == (cert, key)
    assert credential.summary.uid == BUNDLE
    assert credential.chain == ()


def test_single_pem_file_with_certificate_and_key(
    tmp_path: Path, provider: ProviderCertificate
) -> None:
    """One PEM file holding both the certificate and its key is enough."""
    path = tmp_path / "push.pem"
    path.write_bytes(provider.cert_pem + provider.key_pem)
    credential = load_client_credential(path)
    assert credential.certificate == provider.certificate
    assert credential.source == (path,)


def test_chain_first_pem_still_picks_the_leaf_by_key(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    """The leaf is the certificate matching the key, whatever the order in the file."""
    pair = ca.issue_intermediate().issue_provider(BUNDLE)
    path = tmp_path / "push.pem"
    intermediate = pair.chain[0].public_bytes(serialization.Encoding.PEM)
    leaf = pair.certificate.public_bytes(serialization.Encoding.PEM)
    path.write_bytes(pair.key_pem + intermediate + leaf)
    credential = load_client_credential(path)
    assert credential.certificate == pair.certificate
    assert credential.chain == pair.chain


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]
)
def test_encrypted_pem_key_with_password(
    tmp_path: Path, provider: ProviderCertificate, fmt: serialization.PrivateFormat
) -> None:
    """An encrypted PKCS#8 or legacy Proc-Type PEM key loads with the right password."""
    cert, key = provider.write(tmp_path, "push")
    key.write_bytes(_encrypted_key(provider, fmt))
    credential = load_client_credential(cert, key, password=PASSWORD)
    assert (
        credential.summary.fingerprint_sha256
        == provider.certificate.fingerprint(hashes.SHA256()).hex()
    )


def test_password_for_an_unencrypted_key_is_ignored(
    tmp_path: Path, provider: ProviderCertificate
) -> None:
    """A password configured for a plain key does no harm."""
    cert, key = provider.write(tmp_path, "push")
    assert load_client_credential(cert, key, password=PASSWORD).certificate == provider.certificate


@pytest.mark.parametrize("password", [PASSWORD, None])
def test_pkcs12_detected_by_content(
    tmp_path: Path, ca: CertificateAuthority, password: bytes | None
) -> None:
    """PKCS#12 with or without a password loads, whatever the file is called, chain included."""
    pair = ca.issue_intermediate().issue_provider(BUNDLE)
    path = tmp_path / "push.bin"
    path.write_bytes(pair.pkcs12(password))
    credential = load_client_credential(path, password=password)
    assert credential.certificate == pair.certificate
    assert credential.chain == pair.chain


def test_der_certificate_with_separate_key(tmp_path: Path, provider: ProviderCertificate) -> None:
    """Apple's DER aps.cer plus a PEM key loads."""
    _, key = provider.write(tmp_path, "push")
    der = tmp_path / "aps.cer"
    der.write_bytes(provider.certificate.public_bytes(serialization.Encoding.DER))
    assert load_client_credential(der, key).certificate == provider.certificate


def test_ssl_context_presents_the_credential_and_leaves_no_temp_file(
    tmp_path: Path, provider: ProviderCertificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The context loads the key through a 0600 temp file that is gone afterwards."""
    cert, key = provider.write(tmp_path, "push")
    credential = load_client_credential(cert, key)
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    modes: list[int] = []
    original = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: str, *args: object, **kwargs: object) -> None:
        modes.append(os.stat(certfile).st_mode & 0o777)
        original(self, certfile, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    ctx = credential.ssl_context(ca_file=str(cert))
    assert modes == [0o600]
    assert list(spool.iterdir()) == []
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED


async def test_ssl_context_authenticates_to_a_tls_server(
    tmp_path: Path, ca: CertificateAuthority, provider: ProviderCertificate
) -> None:
    """A server requiring client certificates sees the provider certificate, over ALPN h2."""
    cert, key = provider.write(tmp_path, "push")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*ca.issue_server().write(tmp_path, "server"))
    server_ctx.load_verify_locations(cafile=str(ca_file))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.set_alpn_protocols(["h2"])
    seen: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.set_result(writer.get_extra_info("ssl_object").getpeercert(binary_form=True))
        await reader.read()  # until the client hangs up
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    async with server:
        port = server.sockets[0].getsockname()[1]
        ctx = load_client_credential(cert, key).ssl_context(ca_file=str(ca_file))
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        assert await asyncio.wait_for(seen, 10) == provider.certificate.public_bytes(
            serialization.Encoding.DER
        )
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        await asyncio.wait_for(done.wait(), 10)


# --- failures --------------------------------------------------------------------------------


def test_missing_file_is_not_found(tmp_path: Path, provider: ProviderCertificate) -> None:
    """A missing certificate or key file is not_found, naming the file."""
    cert, _ = provider.write(tmp_path, "push")
    assert _fails(tmp_path / "nope.pem") == "not_found"
    assert _fails(cert, tmp_path / "nope.key") == "not_found"
    assert _fails(tmp_path) == "not_found"  # a directory is not a certificate either


@contextlib.contextmanager
def _unprivileged() -> Iterator[None]:
    """Drop the effective uid when root, since root reads mode-000 files regardless."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


def test_unreadable_file_is_permission_denied(provider: ProviderCertificate) -> None:
    """A file the exporter may not read is permission_denied, even when tests run as root."""
    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory)
        base.chmod(0o755)  # traversable by the unprivileged uid, so the file mode decides
        cert, key = provider.write(base, "push")
        cert.chmod(0o644)
        key.chmod(0o000)
        with _unprivileged():
            assert not os.access(key, os.R_OK, effective_ids=True)
            assert _fails(cert, key) == "permission_denied"


def test_garbage_is_bad_pem(tmp_path: Path, provider: ProviderCertificate) -> None:
    """Text that is no certificate, a damaged PEM block, and a keyless file are bad_pem."""
    cert, key = provider.write(tmp_path, "push")
    junk = tmp_path / "junk.pem"
    junk.write_text("hello, this is not a certificate\n")
    assert _fails(junk, key) == "bad_pem"
    damaged = tmp_path / "damaged.pem"
    damaged.write_bytes(provider.cert_pem.replace(b"\n", b"\n!", 3))
    assert _fails(damaged, key) == "bad_pem"
    assert _fails(cert) == "bad_pem"  # no key in the file and no key_file
    assert _fails(cert, cert) == "bad_pem"  # key_file holds a certificate
    broken_key = tmp_path / "broken.key"
    broken_key.write_bytes(provider.key_pem.replace(b"\n", b"\nAAAA", 2))
    assert _fails(cert, broken_key) == "bad_pem"


def test_damaged_or_incomplete_pkcs12_is_bad_pkcs12(
    tmp_path: Path, provider: ProviderCertificate
) -> None:
    """A truncated .p12, junk named .p12, or a .p12 without the key is bad_pkcs12."""
    truncated = tmp_path / "truncated.p12"
    truncated.write_bytes(provider.pkcs12(PASSWORD)[:300])
    assert _fails(truncated, password=PASSWORD) == "bad_pkcs12"
    junk = tmp_path / "junk.pfx"
    junk.write_bytes(b"\x00\x01\x02 not pkcs12")
    assert _fails(junk) == "bad_pkcs12"
    keyless = tmp_path / "keyless.p12"
    keyless.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"x", None, provider.certificate, None, serialization.NoEncryption()
        )
    )
    assert _fails(keyless) == "bad_pkcs12"


def test_keyless_pkcs12_takes_the_key_file(tmp_path: Path, provider: ProviderCertificate) -> None:
    """A certificate-only .p12 plus a PEM key file loads."""
    _, key = provider.write(tmp_path, "push")
    keyless = tmp_path / "keyless.p12"
    keyless.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"x", None, provider.certificate, None, serialization.NoEncryption()
        )
    )
    assert load_client_credential(keyless, key).certificate == provider.certificate


def test_wrong_or_missing_password_is_bad_passphrase(
    tmp_path: Path, provider: ProviderCertificate
) -> None:
    """Encrypted PEM keys and PKCS#12 files with a wrong or no password are bad_passphrase."""
    cert, key = provider.write(tmp_path, "push")
    key.write_bytes(_encrypted_key(provider, serialization.PrivateFormat.PKCS8))
    assert _fails(cert, key) == "bad_passphrase"
    assert _fails(cert, key, password=b"wrong") == "bad_passphrase"
    p12 = tmp_path / "push.p12"
    p12.write_bytes(provider.pkcs12(PASSWORD))
    assert _fails(p12) == "bad_passphrase"
    assert _fails(p12, password=b"wrong") == "bad_passphrase"


def test_key_of_another_certificate_is_key_mismatch(
    tmp_path: Path, ca: CertificateAuthority, provider: ProviderCertificate
) -> None:
    """A key that does not belong to the certificate is key_mismatch, in PEM and PKCS#12."""
    cert, _ = provider.write(tmp_path, "push")
    other = ca.issue_provider(BUNDLE)
    _, other_key = other.write(tmp_path, "other")
    assert _fails(cert, other_key) == "key_mismatch"
    mixed = tmp_path / "mixed.pem"
    mixed.write_bytes(provider.cert_pem + other.key_pem)
    assert _fails(mixed) == "key_mismatch"


def test_validity_is_judged_by_one_function(tmp_path: Path, ca: CertificateAuthority) -> None:
    """Loading never judges dates; validity() says expired, not yet valid, or neither."""
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    old = ca.issue_provider(BUNDLE, valid_from=past, valid_until=past + dt.timedelta(days=365))
    cert, key = old.write(tmp_path, "old")
    summary = load_client_credential(cert, key).summary  # an expired one still loads
    expired, not_yet = validity(summary, cert, time.time())
    assert f"certificate {cert}:" in expired
    assert "expired at" in expired
    assert not_yet == ""
    fresh = ca.issue_provider(BUNDLE)
    cert, key = fresh.write(tmp_path, "fresh")
    summary = load_client_credential(cert, key).summary
    later = fresh.certificate.not_valid_after_utc.timestamp() + 1
    assert validity(summary, cert, later)[0]
    assert validity(summary, cert, later - 2) == ("", "")
    mdm = ca.issue_mdm(valid_from=past, valid_until=past + dt.timedelta(days=365))
    cert, key = mdm.write(tmp_path, "mdm")
    assert "same Apple ID" in validity(load_client_credential(cert, key).summary, cert, later)[0]
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    future = ca.issue_provider(BUNDLE, valid_from=soon, valid_until=soon + dt.timedelta(days=30))
    cert, key = future.write(tmp_path, "future")
    expired, not_yet = validity(load_client_credential(cert, key).summary, cert, time.time())
    assert expired == ""
    assert f"certificate {cert}:" in not_yet
    assert "not valid before" in not_yet


# --- summary ---------------------------------------------------------------------------------


def test_summary_of_a_multi_topic_universal_certificate(provider: ProviderCertificate) -> None:
    """UID, app/voip/complication topics, both environments, team and identity fields."""
    cert = provider.certificate
    summary = summarize(cert)
    assert summary.topics == (BUNDLE, f"{BUNDLE}.voip", f"{BUNDLE}.complication")
    assert summary.environments == {"sandbox", "production"}
    assert summary.environments_label == "production,sandbox"
    assert summary.uid == BUNDLE
    assert summary.team_id == "TEAM123456"
    assert summary.subject_cn == f"Apple Push Services: {BUNDLE}"
    assert summary.issuer_cn == "apns-exporter test root CA"
    assert summary.serial == format(cert.serial_number, "x")
    assert summary.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    assert summary.not_after == cert.not_valid_after_utc.timestamp()
    assert summary.not_before == cert.not_valid_before_utc.timestamp()
    assert not summary.is_mdm


@pytest.mark.parametrize(
    ("environments", "label"),
    [(("sandbox",), "sandbox"), (("production",), "production"), ((), "none")],
)
def test_environments_come_from_the_oids(
    ca: CertificateAuthority, environments: tuple[str, ...], label: str
) -> None:
    """Sandbox-only, production-only and OID-less certificates are told apart by OID."""
    pair = ca.issue_provider(BUNDLE, environments=environments, topic_kinds=None)
    summary = summarize(pair.certificate)
    assert summary.environments == frozenset(environments)
    assert summary.environments_label == label
    assert summary.topics == (BUNDLE,)


def test_mdm_certificate(ca: CertificateAuthority) -> None:
    """An MDM push certificate is recognised by its com.apple.mgmt. topic."""
    summary = summarize(ca.issue_mdm(push_uuid="1234").certificate)
    assert summary.is_mdm
    assert summary.topics == ("com.apple.mgmt.External.1234",)
    assert summary.environments_label == "production"


def test_malformed_topic_extension_keeps_the_uid(ca: CertificateAuthority) -> None:
    """A truncated 6.3.6 value yields the topics readable before the damage, UID first."""
    value = b"\x30\x20\x0c\x03abc\x0c\x10truncated"
    cert = _custom_cert(ca, [x509.UnrecognizedExtension(TOPICS_OID, value)])
    assert summarize(cert).topics == (BUNDLE,)
    duplicate = b"\x30\x11\x0c\x0f" + BUNDLE.encode()
    cert = _custom_cert(ca, [x509.UnrecognizedExtension(TOPICS_OID, duplicate)])
    assert summarize(cert).topics == (BUNDLE,)


def test_certificate_without_uid_or_topics(ca: CertificateAuthority) -> None:
    """A certificate with neither UID nor 6.3.6 has no topics and is not MDM."""
    summary = summarize(_custom_cert(ca, [], uid=None))
    assert summary.topics == ()
    assert summary.uid is None
    assert summary.team_id is None
    assert not summary.is_mdm
    assert summary.serial == "abcdef"


# --- mismatches ------------------------------------------------------------------------------


def _summary(ca: CertificateAuthority, *environments: str) -> CertificateSummary:
    return summarize(ca.issue_provider(BUNDLE, environments=environments).certificate)


def test_no_mismatch_for_a_fitting_target(ca: CertificateAuthority) -> None:
    """A universal certificate with the target's topic (or voip topic) raises no warning."""
    summary = _summary(ca, "sandbox", "production")
    assert mismatches(summary, topic=BUNDLE, environment="production") == []
    assert mismatches(summary, topic=f"{BUNDLE}.voip", environment="sandbox") == []
    assert mismatches(summary, topic=None, environment="production") == []


def test_topic_not_in_certificate(ca: CertificateAuthority) -> None:
    """A topic the certificate does not carry is reported with the topics it does carry."""
    [warning] = mismatches(_summary(ca, "production"), topic="com.other", environment="production")
    assert "com.other" in warning
    assert BUNDLE in warning


def test_environment_mismatches(ca: CertificateAuthority) -> None:
    """Production with a sandbox-only cert, sandbox with a production-only cert, no OID at all."""
    [warning] = mismatches(_summary(ca, "sandbox"), topic=BUNDLE, environment="production")
    assert "sandbox-only" in warning
    [warning] = mismatches(_summary(ca, "production"), topic=BUNDLE, environment="sandbox")
    assert "production-only" in warning
    [warning] = mismatches(_summary(ca), topic=BUNDLE, environment="sandbox")
    assert "neither" in warning


def test_credential_is_frozen(tmp_path: Path, provider: ProviderCertificate) -> None:
    """A loaded credential cannot be modified after the fact."""
    cert, key = provider.write(tmp_path, "push")
    credential: ClientCredential = load_client_credential(cert, key)
    with pytest.raises(AttributeError):
        credential.source = ()  # type: ignore[misc]
