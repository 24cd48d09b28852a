"""A target's credential on disk: loaded once, re-read when its files change, described."""

from __future__ import annotations

import ssl
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from apns_exporter.client.tls import client_context
from apns_exporter.config import Target
from apns_exporter.creds.certificates import (
    CertificateSummary,
    ClientCredential,
    file_fingerprint,
    load_client_credential,
    mismatches,
)
from apns_exporter.creds.tokens import ProviderToken, TokenCache
from apns_exporter.errors import CredentialError, ExpiredCredential


def exposed_key_warnings(path: Path) -> tuple[str, ...]:
    """A warning when a private key file is readable by its group or by others."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return ()
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return ()
    return (
        f"{path}: the private key is readable by group or others "
        f"(mode {stat.S_IMODE(mode):04o}); restrict it with: chmod 600 {path}",
    )


@dataclass(frozen=True)
class Loaded:
    """A credential that loaded: what connections need and what metrics describe."""

    ssl_context: ssl.SSLContext
    token: ProviderToken | None
    certificate: CertificateSummary | None
    warnings: tuple[str, ...]


class Credential:
    """Loads one target's key or certificate and notices when its files change on disk."""

    def __init__(
        self, target: Target, tokens: TokenCache, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.target = target
        self._tokens = tokens
        self._clock = clock
        self._fingerprint: object = None

    @property
    def paths(self) -> tuple[Path, ...]:
        """Every file the credential is read from."""
        auth = self.target.auth
        if auth.token is not None:
            return (auth.token.key_file,)
        assert auth.certificate is not None
        cert = auth.certificate
        return tuple(p for p in (cert.cert_file, cert.key_file, cert.password_file) if p)

    def changed(self) -> bool:
        """Whether any file differs (content swap, symlink swap, removal) since the last load."""
        return file_fingerprint(self.paths) != self._fingerprint

    def load(self) -> Loaded:
        """Read the credential files; raises CredentialError with a bounded reason."""
        # Remember what was read even if it fails, so a broken file is reported once.
        self._fingerprint = file_fingerprint(self.paths)
        target, auth = self.target, self.target.auth
        ca_file = str(target.ca_file) if target.ca_file is not None else None
        if auth.token is not None:
            t = auth.token
            token = self._tokens.reload(t.key_file, t.key_id, t.team_id, t.refresh_interval)
            return Loaded(client_context(ca_file), token, None, exposed_key_warnings(t.key_file))
        assert auth.certificate is not None
        cert = auth.certificate
        try:
            password = cert.password()
        except OSError as exc:
            raise CredentialError(
                "not_found", f"{cert.password_file}: cannot read the password file: {exc.strerror}"
            ) from None
        # now=0: expiry is judged here instead, so an expired certificate still loads.
        client: ClientCredential = load_client_credential(
            cert.cert_file, cert.key_file, password=password, now=0.0
        )
        summary = client.summary
        warnings = mismatches(summary, topic=target.topic, environment=str(target.environment))
        warnings += exposed_key_warnings(cert.key_file or cert.cert_file)
        loaded = Loaded(client.ssl_context(ca_file), None, summary, tuple(warnings))
        if summary.not_after < self._clock():
            renew = " with the same Apple ID" if summary.is_mdm else ""
            raise ExpiredCredential(
                f"{cert.cert_file}: certificate {summary.subject_cn!r} expired; renew it{renew} "
                "in the Apple Developer portal and replace the file",
                loaded=loaded,
            )
        return loaded

    def topic(self, loaded: Loaded) -> str | None:
        """The apns-topic to send: the configured one, else the certificate's UID (MDM)."""
        if self.target.topic is not None:
            return self.target.topic
        return loaded.certificate.uid if loaded.certificate is not None else None


def load_credential(credential: Credential) -> tuple[Loaded | None, CredentialError | None]:
    """Load a credential: what to use (an expired one still is) and what is wrong with it.

    The one way to load a credential: the probe, the exporter and ``--config.check`` all
    call it.
    """
    try:
        return credential.load(), None
    except ExpiredCredential as exc:
        # Still presented: APNs's TLS alert is the clearest evidence of what is wrong.
        return exc.loaded, exc
    except CredentialError as exc:
        return None, exc
