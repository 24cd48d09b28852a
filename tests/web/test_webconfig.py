"""The exporter-toolkit compatible web config: real HTTP and TLS on loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
import ssl
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from apns_exporter.errors import WebConfigError
from apns_exporter.mock.pki import CertificateAuthority, generate_ca
from apns_exporter.web.webconfig import WebConfigWatcher, load, middleware

# Cost 4 is bcrypt's minimum: the tests check behaviour, not bcrypt's slowness.
PASSWORD = "correct horse"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 1.5) -> None:
        self.now += seconds


@dataclass
class Pki:
    """A test CA with server and client credentials on disk."""

    dir: Path
    ca: CertificateAuthority
    ca_file: Path
    server_cert: Path
    server_key: Path


def issue_client(ca: CertificateAuthority, directory: Path, name: str, san: str) -> ssl.SSLContext:
    """Issue a client certificate with one DNS SAN and return a client context presenting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.private_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = client_context(directory / "ca.pem")
    context.load_cert_chain(cert_path, key_path)
    return context


def client_context(ca_file: Path) -> ssl.SSLContext:
    """A client context trusting only the test CA."""
    return ssl.create_default_context(cafile=str(ca_file))


@pytest.fixture(scope="module")
def test_ca() -> CertificateAuthority:
    """One throwaway CA for the module."""
    return generate_ca("webconfig test CA")


@pytest.fixture
def pki(tmp_path: Path, test_ca: CertificateAuthority) -> Pki:
    """A CA file and a server certificate for 127.0.0.1 written to disk."""
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(test_ca.cert_pem)
    cert, key = test_ca.issue_server().write(tmp_path, "server")
    return Pki(tmp_path, test_ca, ca_file, cert, key)


def write(path: Path, text: str) -> Path:
    """Write dedented YAML and return its path."""
    path.write_text(textwrap.dedent(text))
    return path


async def hello(request: web.Request) -> web.Response:
    """The protected resource."""
    return web.Response(text="hello\n")


@contextlib.asynccontextmanager
async def serving(watcher: WebConfigWatcher) -> AsyncIterator[str]:
    """Serve ``hello`` behind the middleware on 127.0.0.1 and yield its base URL."""
    app = web.Application(middlewares=[middleware(watcher)])
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = watcher.ssl_context()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def get(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    auth: tuple[str, str] | None = None,
) -> tuple[int, dict[str, str]]:
    """GET ``url`` on a fresh connection and return status and headers."""
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    connector = aiohttp.TCPConnector(ssl=ssl_context if ssl_context is not None else False)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, headers=headers) as response,
    ):
        await response.read()
        return response.status, dict(response.headers)


async def peer_certificate(port: int, context: ssl.SSLContext) -> bytes:
    """The DER certificate the server presents on a new connection."""
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert isinstance(der, bytes)
        return der
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


def tls_config(pki: Pki) -> str:
    """A tls_server_config block for the fixture's server certificate."""
    return (
        "tls_server_config:\n"
        f"  cert_file: {pki.server_cert.name}\n"
        f"  key_file: {pki.server_key.name}\n"
    )


async def test_tls_with_a_test_ca_serves_https(pki: Pki) -> None:
    """A client trusting the test CA gets a 200 over TLS."""
    watcher = WebConfigWatcher(write(pki.dir / "web.yml", tls_config(pki)))
    async with serving(watcher) as url:
        status, _ = await get(url + "/", ssl_context=client_context(pki.ca_file))
    assert status == 200


async def test_tls_defaults_to_tls12_minimum(pki: Pki) -> None:
    """Without min_version the context refuses anything older than TLS 1.2, as exporter-toolkit."""
    context = load(write(pki.dir / "web.yml", tls_config(pki))).ssl_context()
    assert context is not None
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_NONE


MTLS = "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n"


async def test_mtls_refuses_a_client_without_a_certificate(pki: Pki) -> None:
    """With RequireAndVerifyClientCert a client presenting no certificate gets no response."""
    watcher = WebConfigWatcher(write(pki.dir / "web.yml", tls_config(pki) + MTLS))
    client = issue_client(pki.ca, pki.dir, "prometheus", "prometheus.test")
    async with serving(watcher) as url:
        with pytest.raises(aiohttp.ClientError):
            await get(url + "/", ssl_context=client_context(pki.ca_file))
        # The same listener still serves a client that has a certificate.
        assert (await get(url + "/", ssl_context=client))[0] == 200


async def test_mtls_accepts_a_client_with_a_certificate(pki: Pki) -> None:
    """With RequireAndVerifyClientCert a client certificate from client_ca_file is accepted."""
    watcher = WebConfigWatcher(write(pki.dir / "web.yml", tls_config(pki) + MTLS))
    client = issue_client(pki.ca, pki.dir, "prometheus", "prometheus.test")
    async with serving(watcher) as url:
        status, _ = await get(url + "/", ssl_context=client)
    assert status == 200


async def test_mtls_refuses_a_certificate_from_another_ca(pki: Pki) -> None:
    """A client certificate signed by a CA outside client_ca_file fails the handshake."""
    watcher = WebConfigWatcher(write(pki.dir / "web.yml", tls_config(pki) + MTLS))
    stranger = issue_client(generate_ca("stranger"), pki.dir, "stranger", "prometheus.test")
    client = issue_client(pki.ca, pki.dir, "prometheus", "prometheus.test")
    async with serving(watcher) as url:
        with pytest.raises(aiohttp.ClientError):
            await get(url + "/", ssl_context=stranger)
        assert (await get(url + "/", ssl_context=client))[0] == 200


async def test_client_allowed_sans_admits_only_listed_names(pki: Pki) -> None:
    """A verified client certificate without an allowed SAN is answered 403."""
    sans = MTLS + "  client_allowed_sans: [prometheus.test]\n"
    watcher = WebConfigWatcher(write(pki.dir / "web.yml", tls_config(pki) + sans))
    allowed = issue_client(pki.ca, pki.dir, "prometheus", "prometheus.test")
    other = issue_client(pki.ca, pki.dir, "other", "other.test")
    async with serving(watcher) as url:
        assert (await get(url + "/", ssl_context=allowed))[0] == 200
        assert (await get(url + "/", ssl_context=other))[0] == 403


@pytest.mark.parametrize(
    ("auth_type", "mode"),
    [
        ("NoClientCert", ssl.CERT_NONE),
        ("RequestClientCert", ssl.CERT_NONE),
        ("RequireAnyClientCert", ssl.CERT_REQUIRED),
        ("VerifyClientCertIfGiven", ssl.CERT_OPTIONAL),
        ("RequireAndVerifyClientCert", ssl.CERT_REQUIRED),
    ],
)
def test_client_auth_types_map_to_ssl_verify_modes(
    pki: Pki, auth_type: str, mode: ssl.VerifyMode
) -> None:
    """Each exporter-toolkit client_auth_type maps to its nearest OpenSSL verify mode."""
    ca = "" if auth_type in ("NoClientCert", "RequestClientCert") else "\n  client_ca_file: ca.pem"
    text = tls_config(pki) + f"  client_auth_type: {auth_type}{ca}\n"
    context = load(write(pki.dir / "web.yml", text)).ssl_context()
    assert context is not None
    assert context.verify_mode is mode


def users_config(users: dict[str, str]) -> str:
    """A basic_auth_users block."""
    return "basic_auth_users:\n" + "".join(f"  {u}: {h}\n" for u, h in users.items())


@pytest.mark.parametrize(
    ("auth", "status"),
    [
        (("prometheus", PASSWORD), 200),
        (("prometheus", "wrong"), 401),
        (("mallory", PASSWORD), 401),
        (None, 401),
    ],
    ids=["right", "wrong-password", "unknown-user", "no-credentials"],
)
async def test_basic_auth(tmp_path: Path, auth: tuple[str, str] | None, status: int) -> None:
    """Only the configured user with the right password passes; others get a Basic challenge."""
    watcher = WebConfigWatcher(write(tmp_path / "web.yml", users_config({"prometheus": HASH})))
    async with serving(watcher) as url:
        got, headers = await get(url + "/", auth=auth)
    assert got == status
    if status == 401:
        assert headers["WWW-Authenticate"] == 'Basic realm="apns-exporter", charset="UTF-8"'


async def test_basic_auth_over_tls(pki: Pki) -> None:
    """Basic auth and TLS work together, as a Prometheus scrape with both would use them."""
    text = tls_config(pki) + users_config({"prometheus": HASH})
    watcher = WebConfigWatcher(write(pki.dir / "web.yml", text))
    async with serving(watcher) as url:
        context = client_context(pki.ca_file)
        assert (await get(url + "/", ssl_context=context, auth=("prometheus", PASSWORD)))[0] == 200
        assert (await get(url + "/", ssl_context=context))[0] == 401


async def test_malformed_authorization_header_is_unauthorized(tmp_path: Path) -> None:
    """A header that is not valid base64 user:password gets 401, not a server error."""
    watcher = WebConfigWatcher(write(tmp_path / "web.yml", users_config({"prometheus": HASH})))
    async with serving(watcher) as url, aiohttp.ClientSession() as session:
        for header in ("Basic !!!", "Bearer abc", "Basic " + base64.b64encode(b"nocolon").decode()):
            async with session.get(url + "/", headers={"Authorization": header}) as response:
                assert response.status == 401


async def test_successful_checks_are_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repeated scrape with the same credentials does not run bcrypt again."""
    watcher = WebConfigWatcher(write(tmp_path / "web.yml", users_config({"prometheus": HASH})))
    async with serving(watcher) as url:
        assert (await get(url + "/", auth=("prometheus", PASSWORD)))[0] == 200

        def no_bcrypt(password: bytes, hashed: bytes) -> bool:
            raise AssertionError("bcrypt ran for cached credentials")

        monkeypatch.setattr(bcrypt, "checkpw", no_bcrypt)
        assert (await get(url + "/", auth=("prometheus", PASSWORD)))[0] == 200


async def test_unknown_users_pay_bcrypt_at_the_configured_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown user is checked against a fake hash of the users' cost, so timing is alike."""
    seen: list[bytes] = []
    real = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        seen.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    watcher = WebConfigWatcher(write(tmp_path / "web.yml", users_config({"prometheus": HASH})))
    async with serving(watcher) as url:
        assert (await get(url + "/", auth=("mallory", PASSWORD)))[0] == 401
    assert len(seen) == 1
    assert seen[0].startswith(b"$2b$04$")


async def test_extra_headers_on_every_response(tmp_path: Path) -> None:
    """Configured headers are sent on 200, 401 and 404 responses alike."""
    text = users_config({"prometheus": HASH}) + textwrap.dedent("""\
        http_server_config:
          headers:
            X-Frame-Options: deny
            Content-Security-Policy: default-src 'self'
        """)
    watcher = WebConfigWatcher(write(tmp_path / "web.yml", text))
    async with serving(watcher) as url:
        for path, auth, status in [
            ("/", ("prometheus", PASSWORD), 200),
            ("/", None, 401),
            ("/missing", ("prometheus", PASSWORD), 404),
        ]:
            got, headers = await get(url + path, auth=auth)
            assert got == status
            assert headers["X-Frame-Options"] == "deny"
            assert headers["Content-Security-Policy"] == "default-src 'self'"


async def test_empty_file_serves_plain_http_without_auth(tmp_path: Path) -> None:
    """An empty web config, as in exporter-toolkit, means plain HTTP and no authentication."""
    watcher = WebConfigWatcher(write(tmp_path / "web.yml", "# nothing\n"))
    assert watcher.ssl_context() is None
    async with serving(watcher) as url:
        assert (await get(url + "/"))[0] == 200


BAD_FILES = {
    "bad-yaml": (
        "basic_auth_users: [\n",
        "web.yml:2:1: invalid YAML: while parsing a flow node, expected the node content, "
        "but found '<stream end>' (check indentation and quoting)",
    ),
    "unknown-key": (
        "http_server_config:\n  header: {}\n",
        "web.yml:2:3: http_server_config.header: unknown key (expected one of: http2, headers)",
    ),
    "unknown-top-level-key": (
        "tls_config: {}\n",
        "web.yml:1:1: tls_config: unknown key "
        "(expected one of: tls_server_config, http_server_config, basic_auth_users)",
    ),
    "missing-cert-file": (
        "tls_server_config:\n  cert_file: missing.pem\n  key_file: server.key\n",
        "web.yml:2:3: tls_server_config.cert_file: file '{dir}/missing.pem' not found "
        "(check the path)",
    ),
    "missing-key-file-key": (
        "tls_server_config:\n  cert_file: server.pem\n",
        "web.yml:1:1: tls_server_config: key_file is missing "
        "(TLS needs both cert_file and key_file)",
    ),
    "bad-bcrypt-hash": (
        "basic_auth_users:\n  alice: secret\n",
        "web.yml:2:3: basic_auth_users.alice: not a bcrypt hash "
        "(generate one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')",
    ),
    "bad-min-version": (
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
        "  min_version: TLS14\n",
        "web.yml:4:3: tls_server_config.min_version: unknown value 'TLS14' "
        "(use one of: TLS10, TLS11, TLS12, TLS13)",
    ),
    "max-below-min": (
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
        "  min_version: TLS13\n  max_version: TLS12\n",
        "web.yml:5:3: tls_server_config.max_version: TLS12 is below min_version TLS13; "
        "raise it or remove it",
    ),
    "bad-client-auth-type": (
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
        "  client_auth_type: Required\n",
        "web.yml:4:3: tls_server_config.client_auth_type: unknown value 'Required' "
        "(use one of: NoClientCert, RequestClientCert, RequireAnyClientCert, "
        "VerifyClientCertIfGiven, RequireAndVerifyClientCert)",
    ),
    "verify-without-ca": (
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n",
        "web.yml:4:3: tls_server_config.client_auth_type: RequireAndVerifyClientCert needs "
        "client_ca_file (the CA that issued the client certificates)",
    ),
    "key-mismatch": (
        "tls_server_config:\n  cert_file: server.pem\n  key_file: other.key\n",
        "web.yml:3:3: tls_server_config.key_file: does not match cert_file "
        "(use the key the certificate was made for)",
    ),
    "cert-not-pem": (
        "tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n",
        "web.yml:2:3: tls_server_config.cert_file: no PEM or DER certificate in the file",
    ),
    "header-not-allowed": (
        "http_server_config:\n  headers:\n    Server: nginx\n",
        "web.yml:3:5: http_server_config.headers.Server: this header cannot be set (allowed: "
        "Content-Security-Policy, Strict-Transport-Security, X-Content-Type-Options, "
        "X-Frame-Options, X-XSS-Protection)",
    ),
    "header-bad-value": (
        "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
        "web.yml:3:5: http_server_config.headers.X-Frame-Options: invalid value 'allow' "
        "(use one of: deny, sameorigin)",
    ),
    "unsupported-cipher-suites": (
        "tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
        "web.yml:2:3: tls_server_config.cipher_suites: is not supported "
        "(OpenSSL's default cipher list is used); remove it",
    ),
    "not-a-mapping": (
        "- basic_auth_users\n",
        "web.yml:1:1: must be a mapping, not a list",
    ),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_malformed_file_is_one_clear_line(pki: Pki, name: str) -> None:
    """Each malformed web config raises WebConfigError with one exact line naming file and key."""
    text, expected = BAD_FILES[name]
    (pki.dir / "other.key").write_bytes(pki.ca.issue_server().key_pem)
    (pki.dir / "web.yml").write_text(text)
    with contextlib.chdir(pki.dir), pytest.raises(WebConfigError) as caught:
        load("web.yml")
    assert str(caught.value) == expected.format(dir=pki.dir)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    """A web config file that does not exist is reported with its path."""
    with pytest.raises(WebConfigError, match=r"^.*/nope\.yml: web config file not found"):
        load(tmp_path / "nope.yml")


def test_hashes_never_appear_in_repr_or_errors(tmp_path: Path) -> None:
    """Neither the loaded config's repr nor a bad-hash error shows the hash."""
    config = load(write(tmp_path / "web.yml", users_config({"prometheus": HASH})))
    assert HASH not in repr(config)
    bad = HASH[:-1] + "*"
    with pytest.raises(WebConfigError) as caught:
        load(write(tmp_path / "web.yml", users_config({"prometheus": bad})))
    assert bad not in str(caught.value)


async def test_new_user_works_without_restart(tmp_path: Path) -> None:
    """A user added to the file is accepted once the watcher looks again, without a restart."""
    clock = FakeClock()
    path = write(tmp_path / "web.yml", users_config({"prometheus": HASH}))
    watcher = WebConfigWatcher(path, clock=clock)
    async with serving(watcher) as url:
        assert (await get(url + "/", auth=("grafana", PASSWORD)))[0] == 401
        write(path, users_config({"prometheus": HASH, "grafana": HASH}))
        # Within the same second the watcher does not look at the file again.
        assert (await get(url + "/", auth=("grafana", PASSWORD)))[0] == 401
        clock.advance()
        assert (await get(url + "/", auth=("grafana", PASSWORD)))[0] == 200


async def test_invalid_replacement_keeps_the_old_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken edit is logged once, without the hash, and the previous users keep working."""
    clock = FakeClock()
    path = write(tmp_path / "web.yml", users_config({"prometheus": HASH}))
    watcher = WebConfigWatcher(path, clock=clock)
    async with serving(watcher) as url:
        write(path, users_config({"prometheus": HASH, "grafana": "plaintext-oops"}))
        with caplog.at_level(logging.INFO, logger="apns_exporter.web.webconfig"):
            for _ in range(3):
                clock.advance()
                assert (await get(url + "/", auth=("prometheus", PASSWORD)))[0] == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert "basic_auth_users.grafana: not a bcrypt hash" in message
    assert "keeping the previous web config" in message
    assert "plaintext-oops" not in caplog.text
    assert HASH not in caplog.text


async def test_rotated_certificate_is_served_on_the_same_listener(pki: Pki) -> None:
    """New certificate files are loaded into the live SSLContext and served to new connections."""
    clock = FakeClock()
    watcher = WebConfigWatcher(write(pki.dir / "web.yml", tls_config(pki)), clock=clock)
    context = client_context(pki.ca_file)
    async with serving(watcher) as url:
        port = int(url.rsplit(":", 1)[1])
        before = await peer_certificate(port, context)
        rotated = pki.ca.issue_server()
        rotated.write(pki.dir, "server")
        clock.advance()
        watcher.current()
        after = await peer_certificate(port, context)
    assert before != after
    assert after == rotated.certificate.public_bytes(serialization.Encoding.DER)


async def test_half_rotated_certificate_keeps_the_old_pair(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """A new cert whose key has not arrived yet is refused and the old pair keeps serving."""
    clock = FakeClock()
    watcher = WebConfigWatcher(write(pki.dir / "web.yml", tls_config(pki)), clock=clock)
    context = client_context(pki.ca_file)
    async with serving(watcher) as url:
        port = int(url.rsplit(":", 1)[1])
        before = await peer_certificate(port, context)
        rotated = pki.ca.issue_server()
        pki.server_cert.write_bytes(rotated.cert_pem)  # the key file is still the old one
        clock.advance()
        with caplog.at_level(logging.ERROR, logger="apns_exporter.web.webconfig"):
            watcher.current()
        assert await peer_certificate(port, context) == before
        pki.server_key.write_bytes(rotated.key_pem)
        clock.advance()
        watcher.current()
        assert await peer_certificate(port, context) != before
    assert "cannot load the changed TLS files: does not match cert_file" in caplog.text


def test_changed_client_auth_needs_a_restart(pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    """Switching client_auth_type while listening logs that a restart is needed, once."""
    clock = FakeClock()
    path = write(pki.dir / "web.yml", tls_config(pki))
    watcher = WebConfigWatcher(path, clock=clock)
    context = watcher.ssl_context()
    assert context is not None
    write(path, tls_config(pki) + MTLS)
    with caplog.at_level(logging.WARNING, logger="apns_exporter.web.webconfig"):
        for _ in range(3):
            clock.advance()
            watcher.current()
    assert caplog.text.count("restart the exporter to apply that") == 1
    assert context.verify_mode is ssl.CERT_NONE


@pytest.fixture
def no_files(tmp_path: Path) -> Iterator[Path]:
    """An empty directory to chdir into."""
    with contextlib.chdir(tmp_path):
        yield tmp_path


def test_relative_paths_start_at_the_config_directory(pki: Pki, no_files: Path) -> None:
    """cert_file and key_file are found next to the web config, wherever the process runs."""
    config = load(write(pki.dir / "web.yml", tls_config(pki)))
    assert config.tls is not None
    assert config.tls.cert_file == pki.server_cert


async def test_config_change_waits_for_a_half_rotated_pair(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """A web.yml edit that lands while the key is still old is applied once the key arrives."""
    clock = FakeClock()
    path = write(pki.dir / "web.yml", tls_config(pki) + users_config({"prometheus": HASH}))
    watcher = WebConfigWatcher(path, clock=clock)
    context = client_context(pki.ca_file)
    rotated = pki.ca.issue_server()
    async with serving(watcher) as url:
        pki.server_cert.write_bytes(rotated.cert_pem)
        write(path, tls_config(pki) + users_config({"prometheus": HASH, "grafana": HASH}))
        with caplog.at_level(logging.ERROR, logger="apns_exporter.web.webconfig"):
            for _ in range(3):
                clock.advance()
                status, _ = await get(url + "/", ssl_context=context, auth=("grafana", PASSWORD))
                assert status == 401
        pki.server_key.write_bytes(rotated.key_pem)
        clock.advance()
        status, _ = await get(url + "/", ssl_context=context, auth=("grafana", PASSWORD))
        assert status == 200
    assert caplog.text.count("keeping the previous web config") == 1


async def test_run_notices_rotation_without_requests(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The background check loads rotated certificates even when no HTTP request arrives."""
    monkeypatch.setattr("apns_exporter.web.webconfig.watcher.CHECK_INTERVAL_SECONDS", 0.01)
    watcher = WebConfigWatcher(write(pki.dir / "web.yml", tls_config(pki)))
    context = client_context(pki.ca_file)
    async with serving(watcher) as url:
        port = int(url.rsplit(":", 1)[1])
        before = await peer_certificate(port, context)
        pki.ca.issue_server().write(pki.dir, "server")
        task = asyncio.create_task(watcher.run())
        try:
            for _ in range(500):
                if await peer_certificate(port, context) != before:
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the rotated certificate was never served")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_tls_files_are_loaded_from_the_bytes_read_never_by_path(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At start and on rotation OpenSSL gets a private copy, never the operator's file path."""
    paths: list[str] = []
    real = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: str, *args: object, **kwargs: object) -> None:
        paths.append(str(certfile))
        paths.extend(str(a) for a in args if a is not None)
        real(self, certfile, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    clock = FakeClock()
    watcher = WebConfigWatcher(write(pki.dir / "web.yml", tls_config(pki)), clock=clock)
    context = client_context(pki.ca_file)
    async with serving(watcher) as url:
        port = int(url.rsplit(":", 1)[1])
        rotated = pki.ca.issue_server()
        rotated.write(pki.dir, "server")
        clock.advance()
        watcher.current()
        after = await peer_certificate(port, context)
    assert after == rotated.certificate.public_bytes(serialization.Encoding.DER)
    assert paths
    assert not {str(pki.server_cert), str(pki.server_key)} & set(paths)


async def test_der_server_certificate_is_served(pki: Pki) -> None:
    """A cert_file in DER serves HTTPS like the same certificate in PEM."""
    der = pki.dir / "server.der"
    der.write_bytes(
        x509.load_pem_x509_certificate(pki.server_cert.read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
    )
    config = f"tls_server_config:\n  cert_file: {der.name}\n  key_file: {pki.server_key.name}\n"
    watcher = WebConfigWatcher(write(pki.dir / "web.yml", config))
    async with serving(watcher) as url:
        port = int(url.rsplit(":", 1)[1])
        served = await peer_certificate(port, client_context(pki.ca_file))
    assert served == der.read_bytes()
